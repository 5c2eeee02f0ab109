//! The `kube-sim` binary: kubeconfig, ready line, admin API, plain kubectl, SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn admin_call(port: u16, method: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn binary_serves_until_sigterm() {
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = work.path().join("kubeconfig");
    let admin_port = free_loopback_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args([
            "--clusters",
            "2",
            "--context-prefix",
            "test-",
            "--admin-addr",
        ])
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kube-sim");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let ready = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("a ready line");
    assert!(ready.starts_with("kube-sim ready"), "{ready}");

    let config = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    for needle in [
        "current-context: test-0",
        "name: test-1",
        "certificate-authority-data:",
        "token:",
    ] {
        assert!(config.contains(needle), "{needle} in {config}");
    }
    let listing = admin_call(admin_port, "GET", "/clusters");
    assert!(
        listing.starts_with("HTTP/1.1 200") && listing.contains("\"context\":\"test-1\""),
        "{listing}"
    );

    // the dispatcher on PATH picks the build for the server's minor version
    if kube_sim::prerequisites::kubectl() {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--context", "test-1", "--cache-dir"])
            .arg(work.path().join("cache"))
            .args(["get", "namespaces", "-o", "name"])
            .output()
            .expect("running kubectl");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && out.contains("namespace/default"),
            "{out} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().expect("waiting") {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "kube-sim did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
