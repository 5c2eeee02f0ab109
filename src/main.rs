use std::process::ExitCode;

use clap::Parser;
use federator::cli::{Cli, main as cli_main};

fn main() -> ExitCode {
    // rustls needs one process-wide crypto provider; ring is the one kube is built with.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match federator::operator::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli_main(Cli::parse()))
}
