//! A test that needs kubectl fails under CI when kubectl is missing, and is skipped (saying so)
//! elsewhere: CI must never pass on tests that did not run.

use std::process::Command;

/// Run only by the test below, in a child process whose PATH holds no kubectl.
#[test]
#[ignore = "run by a_missing_kubectl_fails_under_ci_and_is_reported_elsewhere"]
fn needs_kubectl() {
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    println!("kubectl found");
}

fn run_probe(ci: Option<&str>) -> (bool, String) {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "needs_kubectl", "--ignored", "--nocapture"])
        .env("PATH", empty.path());
    match ci {
        Some(value) => command.env("CI", value),
        None => command.env_remove("CI"),
    };
    let output = command.output().expect("running the probe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_missing_kubectl_fails_under_ci_and_is_reported_elsewhere() {
    let (passed, text) = run_probe(Some("true"));
    assert!(
        !passed,
        "under CI a missing kubectl must fail the test:\n{text}"
    );
    assert!(text.contains("kubectl is not installed"), "{text}");
    assert!(text.contains("under CI every test must run"), "{text}");

    for not_ci in [None, Some("false")] {
        let (passed, text) = run_probe(not_ci);
        assert!(
            passed,
            "outside CI ({not_ci:?}) the test is skipped:\n{text}"
        );
        assert!(text.contains("skipped: kubectl is not installed"), "{text}");
    }
}
