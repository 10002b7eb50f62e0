//! The command line: `danegate run`, `resolve`, `config check`, and the
//! operator commands of `ops` (`check`, `doctor`, `tlsa`, `sts`, `report`). Each command loads the configuration
//! first, so that `[log] format` applies from the first line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use crate::config::{Config, LogFormat};
use crate::dns::{Probe, Resolver};
use crate::outbound::Context;
use crate::policy::Mode;
use crate::server::{Handle, Server};
use crate::state::Store;
use crate::tlsrpt::counts::Limits;
use crate::tlsrpt::day::{parse_rfc3339, Clock, StartedAt, SystemClock};
use crate::tlsrpt::StoreRecorder;

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
    /// Run the relay (built-in defaults without --config). SIGHUP reloads
    /// the configuration file; SIGTERM shuts down gracefully.
    Run {
        /// Configuration file (TOML); see config/danegate.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// For drills and tests: TLS reporting's clock reads TIME (RFC
        /// 3339, e.g. 2026-12-06T23:59:00Z) at start and runs on from
        /// there, so a day can end on demand. Nothing else uses it.
        #[arg(long, value_name = "TIME")]
        report_clock: Option<String>,
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
    /// Self-test of the resolver DANE depends on: UDP and TCP, DNSSEC
    /// records passed on, the trust anchor validating, a known-secure
    /// (and a known-bogus) name, a validating resolver rather than a
    /// forwarder (trust-ad), the clock. Exit 0 ok, 1 warnings, 2 failures.
    Doctor {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// JSON output for monitoring systems.
        #[arg(long)]
        json: bool,
    },
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Check DOMAIN end to end as a DANE sender sees it: DNS, every MX
    /// host and address, STARTTLS, certificates and TLSA matches. Exit 0
    /// only when every address of every MX host verifies.
    Check(crate::ops::check::CheckArgs),
    /// TLSA records: generate them from a certificate or key, verify a
    /// chain against them, check that every authoritative server serves
    /// them.
    Tlsa {
        #[command(subcommand)]
        cmd: crate::ops::tlsa::TlsaCmd,
    },
    /// MTA-STS policies: show, refresh or forget a domain's cached
    /// policy (through the running danegate's control socket when it
    /// runs).
    Sts {
        #[command(subcommand)]
        cmd: crate::ops::sts::StsCmd,
    },
    /// TLS reporting (RFC 8460): the day's TLS sessions per recipient
    /// domain, which failed and why, and where the day's report went
    /// (exit 1 when any session failed); --preview DOMAIN prints the
    /// report JSON that would be sent.
    Report(crate::ops::report::ReportArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the configuration and print the effective one (every
    /// default filled in). Exit 0 when valid, 2 when not.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run {
            config,
            report_clock,
        } => match (
            loaded(config.as_deref()),
            report_clock.as_deref().map(parse_rfc3339),
        ) {
            (Ok(c), None) => run(c, config, Arc::new(SystemClock)),
            (Ok(c), Some(Ok(t))) => run(c, config, Arc::new(StartedAt::new(t))),
            (Ok(_), Some(Err(e))) => {
                error!("--report-clock: {e}");
                ExitCode::from(2)
            }
            (Err(code), _) => code,
        },
        Cmd::Resolve {
            domain,
            config,
            json,
        } => match loaded(config.as_deref()) {
            Ok(c) => crate::ops::resolve::run(&domain, c, json),
            Err(code) => code,
        },
        Cmd::Doctor { config, json } => match loaded(config.as_deref()) {
            Ok(c) => crate::ops::doctor::run(c, json),
            Err(code) => code,
        },
        Cmd::Config(ConfigCmd::Check { config }) => match loaded(config.as_deref()) {
            Ok(c) => config_check(&c),
            Err(code) => code,
        },
        Cmd::Check(args) => crate::ops::check::run(args),
        Cmd::Tlsa { cmd } => crate::ops::tlsa::run(cmd),
        Cmd::Sts { cmd } => crate::ops::sts::run(cmd),
        Cmd::Report(args) => crate::ops::report::run(args),
    }
}

/// Loads the configuration (defaults without a file) and starts logging
/// in its format. A bad configuration is logged and gives exit status 2.
pub(crate) fn loaded(path: Option<&Path>) -> Result<Config, ExitCode> {
    let config = match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    };
    match config {
        Ok(c) => {
            crate::logging::init(c.log.format);
            Ok(c)
        }
        Err(e) => {
            crate::logging::init(LogFormat::Text);
            error!("configuration error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn run(config: Config, path: Option<PathBuf>, clock: Arc<dyn Clock>) -> ExitCode {
    let Some(rt) = crate::ops::runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let resolver = match resolver_for(&config).await {
            Ok(r) => r,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(crate::ops::doctor::log_at_start(config.clone()));
        if let Some(addr) = config.metrics.listen {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    tokio::spawn(crate::metrics::serve(l));
                }
                Err(e) => {
                    error!("cannot serve metrics on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let store = open_store(&config);
        let sts = match start_sts(&config, resolver.clone(), store.clone()) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let limits = Limits {
            max_details: config.tlsrpt.max_failure_details,
        };
        let recorder = StoreRecorder::start(store.clone(), clock.clone(), limits);
        let ctx = Arc::new(Context {
            tlsrpt: recorder.clone(),
            ..Context::with_sts(config, resolver, sts)
        });
        let server = match Server::bind(ctx).await {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = crate::reporter::live::spawn(store, clock, server.handle()) {
            error!("TLS reporting: {e}; no reports are sent");
        }
        tokio::spawn(reload_on_hangup(path, server.handle()));
        server.run(stop_signal()).await;
        recorder.flush(std::time::Duration::from_secs(5));
        ExitCode::SUCCESS
    })
}

/// Opens the state database (in memory, with an error logged, when the
/// directory cannot be used).
fn open_store(config: &Config) -> Store {
    let (store, problem) = Store::open_or_memory(&config.state.dir);
    match problem {
        None => info!("state database: {}", store.location()),
        Some(e) => error!(
            "{e}; keeping state in memory only: cached MTA-STS policies and TLS reporting counts are lost at every restart"
        ),
    }
    store
}

/// Builds MTA-STS on the state database, starts its background refresh
/// and the control socket. Err: a configuration error (an unusable
/// `[mta_sts] ca_file`).
fn start_sts(
    config: &Config,
    resolver: Arc<dyn Resolver>,
    store: Store,
) -> Result<Arc<crate::sts::Sts>, ExitCode> {
    let durable = store.is_durable();
    let sts = match crate::sts::from_config(config, resolver, store.clone()) {
        Ok(s) => s,
        Err(e) => {
            error!("configuration error: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let roots = sts.roots();
    if config.mta_sts.enabled && roots.is_empty() {
        warn!("MTA-STS: no trusted root certificate (system store empty, no mta_sts.ca_file): every policy fetch fails");
    }
    sts.spawn_refresher();
    if durable {
        let path = crate::ops::control::socket_path(&config.state.dir);
        if let Err(e) = crate::ops::control::serve(&path, sts.clone(), store) {
            warn!(
                "no control socket at {}: {e}; `danegate sts` cannot reach this process",
                path.display()
            );
        }
    }
    Ok(sts)
}

/// The resolver a configuration asks for, after the start-up probe. Err:
/// danegate must not run with it (enforce mode without working DNSSEC).
async fn resolver_for(config: &Config) -> Result<Arc<dyn Resolver>, String> {
    let built = crate::dns::build(&config.dns).await?;
    match crate::dns::probe(&built).await {
        Probe::Validated => {
            info!("DNSSEC validation works (trust anchors: {})", built.anchors);
            Ok(built.resolver)
        }
        Probe::NotValidated(e) if config.policy.mode == Mode::Enforce => Err(format!(
            "{e}; refusing to start in enforce mode (policy.mode = \"test\" starts anyway, without DANE)"
        )),
        Probe::NotValidated(e) => {
            warn!("TEST MODE: {e}");
            warn!("TEST MODE: starting anyway with every DNS answer treated as insecure; no domain gets DANE, nothing is enforced");
            Ok(crate::dns::insecure(&config.dns)?)
        }
        Probe::Unreachable(e) => {
            error!("{e}; starting anyway: every lookup fails until DNS answers, and mail is deferred (451 4.4.3) meanwhile");
            Ok(built.resolver)
        }
    }
}

/// SIGHUP: reload the configuration file; a bad one is refused and the
/// running configuration stays.
async fn reload_on_hangup(path: Option<PathBuf>, handle: Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot watch SIGHUP: {e}");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let Some(path) = &path else {
            warn!("SIGHUP: running on built-in defaults, there is no configuration file to reload");
            continue;
        };
        match reload(path, &handle).await {
            Ok(()) => info!("configuration reloaded from {}", path.display()),
            Err(e) => error!("configuration reload refused, the running configuration stays: {e}"),
        }
    }
}

async fn reload(path: &Path, handle: &Handle) -> Result<(), String> {
    let new = Config::load(path).map_err(|e| e.to_string())?;
    let old = handle.current();
    let resolver = if new.dns == old.config.dns && new.policy.mode == old.config.policy.mode {
        old.resolver.clone()
    } else {
        resolver_for(&new).await?
    };
    let restart_only = [
        (
            "server.listen",
            new.server.listen != old.config.server.listen,
        ),
        (
            "metrics.listen",
            new.metrics.listen != old.config.metrics.listen,
        ),
        ("log.format", new.log.format != old.config.log.format),
    ];
    for (key, changed) in restart_only {
        if changed {
            warn!("{key} changed: it takes effect only when danegate restarts");
        }
    }
    crate::sts::reconfigure(&old.sts, &new, resolver.clone())?;
    if new.state.dir != old.config.state.dir {
        warn!("state.dir changed: it takes effect only when danegate restarts");
    }
    handle.replace(Arc::new(Context {
        tlsrpt: old.tlsrpt.clone(),
        ..Context::with_sts(new, resolver, old.sts.clone())
    }));
    Ok(())
}

fn config_check(config: &Config) -> ExitCode {
    let dkim = crate::reporter::live::check_dkim(&config.tlsrpt);
    if let Err(e) = &dkim {
        error!("configuration error: {e}");
    }
    match toml::to_string_pretty(config) {
        Ok(text) => {
            println!("# effective configuration (every default filled in)\n{text}");
            for note in crate::reporter::live::notes(&config.tlsrpt) {
                println!("# {note}");
            }
            if dkim.is_err() {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("cannot print the configuration: {e}");
            ExitCode::FAILURE
        }
    }
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
