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
    admin_call_with(port, method, path, "")
}

fn admin_call_with(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// Starts the binary with `extra` flags and waits for its ready line.
fn start_binary(
    kubeconfig: &std::path::Path,
    admin_port: u16,
    extra: &[&str],
) -> std::process::Child {
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
        .arg(kubeconfig)
        .args(extra)
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
    let ready = receiver.recv_timeout(Duration::from_secs(60)).expect("a ready line");
    assert!(ready.starts_with("kube-sim ready"), "{ready}");
    child
}

#[test]
fn binary_with_rbac_issues_client_certificates_and_refuses_what_rbac_does_not_grant() {
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = work.path().join("kubeconfig");
    let admin_port = free_loopback_port();
    let mut child = start_binary(&kubeconfig, admin_port, &["--rbac"]);
    let answer = admin_call_with(
        admin_port,
        "POST",
        "/clusters/1/client-certificate",
        r#"{"user": "jane", "groups": ["developers"]}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let jane_kubeconfig = body["kubeconfig"].as_str().expect("a kubeconfig");
    assert!(
        jane_kubeconfig.contains("client-certificate-data:")
            && jane_kubeconfig.contains("current-context: test-1")
            && !jane_kubeconfig.contains("token:"),
        "{jane_kubeconfig}"
    );
    let jane_path = work.path().join("jane");
    std::fs::write(&jane_path, jane_kubeconfig).expect("write");
    if kube_sim::prerequisites::kubectl() {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&jane_path)
            .arg("--cache-dir")
            .arg(work.path().join("cache"))
            .args(["get", "secrets", "-n", "kube-system"])
            .output()
            .expect("running kubectl");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success()
                && stderr.contains("secrets is forbidden: User \"jane\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\""),
            "{stderr}"
        );
        let refused = admin_call(admin_port, "GET", "/clusters/1/refused");
        assert!(
            refused.starts_with("HTTP/1.1 200")
                && refused.contains("User \\\"jane\\\" cannot list"),
            "{refused}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn binary_serves_until_sigterm() {
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = work.path().join("kubeconfig");
    let admin_port = free_loopback_port();
    let mut child = start_binary(&kubeconfig, admin_port, &[]);

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
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
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
