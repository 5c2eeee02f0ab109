//! `make demo` must keep working: run scripts/demo.sh with the binaries this test run built.

use std::{path::PathBuf, process::Command, time::Duration};

#[test]
fn the_local_demo_runs_to_the_end() {
    let federator = PathBuf::from(env!("CARGO_BIN_EXE_federator"));
    // `cargo test --workspace` builds kube-sim's binary into the same directory.
    let kube_sim = federator.with_file_name("kube-sim");
    if !kube_sim.exists() {
        kube_sim::prerequisites::missing(&format!(
            "{} is not built; run `cargo test --workspace`",
            kube_sim.display()
        ));
        return;
    }
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    let demo_dir = std::env::temp_dir().join(format!("federator-demo-test-{}", std::process::id()));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    std::fs::create_dir_all(&demo_dir).expect("demo dir");
    // Output goes to files: a full pipe would block the demo while we poll it.
    let stdout_path = demo_dir.join("demo.stdout");
    let stderr_path = demo_dir.join("demo.stderr");
    let mut child = Command::new("bash")
        .arg(&script)
        .env("FEDERATOR_BIN", &federator)
        .env("KUBE_SIM_BIN", &kube_sim)
        .env("DEMO_DIR", &demo_dir)
        .env_remove("DEMO_KEEP")
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("bash runs");

    // The demo must finish well within two minutes; kill it rather than hang the suite.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait().expect("wait on demo") {
            Some(status) => break status,
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                panic!("the demo did not finish within 120 s");
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("Demo complete"), "{stdout}");
    let _ = std::fs::remove_dir_all(&demo_dir);
}
