//! Shared by the `ops_*` tests: kube-sim clusters with the operator namespace and the K8ssandra
//! namespace everywhere, regions registered as ClientConfigs, `federator run` as a child process
//! (JSON logs), and plain HTTP calls to its server.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use federator::api::client_config::{ClientConfig, ClientConfigSpec};
use federator::api::shared::SecretRef;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use kube_sim::{Sim, SimBuilder};

pub const FEDERATOR: &str = env!("CARGO_BIN_EXE_federator");
/// Operator namespace in the hub; the K8ssandraClusters live there too.
pub const NS: &str = "k8ssandra-operator";
const TEST_MANAGER: &str = "ops-test";
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `clusters` clusters (0 is the hub) with the cass-operator stand-in, the namespace in every
/// one, and clusters 1.. registered in the hub as ClientConfigs named by their context.
pub async fn start_sim(clusters: usize) -> Sim {
    start_sim_with(clusters, true).await
}

/// [`start_sim`], with cass-operator (its stand-in and its CRD) in every cluster or in none.
pub async fn start_sim_with(clusters: usize, cass_operator: bool) -> Sim {
    let repo = env!("CARGO_MANIFEST_DIR");
    let mut builder = SimBuilder::new()
        .clusters(clusters)
        .cass_operator(cass_operator)
        .dc_ready_after(Duration::from_secs(1))
        .crd_dir(format!("{repo}/crds"));
    if cass_operator {
        builder = builder.crd_dir(format!("{repo}/../shared/compat/crds/cass-operator"));
    }
    let sim = tokio::time::timeout(Duration::from_secs(120), builder.start())
        .await
        .expect("kube-sim starts in time")
        .expect("kube-sim starts");
    for index in 0..clusters {
        let client = sim.client(index).await.expect("client");
        apply(
            &Api::<Namespace>::all(client),
            NS,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await;
    }
    let hub = sim.client(0).await.expect("hub client");
    for index in 1..clusters {
        let context = sim.context_name(index);
        let secret = format!("{context}-config");
        let mut data = std::collections::BTreeMap::new();
        data.insert(
            "kubeconfig".to_string(),
            ByteString(sim.kubeconfig_yaml().into_bytes()),
        );
        let mut value = serde_json::to_value(Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret.clone()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        })
        .expect("json");
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        apply(&Api::<Secret>::namespaced(hub.clone(), NS), &secret, value).await;
        let mut cc = ClientConfig::new(
            &context,
            ClientConfigSpec {
                context_name: Some(context.clone()),
                kube_config_secret: SecretRef::new(&secret),
            },
        );
        cc.metadata.namespace = Some(NS.into());
        let value = serde_json::to_value(&cc).expect("json");
        apply(
            &Api::<ClientConfig>::namespaced(hub.clone(), NS),
            &context,
            value,
        )
        .await;
    }
    sim
}

pub async fn apply<K>(api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    tokio::time::timeout(
        CALL_TIMEOUT,
        api.patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&object),
        ),
    )
    .await
    .expect("apply in time")
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// A K8ssandraCluster `name` with one datacenter of `size` per region given.
pub fn k8ssandra_cluster(name: &str, regions: &[(&str, &str, i32)]) -> serde_json::Value {
    let datacenters: Vec<serde_json::Value> = regions
        .iter()
        .map(|(dc, context, size)| {
            serde_json::json!({"metadata": {"name": dc}, "k8sContext": context, "size": size})
        })
        .collect();
    serde_json::json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}
            }},
            "datacenters": datacenters
        }}
    })
}

pub fn write_kubeconfig(sim: &Sim, dir: &Path) -> PathBuf {
    let path = dir.join("sim.kubeconfig");
    sim.write_kubeconfig(&path).expect("write kubeconfig");
    path
}

/// Polls `check` until it gives a value, at most `limit`.
pub async fn wait_for<T, Fut>(what: &str, limit: Duration, mut check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(limit, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// `federator run` in the background (JSON logs); SIGKILLed when dropped.
pub struct OperatorProcess {
    pub child: std::process::Child,
    logs: Arc<Mutex<String>>,
    /// Its Lease identity when the test named it (POD_NAME).
    pod_name: Option<String>,
}

impl OperatorProcess {
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
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        let pod_name = env
            .iter()
            .find(|(name, _)| *name == "POD_NAME")
            .map(|(_, value)| value.to_string());
        OperatorProcess {
            child,
            logs,
            pod_name,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every JSON log line.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
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

    /// SIGKILL, no chance to release anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Some((status, body))
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .ok()
        .flatten()
        .unwrap_or((0, String::new()))
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

pub fn hub_api<K>(client: &Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client.clone(), NS)
}
