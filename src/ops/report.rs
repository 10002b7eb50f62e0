//! `danegate report [--day D] [--domain D] [--json]`: the day's TLS
//! session outcomes per recipient domain (which destinations failed and
//! why), with where each report went; `danegate report --preview
//! DOMAIN`: the RFC 8460 report JSON that would be sent for it.
//!
//! The running danegate holds the state database (redb allows one
//! process), so the command asks it for the day's counts through the
//! control socket in `[state] dir`; when nothing answers there it opens
//! the database itself. Either way [`answer`] reads the counts and this
//! command renders them with its own configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::config::Config;
use crate::reporter::jobs::{self, DestState, Job, Status};
use crate::state::Store;
use crate::tlsrpt::counts::{self, DomainDay};
use crate::tlsrpt::day::{Clock, Day, SystemClock};
use crate::tlsrpt::model::{Policy, PolicyResult, PolicyType, Summary};
use crate::tlsrpt::report::{to_json_pretty, Reporter};

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// The UTC day (YYYY-MM-DD); default: today.
    #[arg(long)]
    pub day: Option<String>,
    /// Only this recipient domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    /// Print the RFC 8460 report JSON that would be sent for DOMAIN.
    #[arg(long, value_name = "DOMAIN", conflicts_with_all = ["domain", "json"])]
    pub preview: Option<String>,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// What the control socket carries back: the day's counts and reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct DayCounts {
    pub instance: String,
    pub domains: Vec<DomainCounts>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DomainCounts {
    pub domain: String,
    pub policies: Vec<PolicyResult>,
    pub overflow: u64,
    #[serde(default)]
    pub report: Option<Job>,
}

/// The request line: `report DAY DOMAIN|-`.
pub fn line(day: Day, domain: Option<&str>) -> String {
    format!("report {day} {}\n", domain.unwrap_or("-"))
}

/// Answers a request line with the exit status and the day's counts as
/// JSON (used by the control socket and locally).
pub fn answer(store: &Store, line: &str) -> (u8, String) {
    let mut w = line.split_ascii_whitespace();
    let (Some("report"), Some(day), Some(domain), None) = (w.next(), w.next(), w.next(), w.next())
    else {
        return (2, "expected \"report DAY DOMAIN|-\"\n".into());
    };
    let Ok(day) = Day::parse(day) else {
        return (2, format!("{day:?} is not a day\n"));
    };
    let domain = (domain != "-").then_some(domain);
    match day_counts(store, day, domain) {
        Ok(c) => (
            0,
            serde_json::to_string(&c).expect("counts serialise") + "\n",
        ),
        Err(e) => (1, format!("{e}\n")),
    }
}

fn day_counts(store: &Store, day: Day, domain: Option<&str>) -> Result<DayCounts, counts::DbError> {
    let domains = counts::day(store, day, domain)?
        .into_iter()
        .map(|d| {
            let report = jobs::get(store, day, &d.domain)?;
            Ok(DomainCounts {
                domain: d.domain,
                policies: d.policies,
                overflow: d.overflow,
                report,
            })
        })
        .collect::<Result<_, counts::DbError>>()?;
    Ok(DayCounts {
        instance: jobs::existing_instance_id(store)?.unwrap_or_else(|| "0".repeat(16)),
        domains,
    })
}

/// The command line's entry.
pub fn run(args: ReportArgs) -> ExitCode {
    let config = match crate::cli::loaded(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let day = match args.day.as_deref().map(Day::parse).transpose() {
        Ok(d) => d.unwrap_or_else(|| SystemClock.today()),
        Err(e) => {
            error!("--day: {e}");
            return ExitCode::from(2);
        }
    };
    let domain = args
        .preview
        .as_deref()
        .or(args.domain.as_deref())
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    let counts = match fetch(&config, &line(day, domain.as_deref())) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(d) = domain.as_deref().filter(|_| args.preview.is_some()) {
        return preview(&config, day, d, counts);
    }
    let failed = counts
        .domains
        .iter()
        .any(|d| Summary::total(&d.policies).failed > 0);
    let ok = !failed;
    if args.json {
        let view = serde_json::json!({"day": day.to_string(), "instance": counts.instance, "domains": counts.domains});
        println!("{}", serde_json::to_string_pretty(&view).expect("JSON"));
    } else {
        print!("{}", text(day, &counts));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The counts from the running danegate, else from the database itself.
fn fetch(config: &Config, request: &str) -> Result<DayCounts, String> {
    let socket = crate::ops::control::socket_path(&config.state.dir);
    let (code, text) = match crate::ops::control::ask(&socket, request) {
        Some(answer) => answer?,
        None => {
            let store = Store::open(&config.state.dir)
                .map_err(|e| format!("{e} (is a danegate running without its control socket?)"))?;
            answer(&store, request)
        }
    };
    if code != 0 {
        return Err(text.trim_end().to_owned());
    }
    serde_json::from_str(&text).map_err(|e| format!("unreadable answer: {e}"))
}

fn preview(config: &Config, day: Day, domain: &str, counts: DayCounts) -> ExitCode {
    let t = &config.tlsrpt;
    for m in t.missing() {
        warn!("{m}: the preview shows what is configured");
    }
    let Some(d) = counts.domains.into_iter().next() else {
        error!("no TLS sessions with {domain} on {day}: no report would be sent");
        return ExitCode::from(1);
    };
    let reporter = Reporter {
        organization: t.organization_name.clone(),
        contact: t.contact_info.clone(),
        submitter: t.submitter().unwrap_or_default(),
        instance: counts.instance,
    };
    let dd = DomainDay {
        domain: d.domain,
        policies: d.policies,
        overflow: d.overflow,
    };
    println!("{}", to_json_pretty(&reporter.report(day, &dd)));
    ExitCode::SUCCESS
}

/// The text form: per domain its sessions, per policy its failures, and
/// where the day's report went.
pub fn text(day: Day, counts: &DayCounts) -> String {
    let mut out = format!("TLS sessions on {day} (UTC), by recipient domain:\n");
    if counts.domains.is_empty() {
        out.push_str("  none\n");
    }
    for d in &counts.domains {
        let s = Summary::total(&d.policies);
        out.push_str(&format!(
            "  {}: {} successful, {} failed\n",
            d.domain, s.successful, s.failed
        ));
        for p in &d.policies {
            out.push_str(&format!(
                "    {}: {} successful, {} failed\n",
                policy_words(&p.policy),
                p.summary.successful,
                p.summary.failed
            ));
            for f in &p.failure_details {
                let x = &f.failure;
                let mut at = x.mx_host.clone().unwrap_or_default();
                if let Some(ip) = &x.receiving_ip {
                    at.push_str(&format!("[{ip}]"));
                }
                out.push_str(&format!(
                    "      {} x {}{}: {}\n",
                    f.count,
                    x.result,
                    if at.is_empty() {
                        String::new()
                    } else {
                        format!(" {at}")
                    },
                    x.reason.as_deref().unwrap_or("")
                ));
            }
        }
        if d.overflow > 0 {
            out.push_str(&format!(
                "    {} more failed session(s) with other details (tlsrpt.max_failure_details reached)\n",
                d.overflow
            ));
        }
        out.push_str(&format!(
            "    report: {}\n",
            report_state(d.report.as_ref())
        ));
    }
    out
}

/// "DANE, TLSA at mx.example.net: 3 1 1 0a1b2c3d…", "MTA-STS policy of
/// example.net (mode: enforce)", "no policy".
fn policy_words(p: &Policy) -> String {
    match p.kind {
        PolicyType::Tlsa if p.strings.is_empty() => format!("DANE, TLSA at {}", p.domain),
        PolicyType::Tlsa => {
            let short: Vec<String> = p
                .strings
                .iter()
                .map(|r| match r.rsplit_once(' ') {
                    Some((head, data)) if data.len() > 8 => format!("{head} {}…", &data[..8]),
                    _ => r.clone(),
                })
                .collect();
            format!("DANE, TLSA at {}: {}", p.domain, short.join(", "))
        }
        PolicyType::Sts => match p.strings.iter().find(|l| l.starts_with("mode:")) {
            Some(mode) => format!("MTA-STS policy of {} ({mode})", p.domain),
            None => format!("MTA-STS policy of {}", p.domain),
        },
        PolicyType::NoPolicyFound => "no policy".into(),
    }
}

fn report_state(job: Option<&Job>) -> String {
    let Some(job) = job else {
        return "not made (the day is not over, or [tlsrpt] is not enabled)".into();
    };
    match &job.status {
        Status::NoPolicy(why) => format!("none sent: {why}"),
        Status::GaveUp(why) => format!("given up: {why}"),
        Status::Pending if job.json.is_none() => {
            format!("due at {}", crate::tlsrpt::day::rfc3339(job.next_try))
        }
        _ => job
            .destinations
            .iter()
            .map(|d| match d.state {
                DestState::Sent => format!(
                    "sent to {} at {}",
                    d.uri,
                    crate::tlsrpt::day::rfc3339(d.sent_at.unwrap_or_default())
                ),
                DestState::Skipped => format!(
                    "not sent to {}: {}",
                    d.uri,
                    d.last_error.as_deref().unwrap_or("")
                ),
                DestState::Failed => format!(
                    "failed to {}: {}",
                    d.uri,
                    d.last_error.as_deref().unwrap_or("")
                ),
                DestState::Pending => format!(
                    "pending for {} (try {}, next at {}){}",
                    d.uri,
                    d.attempts,
                    crate::tlsrpt::day::rfc3339(job.next_try),
                    d.last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}
