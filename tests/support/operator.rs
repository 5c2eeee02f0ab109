//! The operator running in the test's own process, and its logs.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use federator::operator::{Operator, shutdown_on};
use federator::settings::{Overrides, Settings};
use kube::Client;

use super::sim::{NS, bounded};

/// Runs a test on the operator's own runtime, as `federator run` does: its workers have the
/// stack the controllers (and the tests' own decoding of K8ssandraClusters) need.
pub fn run(test: impl Future<Output = ()>) {
    federator::operator::runtime().expect("tokio runtime").block_on(test);
}

/// The operator running in this test's process as `federator run` starts it, against `client`'s
/// cluster: operator namespace [`NS`], a probe every second, 2 s requests, then what the test
/// adjusts. Stopped by [`InProcessOperator::stop`].
pub struct InProcessOperator {
    operator: Option<Operator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcessOperator {
    pub fn start(client: &Client, adjust: impl FnOnce(&mut Settings)) -> InProcessOperator {
        let mut settings =
            Settings::load_from(&Overrides::default(), &[]).expect("default settings load");
        settings.operator_namespace = NS.to_string();
        settings.regions.probe_interval = Duration::from_secs(1);
        settings.regions.request_timeout = Duration::from_secs(2);
        adjust(&mut settings);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Each operator records into its own metrics and health, as a process would.
        let operator = Operator::start(
            &settings,
            client.clone(),
            &federator::ops::Ops::new(),
            shutdown_on(async move {
                let _ = stopped.await;
            }),
        );
        InProcessOperator {
            operator: Some(operator),
            stop: Some(stop),
        }
    }

    /// The operator itself.
    pub fn operator(&self) -> &Operator {
        self.operator.as_ref().expect("running")
    }

    /// Signals the shutdown, not waiting for it.
    fn signal(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals the shutdown and waits (bounded) for the controllers to stop.
    pub async fn stop(mut self) {
        self.signal();
        if let Some(operator) = self.operator.take() {
            bounded("operator stops", operator.run_until(async {}))
                .await
                .expect("no controller ended before the stop");
        }
    }
}

/// Stops every operator: all are signalled, then each is waited for.
pub async fn stop_all(mut operators: Vec<InProcessOperator>) {
    for operator in &mut operators {
        operator.signal();
    }
    for operator in operators {
        operator.stop().await;
    }
}

/// The buffer the operator's in-process logs go to.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("FEDERATOR_TEST_LOGS").is_some() {
            let _ = std::io::stderr().write_all(bytes);
        }
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every test of the binary that calls this logs, at debug level in JSON as `federator run
/// --log-format json --log-level debug` does, into one buffer (the in-process kube-sim's own
/// logs excepted: they are the API server's, not the operator's). `FEDERATOR_TEST_LOGS=1`
/// copies them to stderr.
pub fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,kube_sim=off"))
            .with_writer(move || writer.clone())
            .finish();
        // Another test of this binary may have installed it first: same buffer either way.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}
