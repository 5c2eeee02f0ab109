use std::process::ExitCode;

use clap::Parser;
use federator::cli::{Cli, main as cli_main};

#[tokio::main]
async fn main() -> ExitCode {
    // rustls needs one process-wide crypto provider; ring is the one kube is built with.
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli_main(Cli::parse()).await
}
