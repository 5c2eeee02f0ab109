//! `kube-sim`: serve N simulated Kubernetes clusters until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// Multi-cluster Kubernetes API simulator.
#[derive(Parser, Debug)]
#[command(name = "kube-sim", version, about)]
struct Args {
    /// Number of clusters to serve.
    #[arg(long, default_value_t = 1)]
    clusters: usize,
    /// Where to write the kubeconfig (one context per cluster).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Context, cluster and user names are <prefix><index>.
    #[arg(long, default_value = "sim-")]
    context_prefix: String,
    /// Apply every CRD YAML file in this directory to every cluster at start (repeatable).
    #[arg(long = "crds")]
    crds: Vec<PathBuf>,
    /// Run the cass-operator stand-in.
    #[arg(long)]
    cass_operator: bool,
    /// Seconds until the stand-in marks a CassandraDatacenter Ready.
    #[arg(long, default_value_t = 1.0)]
    dc_ready_after: f64,
    /// Seconds until a Deployment or StatefulSet reports its replicas ready after a change
    /// (default: the built-in controllers' short delay).
    #[arg(long)]
    workloads_ready_after: Option<f64>,
    /// Authorise resource requests with each cluster's RBAC objects (the kubeconfig's admin
    /// token stays unrestricted).
    #[arg(long)]
    rbac: bool,
    /// Serve each Cassandra pod's Management API at its own IP (127.0.0.0/8) on port 8080,
    /// besides through the pods' proxy subresource.
    #[arg(long)]
    pod_listeners: bool,
    /// Address of the admin HTTP API (loopback only), e.g. 127.0.0.1:7070.
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(args.clusters >= 1, "--clusters must be at least 1");
    anyhow::ensure!(
        args.dc_ready_after.is_finite() && args.dc_ready_after >= 0.0,
        "--dc-ready-after must be a non-negative number of seconds"
    );
    if let Some(seconds) = args.workloads_ready_after {
        anyhow::ensure!(
            seconds.is_finite() && seconds >= 0.0,
            "--workloads-ready-after must be a non-negative number of seconds"
        );
    }
    let admin_listener = match args.admin_addr {
        Some(addr) => Some(kube_sim::admin::bind(addr).await?),
        None => None,
    };
    let mut builder = kube_sim::SimBuilder::new()
        .clusters(args.clusters)
        .context_prefix(args.context_prefix.clone())
        .cass_operator(args.cass_operator)
        .rbac(args.rbac)
        .pod_listeners(args.pod_listeners)
        .dc_ready_after(Duration::from_secs_f64(args.dc_ready_after));
    if let Some(seconds) = args.workloads_ready_after {
        builder = builder.workloads_ready_after(Duration::from_secs_f64(seconds));
    }
    for dir in &args.crds {
        builder = builder.crd_dir(dir);
    }
    let sim = builder.start().await.context("starting the clusters")?;
    sim.write_kubeconfig(&args.kubeconfig)?;
    let admin_task = admin_listener.map(|listener| {
        let address = listener.local_addr().ok();
        (
            address,
            tokio::spawn(kube_sim::admin::serve(listener, sim.clone())),
        )
    });
    let ports: Vec<String> =
        sim.clusters().iter().map(|c| format!("{}={}", c.context, c.url)).collect();
    let admin_text = admin_task
        .as_ref()
        .and_then(|(address, _)| *address)
        .map(|a| format!(" admin=http://{a}"))
        .unwrap_or_default();
    println!(
        "kube-sim ready: kubeconfig={} {}{admin_text}",
        args.kubeconfig.display(),
        ports.join(" ")
    );
    wait_for_signal().await?;
    if let Some((_, task)) = admin_task {
        task.abort();
    }
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
