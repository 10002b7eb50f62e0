//! The command line: `danegate run [--config FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use crate::dns::Probe;
use crate::policy::Mode;

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
    /// Show where mail for DOMAIN would go: MX hosts, addresses, TLSA
    /// records, each marked secure or insecure, and each host's TLS
    /// requirement. Connects nowhere. Exit 0 when the domain can be
    /// delivered to, 1 when it would be deferred or rejected.
    Resolve {
        domain: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// JSON output for monitoring systems.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    match cli.command {
        Cmd::Run { config } => run(config),
        Cmd::Resolve {
            domain,
            config,
            json,
        } => resolve(&domain, config, json),
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
        let built = match crate::dns::build(&config.dns).await {
            Ok(b) => b,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mut resolver = built.resolver.clone();
        match crate::dns::probe(&built).await {
            Probe::Validated => info!("DNSSEC validation works (trust anchors: {})", built.anchors),
            Probe::NotValidated(e) if config.policy.mode == Mode::Enforce => {
                error!("{e}; refusing to start in enforce mode (policy.mode = \"test\" starts anyway, without DANE)");
                return ExitCode::FAILURE;
            }
            Probe::NotValidated(e) => {
                warn!("TEST MODE: {e}");
                warn!("TEST MODE: starting anyway with every DNS answer treated as insecure; no domain gets DANE, nothing is enforced");
                resolver = match crate::dns::insecure(&config.dns) {
                    Ok(r) => r,
                    Err(e) => {
                        error!("{e}");
                        return ExitCode::FAILURE;
                    }
                };
            }
            Probe::Unreachable(e) => error!(
                "{e}; starting anyway: every lookup fails until DNS answers, and mail is deferred (451 4.4.3) meanwhile"
            ),
        }
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

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            error!("cannot start the runtime: {e}");
            None
        }
    }
}

fn resolve(domain: &str, config: Option<PathBuf>, json: bool) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(e) => {
            error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    rt.block_on(async move {
        let built = match crate::dns::build(&config.dns).await {
            Ok(b) => b,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let dnssec = match crate::dns::probe(&built).await {
            Probe::Validated => format!("validated (trust anchors: {})", built.anchors),
            Probe::NotValidated(e) | Probe::Unreachable(e) => format!("NOT WORKING: {e}"),
        };
        let planner = crate::nexthop::Planner::for_config(&config);
        let plan = planner
            .plan(built.resolver.as_ref(), &config, &domain)
            .await;
        let ok = plan.is_ok();
        let level = config.policy.level_for(&domain).to_string();
        let report = crate::report::PlanReport::new(&domain, level, dnssec, plan);
        if json {
            match serde_json::to_string_pretty(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    error!("cannot write JSON: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            print!("{}", report.text());
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    })
}
