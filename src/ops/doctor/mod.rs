//! `danegate doctor [--config FILE] [--json]`: the resolver self-test an
//! operator runs first on a new machine (danecheck's resolver checks are
//! the model). DANE is only as good as the DNSSEC answers behind it, and a
//! resolver that does not validate, strips signatures or forwards
//! someone else's AD bit makes every domain look unsigned without an
//! error anywhere. Checked, per name server where it applies:
//!
//! | check | passes when |
//! |---|---|
//! | `udp`, `tcp` | the server answers a question over UDP, and over TCP |
//! | `dnssec-records` | a DO question (CD set) for the trust anchor's DNSKEY set brings RRSIGs |
//! | `validates` (trust-ad) | the server sets AD on that DNSKEY set itself |
//! | `local-validator` (trust-ad) | the server is a validating resolver, not a loopback forwarder (systemd-resolved, Docker's DNS, dnsmasq); warns otherwise, and when it cannot tell |
//! | `trust-anchor` | the anchor's DNSKEY set validates through the resolver danegate builds (the start-up probe) |
//! | `secure-name` | `dns.doctor_secure_name` (default: the anchor's zone) comes back secure |
//! | `bogus-name` | `dns.doctor_bogus_name`, if set, fails validation |
//! | `clock` | the system clock is inside the validity of the DNSKEY signatures |
//!
//! The verdict is the worst status: exit 0 ok, 1 warnings, 2 failures.
//! `--json` prints the report for monitoring; `danegate run` logs the
//! same verdict at start-up ([`log_at_start`]).

mod checks;
mod listener;

use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::config::{Config, DnsMode};
use crate::dns::selftest::Transport;

/// How one check came out, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not applicable here, or impossible after an earlier failure.
    Skip,
    Warn,
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skip => "skip",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    /// The name server checked, for per-server checks.
    pub server: Option<String>,
    pub status: Status,
    pub detail: String,
}

/// The whole self-test.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ok`, `warn` or `fail`: the worst status of any check.
    pub verdict: Status,
    pub mode: &'static str,
    pub nameservers: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(config: &Config, nameservers: Vec<String>, checks: Vec<Check>) -> Report {
        let verdict = checks
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Status::Skip)
            .max()
            .unwrap_or(Status::Ok);
        Report {
            verdict,
            mode: match config.dns.mode {
                DnsMode::Validate => "validate",
                DnsMode::TrustAd => "trust-ad",
            },
            nameservers,
            checks,
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "danegate doctor: mode {}, name servers {}\n",
            self.mode,
            self.nameservers.join(" ")
        );
        for c in &self.checks {
            let server = c
                .server
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            out += &format!(
                "  {:<5} {}{server}: {}\n",
                c.status.word(),
                c.check,
                c.detail
            );
        }
        out += &format!("verdict: {}\n", self.verdict.word().to_lowercase());
        out
    }

    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self.verdict {
            Status::Ok | Status::Skip => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        })
    }
}

/// How long one question may take.
fn limit(config: &Config) -> Duration {
    Duration::from_secs(config.dns.timeout.clamp(1, 5))
}

/// Runs every check against the configured resolver.
pub async fn examine(config: &Config) -> Report {
    let servers = match crate::dns::nameservers(&config.dns) {
        Ok(s) => s,
        Err(e) => {
            let c = Check {
                check: "nameservers",
                server: None,
                status: Status::Fail,
                detail: e,
            };
            return Report::new(config, Vec::new(), vec![c]);
        }
    };
    let names = servers.iter().map(|s| s.to_string()).collect();
    let limit = limit(config);
    let zone = anchor_zone(config);
    let mut all = Vec::new();
    let reachable = transports(&servers, &zone, limit, &mut all).await;
    if !reachable {
        all.push(skipped("the remaining checks", "no name server answers"));
        return Report::new(config, names, all);
    }
    let mut served = None;
    for (c, s) in join_all(
        servers
            .iter()
            .map(|s| checks::dnssec_records(*s, &zone, limit)),
    )
    .await
    {
        all.push(c);
        served = served.or(s);
    }
    if config.dns.mode == DnsMode::TrustAd {
        all.extend(
            join_all(
                servers
                    .iter()
                    .map(|s| checks::authenticates(*s, &zone, limit)),
            )
            .await,
        );
        all.extend(join_all(servers.iter().map(|s| checks::local_validator(*s, limit))).await);
    }
    all.extend(resolver_checks(config, &zone).await);
    all.push(checks::clock(served.as_ref(), &zone, now()));
    Report::new(config, names, all)
}

/// UDP and TCP to every server; whether any server answers at all.
async fn transports(
    servers: &[std::net::SocketAddr],
    zone: &str,
    limit: Duration,
    out: &mut Vec<Check>,
) -> bool {
    let asks = servers.iter().flat_map(|s| {
        [Transport::Udp, Transport::Tcp]
            .into_iter()
            .map(move |t| checks::transport(*s, t, zone, limit))
    });
    let results = join_all(asks).await;
    let any = results.iter().any(|c| c.status == Status::Ok);
    out.extend(results);
    any
}

/// The checks made through the resolver danegate itself would use.
async fn resolver_checks(config: &Config, zone: &str) -> Vec<Check> {
    let built = match crate::dns::build(&config.dns).await {
        Ok(b) => b,
        Err(e) => {
            return vec![Check {
                check: "resolver",
                server: None,
                status: Status::Fail,
                detail: e,
            }]
        }
    };
    let probe = crate::dns::probe(&built).await;
    let mut out = vec![checks::trust_anchor(&probe, &built.anchors)];
    let secure = config.dns.doctor_secure_name.as_deref().unwrap_or(zone);
    out.push(checks::secure_name(&built.resolver, secure).await);
    match &config.dns.doctor_bogus_name {
        Some(name) => out.push(checks::bogus_name(&built.resolver, name).await),
        None => out.push(skipped("bogus-name", "dns.doctor_bogus_name is not set")),
    }
    out
}

fn skipped(check: &'static str, why: &str) -> Check {
    Check {
        check,
        server: None,
        status: Status::Skip,
        detail: why.to_owned(),
    }
}

/// The zone the trust anchor is for: the first owner in the anchor file,
/// else the root.
fn anchor_zone(config: &Config) -> String {
    config
        .dns
        .trust_anchor_file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| {
            text.lines()
                .map(|l| l.split(';').next().unwrap_or("").trim())
                .find(|l| !l.is_empty())
                .and_then(|l| l.split_whitespace().next())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| ".".to_owned())
}

fn now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs & 0xffff_ffff) as u32
}

/// `danegate doctor`: prints the report; the exit status is the verdict.
pub fn run(config: Config, json: bool) -> ExitCode {
    let Some(rt) = crate::ops::runtime() else {
        return ExitCode::FAILURE;
    };
    let report = rt.block_on(examine(&config));
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
    report.exit_code()
}

/// The same self-test at start-up, logged: each warning and failure, then
/// the verdict. It never stops danegate (the start-up probe decides that).
pub async fn log_at_start(config: Config) {
    let report = examine(&config).await;
    for c in &report.checks {
        let server = c
            .server
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        match c.status {
            Status::Warn => warn!("resolver self-test: {}{server}: {}", c.check, c.detail),
            Status::Fail => error!("resolver self-test: {}{server}: {}", c.check, c.detail),
            Status::Ok | Status::Skip => {}
        }
    }
    let n = report.checks.len();
    match report.verdict {
        Status::Ok | Status::Skip => info!("resolver self-test (danegate doctor): ok, {n} checks"),
        Status::Warn => {
            warn!("resolver self-test (danegate doctor): warnings, see above ({n} checks)")
        }
        Status::Fail => {
            error!("resolver self-test (danegate doctor): FAILED, see above ({n} checks)")
        }
    }
}
