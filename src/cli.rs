//! The command line: `danegate run [--config FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing::{error, info};

use crate::config::Config;
use crate::relay::Context;
use crate::server::Server;

#[derive(Parser)]
#[command(
    name = "danegate",
    version,
    about = "An SMTP relay that enforces DANE (RFC 7672) for legacy MTAs"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the relay (built-in defaults without --config).
    Run {
        /// Configuration file (TOML); see config/danegate.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    match cli.command {
        Cmd::Run { config } => run(config),
    }
}

fn load(path: Option<PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(&p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn run(config: Option<PathBuf>) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(e) => {
            error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // DNSSEC validation (crate::dns::build and the start-up probe) is
        // wired in with DANE; until then every answer counts as insecure.
        let resolver = match crate::dns::unvalidated(&config.dns) {
            Ok(r) => r,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        info!("DNSSEC is not validated yet: every DNS answer is treated as insecure");
        let ctx = Arc::new(Context::new(config, resolver));
        let server = match Server::bind(ctx).await {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        server.run(stop_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
