//! The binaries as child processes: `federator run` in the background ([`OperatorProcess`]),
//! `federator` and `kubectl` as a user runs them, and plain HTTP calls to the operator's server.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sim::{CALL_TIMEOUT, NS};
use super::wait::wait_for;

/// The `federator` binary this test run built.
pub const FEDERATOR: &str = env!("CARGO_BIN_EXE_federator");

/// `federator run` in the background against the sim's hub (context `sim-0`, namespace [`NS`],
/// JSON logs captured, a probe every second, 2 s requests, its HTTP server on a free port);
/// SIGKILLed when dropped.
pub struct OperatorProcess {
    pub child: std::process::Child,
    logs: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Its Lease identity when the test named it (POD_NAME).
    pod_name: Option<String>,
}

impl OperatorProcess {
    /// Started with `extra` arguments after the defaults (`--log-level debug`, say).
    pub fn start(kubeconfig: &Path, extra: &[&str]) -> OperatorProcess {
        OperatorProcess::start_with_env(kubeconfig, extra, &[])
    }

    /// Like [`OperatorProcess::start`], with environment variables set after the defaults
    /// (so they override them).
    pub fn start_with_env(
        kubeconfig: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        let mut child = std::process::Command::new(FEDERATOR)
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--context", "sim-0", "--namespace", NS])
            // Tests run in parallel: each operator's HTTP server on a port of its own.
            .args(["--http-addr", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FEDERATOR_REGIONS__PROBE_INTERVAL_SECONDS", "1")
            .env("FEDERATOR_REGIONS__REQUEST_TIMEOUT_SECONDS", "2")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("federator run starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        let pod_name =
            env.iter().find(|(name, _)| *name == "POD_NAME").map(|(_, value)| value.to_string());
        OperatorProcess {
            child,
            logs,
            reader: Some(reader),
            pod_name,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every JSON log line.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The address the HTTP server bound (from its `http server listening` line).
    pub async fn http_addr(&self) -> std::net::SocketAddr {
        wait_for(
            "the http server address",
            Duration::from_secs(30),
            || async {
                self.log_lines()
                    .iter()
                    .find(|l| l["message"] == "http server listening")
                    .and_then(|l| l["addr"].as_str().and_then(|a| a.parse().ok()))
            },
        )
        .await
    }

    /// SIGKILL, no chance to release anything; returns once it is gone and every line it
    /// logged is in [`OperatorProcess::logs`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// [`OperatorProcess::kill`], then everything it logged.
    pub fn kill_for_logs(mut self) -> String {
        self.kill();
        self.logs()
    }

    /// Whether a User-Agent is this process's (`federator/<version> (<identity>)`, where the
    /// identity is POD_NAME, else `<host>-<pid>`).
    pub fn owns_user_agent(&self, user_agent: &str) -> bool {
        let suffix = match &self.pod_name {
            Some(pod) => format!("({pod})"),
            None => format!("-{})", self.pid()),
        };
        user_agent.starts_with("federator/") && user_agent.ends_with(&suffix)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `program` with `args` as a user would (no standard input), at most `limit`: (success,
/// stdout, stderr).
async fn run(
    mut command: tokio::process::Command,
    what: &str,
    limit: Duration,
) -> (bool, String, String) {
    let output = tokio::time::timeout(limit, command.stdin(Stdio::null()).output())
        .await
        .unwrap_or_else(|_| panic!("{what} finishes within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what} runs: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `federator <args>` as a user runs it, in a clean environment but PATH (the developer's
/// FEDERATOR_* never leak in), at most `limit`: (success, stdout, stderr).
pub async fn run_federator<S: AsRef<OsStr>>(
    args: impl IntoIterator<Item = S>,
    limit: Duration,
) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(FEDERATOR);
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    run(command, "federator", limit).await
}

/// `kubectl --kubeconfig <kubeconfig> --cache-dir <cache> <args>`, at most 60 s: (success,
/// stdout, stderr).
pub async fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).arg("--cache-dir").arg(cache).args(args);
    run(command, "kubectl", Duration::from_secs(60)).await
}

/// GET `path` from the operator's HTTP server: (status, body); status 0 when it cannot connect.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let call = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: federator\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Some((status, body))
    };
    tokio::time::timeout(CALL_TIMEOUT, call).await.ok().flatten().unwrap_or((0, String::new()))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `/readyz` as JSON (Null when not answering).
pub async fn readiness(addr: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, "/readyz").await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The sum of every sample of `name` whose labels contain each of `labels` (`key="value"`).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (sample, label_text) = match series.split_once('{') {
                Some((sample, rest)) => (sample, rest),
                None => (series, ""),
            };
            (sample == name && labels.iter().all(|want| label_text.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
