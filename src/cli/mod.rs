//! The `federator` command line.

pub mod status;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use tracing::{error, info};

use crate::{
    clusters::create::{CreateOptions, create as create_client_config},
    crdgen,
    home::HomeCluster,
    operator::{self, Operator},
    ops,
    settings::{DEFAULT_OPERATOR_NAMESPACE, Overrides, Settings},
    telemetry,
};

#[derive(Debug, Parser)]
#[command(
    name = "federator",
    version,
    about = "Multi-cluster control plane for Apache Cassandra on Kubernetes (K8ssandra API)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator (control plane in the hub, data plane in each region).
    Run(RunArgs),
    /// Print every CRD Federator installs, as multi-document YAML.
    Crd(CrdArgs),
    /// Manage ClientConfigs: the hub's connections to the regions.
    #[command(subcommand)]
    Clientconfig(ClientConfigCommand),
    /// Show every K8ssandraCluster, its datacenters by region, and each region's reachability.
    Status(StatusArgs),
}

/// Where the hub cluster is; shared by every command that talks to it.
#[derive(Debug, Clone, Args)]
pub struct HubArgs {
    /// Kubeconfig of the hub cluster (default: in-cluster, else KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of that kubeconfig to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// control-plane (the hub) or data-plane (a region).
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// YAML settings file; FEDERATOR_* environment variables and flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub hub: HubArgs,
    /// The operator's namespace (default: POD_NAMESPACE, else k8ssandra-operator).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespaces to watch, comma-separated (default: every namespace).
    #[arg(long, value_name = "NS,...", value_delimiter = ',')]
    pub watch_namespaces: Option<Vec<String>>,
    /// Address of the HTTP server (/metrics, /healthz, /readyz).
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// A tracing filter such as info, debug or federator=debug,kube=info.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Accept region kubeconfigs whose users run exec or auth-provider credential plugins.
    #[arg(long)]
    pub allow_exec_credentials: bool,
    /// Run the controllers without taking the leader Lease (a single replica, local runs).
    #[arg(long)]
    pub no_leader_election: bool,
}

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD (and a kustomization.yaml listing them) into this directory
    /// instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Write the CRD reference (Markdown, every field and rule) to this file instead of
    /// printing the CRDs (with --output-dir: as well as writing them).
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ClientConfigCommand {
    /// Register a region with the hub: a Secret with a self-contained kubeconfig and a ClientConfig.
    Create(ClientConfigCreateArgs),
}

#[derive(Debug, Args)]
pub struct ClientConfigCreateArgs {
    /// Kubeconfig that reaches the region.
    #[arg(long, value_name = "FILE")]
    pub src_kubeconfig: PathBuf,
    /// Context of that kubeconfig for the region; also the ClientConfig's contextName.
    #[arg(long, value_name = "CONTEXT")]
    pub src_context: String,
    #[command(flatten)]
    pub hub: HubArgs,
    /// Namespace of the operator in the hub.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Name of the ClientConfig (default: the source context).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Create this ServiceAccount in the region and use its token instead of your credentials.
    #[arg(long, value_name = "SA")]
    pub service_account: Option<String>,
    /// Rewrite the region's API server address (e.g. its address on the kind network).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this K8ssandraCluster.
    pub name: Option<String>,
    /// Namespace of the K8ssandraClusters (default: all namespaces).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format: json (default: a table).
    #[arg(long, short = 'o', value_name = "FORMAT")]
    pub output: Option<String>,
    #[command(flatten)]
    pub hub: HubArgs,
}

/// Exit status for bad settings or usage, as clap uses for usage errors.
const EXIT_USAGE: u8 = 2;

pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Crd(args) => crd(args),
        Command::Clientconfig(ClientConfigCommand::Create(args)) => clientconfig_create(args).await,
        Command::Status(args) => status::run(args).await,
    }
}

fn crd(args: CrdArgs) -> ExitCode {
    if let Some(path) = &args.reference {
        if let Err(source) = std::fs::write(path, crdgen::reference()) {
            eprintln!("federator crd: cannot write {}: {source}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{}", path.display());
    }
    let result = match &args.output_dir {
        Some(dir) => crdgen::write_dir(dir).map(|names| {
            for name in names {
                println!("{}", dir.join(name).display());
            }
        }),
        None if args.reference.is_some() => Ok(()),
        None => crdgen::render_all().map(|yaml| print!("{yaml}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("federator crd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Registers a region with the hub (see `clusters::create`).
async fn clientconfig_create(args: ClientConfigCreateArgs) -> ExitCode {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|ns| !ns.is_empty()))
        .unwrap_or_else(|| DEFAULT_OPERATOR_NAMESPACE.to_string());
    let options = CreateOptions {
        src_kubeconfig: args.src_kubeconfig,
        src_context: args.src_context,
        hub: HomeCluster {
            kubeconfig: args.hub.kubeconfig,
            context: args.hub.context,
        },
        namespace,
        name: args.name,
        service_account: args.service_account,
        server: args.server,
    };
    match create_client_config(&options).await {
        Ok(created) => {
            for warning in &created.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "clientconfig {}/{} configured: context {}, server {}, kubeconfig in Secret {}",
                created.namespace,
                created.name,
                created.context,
                created.server,
                created.secret_name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("federator clientconfig create: {e}");
            ExitCode::FAILURE
        }
    }
}

impl RunArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            mode: self.mode.clone(),
            kubeconfig: self.hub.kubeconfig.clone(),
            context: self.hub.context.clone(),
            namespace: self.namespace.clone(),
            watch_namespaces: self.watch_namespaces.clone(),
            http_addr: self.http_addr.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            allow_exec_credentials: self.allow_exec_credentials,
            no_leader_election: self.no_leader_election,
        }
    }
}

/// How long `run` waits for the home cluster to answer at start.
const HOME_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

async fn run(args: RunArgs) -> ExitCode {
    let settings = match Settings::load(&args.overrides()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("federator run: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    telemetry::init(settings.log_format, &settings.log_level);
    info!(
        mode = %settings.mode,
        namespace = %settings.operator_namespace,
        watch_namespaces = ?settings.watch_namespaces,
        "starting federator {}",
        env!("CARGO_PKG_VERSION")
    );

    let ops = ops::Ops::new();
    let client = match operator::hub_client(&settings, &ops.metrics).await {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot reach the home cluster");
            return ExitCode::FAILURE;
        }
    };
    match tokio::time::timeout(HOME_CHECK_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(version)) => info!(server_version = %version.git_version, "home cluster reachable"),
        Ok(Err(e)) => {
            error!(error = %e, "home cluster refused the version request");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            error!(
                timeout_seconds = HOME_CHECK_TIMEOUT.as_secs(),
                "home cluster did not answer"
            );
            return ExitCode::FAILURE;
        }
    }

    let shutdown = operator::shutdown_on(shutdown_signal());
    let server = match ops::http::bind(settings.http_addr, ops.clone(), shutdown.clone()).await {
        Ok((_, serve)) => tokio::spawn(serve),
        Err(e) => {
            error!(error = %e, "cannot serve /metrics, /healthz and /readyz");
            return ExitCode::FAILURE;
        }
    };
    let failed = if settings.leader_election.enabled {
        match operator::leader::run_elected(&settings, client, &ops, shutdown.clone()).await {
            Ok(operator::leader::Ended::Shutdown) => None,
            Ok(operator::leader::Ended::ControllerFailed(exit)) => Some(exit),
            Err(e) => {
                error!(error = %e, "leader election");
                return ExitCode::FAILURE;
            }
        }
    } else {
        ops.health.set_role(ops::health::Role::Leader);
        let running = Operator::start(&settings, client, &ops, shutdown.clone());
        running.run_until(shutdown.clone()).await.err()
    };
    if let Some(exit) = failed {
        // /healthz fails and the metrics tell why until the kubelet restarts the pod, or the
        // process ends by itself.
        error!(
            %exit,
            exit_after_seconds = settings.exit_after_controller_failure.as_secs_f64(),
            "a controller failed; this replica stopped and will exit"
        );
        tokio::select! {
            _ = shutdown => {}
            _ = tokio::time::sleep(settings.exit_after_controller_failure) => {}
        }
        return ExitCode::FAILURE;
    }
    let _ = server.await;
    info!("shut down");
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
