//! `danegate check DOMAIN [--json] [--config FILE]`: the whole delivery
//! path to a domain as a DANE-enforcing sender sees it, checked end to end,
//! for operators monitoring their own MX hosts (the job of `danecheck` or
//! Postfix's `posttls-finger`).
//!
//! What it does, in order:
//! 1. The start-up probe: does DNSSEC validation work at all?
//! 2. The next-hop plan (`nexthop`, dane-rules §1–2): MX records and their
//!    security, every MX host, every IPv4 and IPv6 address of each (the
//!    families `[dns] families` allows), the TLSA records at each host's
//!    TLSA base domain, their security and usability, and the host's
//!    requirement. The plan is made at policy level `dane` whatever
//!    `[policy]` says for the domain (a check of DANE must look the records
//!    up); `[routes]` apply, as they do to mail.
//! 3. For every address of every host, a real SMTP conversation: greeting,
//!    EHLO, STARTTLS, the handshake, EHLO again, QUIT (no mail is sent).
//!    The handshake accepts any certificate chain (so the chain is always
//!    seen) but still verifies the server's handshake signature with the
//!    crypto provider; the presented chain is then judged by
//!    [`verify_chain`](crate::tls::dane::verify_chain), the same pure DANE
//!    check the relay's verifier uses, with the host's TLSA records and
//!    the reference identifiers {TLSA base domain, MX host, DOMAIN}. SNI
//!    is the TLSA base domain.
//!    When the primary TLS engine (rustls) has no protocol version, cipher
//!    suite, key exchange or signature algorithm in common with the server
//!    and `[tls] legacy` is on, the handshake is made again with the
//!    legacy engine (OpenSSL), as the relay does, at the floor the relay
//!    would use for the host (`[tls] min_version` where TLS is required);
//!    the report says which engine the address needed and why.
//! 4. Two more handshakes per address, one offering only RSA signature
//!    schemes (and only TLS 1.2 suites that sign with RSA), one offering
//!    only ECDSA ones. A server with an RSA and an ECDSA certificate then
//!    presents the other one, and a server whose second key has no TLSA
//!    record fails senders that prefer that algorithm: a failure of that
//!    address. A server that ends such a handshake before presenting any
//!    certificate has no key of that kind ("no RSA key"): not a failure.
//!
//! Every step is bounded: DNS lookups by `[dns] timeout`, the
//! conversation by `[timeouts]` (`connect`, `greeting`, `ehlo`, `starttls`,
//! `quit`). Session resumption is off, so every handshake shows a chain.
//!
//! # Verdict and exit status
//!
//! `verdict` is one of:
//! - `ok`: every address of every MX host verified (exit 0);
//! - `no-dane`: no host of the domain requires DANE: an insecure (unsigned)
//!   domain, insecure address records, no secure TLSA records, or none
//!   usable (exit 1; a domain without DANE fails a DANE check);
//! - `failed`: DANE is there, but something does not hold: a mismatching
//!   certificate, no STARTTLS, a second key without a TLSA record, a host
//!   without DANE next to hosts with it, an MX RRset that is not
//!   DNSSEC-signed (anyone on the path could replace it), an MX host
//!   skipped for a failed lookup, a connection that failed (exit 1);
//! - `error`: the domain cannot be checked: DNSSEC validation does not
//!   work, the MX lookup failed, the domain does not exist, has a null MX,
//!   or no usable host (exit 1).
//!
//! Warnings never change the exit status: a certificate that expires
//! within 30 days (or has expired, when DANE-EE, which ignores dates, still
//! matches it), a probe handshake that could not be made. Configuration
//! errors exit 2 with a message on standard error and nothing on standard
//! output.
//!
//! # JSON (`--json`)
//!
//! One object on standard output; the field names are stable. Times are
//! RFC 3339 in UTC; digests and TLSA data are lower-case hex; TLSA records
//! are written `usage selector mtype hex`.
//!
//! - `domain`, `verdict` (above), `ok` (verdict is `ok`)
//! - `dnssec`: `{validated, detail}`
//! - `resolver`: the resolver self-test of `danegate doctor`: `{verdict:
//!   "ok"|"warn"|"fail", findings}` (`findings`: each warning and failure,
//!   `check server: detail`; failures are also `problems`, warnings
//!   `warnings`)
//! - `mx`: `{source: "mx"|"implicit-mx"|"route"|"address-literal",
//!   security: "secure"|"insecure"}`, or null when no plan was made
//! - `error`: why no plan was made (the reply the legacy MTA would get),
//!   or null
//! - `problems`, `warnings`: every failure and warning, one line each,
//!   naming the host and address (`mx1.example[192.0.2.1]:25: ...`)
//! - `skipped`: `[{name, reason}]`, MX hosts left out of the plan
//! - `hosts`: in the order a sender tries them, each
//!   - `name`, `port`, `preference`, `address_security` (`secure`,
//!     `insecure`, or `mixed` when the A and AAAA RRsets differ), `cname`
//!     (`{target, secure}` or null), `requirement` (as `resolve` says it),
//!     `dane` (DANE required), `ok`
//!   - `tlsa_status`: `usable`, `all-unusable`, `none-secure` or
//!     `not-looked-up`; `tlsa_name` (`_25._tcp.BASE`, null when none was
//!     found); `tlsa`: `[{record, usable, used, unusable_reason}]` (`used`:
//!     usable and kept by digest agility)
//!   - `problems`: host-level ones (no DANE)
//!   - `addresses`: each
//!     - `address`, `family` (`ipv4`|`ipv6`), `security` (of its A or
//!       AAAA RRset), `requirement` (DANE applies to addresses from secure
//!       RRsets; an address without DANE next to ones with it is a
//!       problem), `ok`, `connected`,
//!       `starttls` (offered: true/false, null when the conversation ended
//!       before EHLO), `error` (why the main handshake did not complete, or
//!       null)
//!     - `tls`: `{protocol, cipher, sni, authentication, engine,
//!       primary_engine_failure}` or null (`authentication`: `Verified`,
//!       `Trusted` (DANE matched, MX not signed), `Untrusted` or
//!       `Anonymous`; `engine`: `rustls`, or `legacy` when the address
//!       needed OpenSSL, with `primary_engine_failure` saying why rustls
//!       could not; null otherwise)
//!     - `chain`: the presented certificates, leaf first: `{depth,
//!       subject, issuer, dns_names, key_algorithm (e.g. "ECDSA P-256",
//!       "RSA 2048"), not_before, not_after, expires_in_days, spki_sha256,
//!       cert_sha256, tlsa_matches}` (`tlsa_matches`: the host's records
//!       whose data matches this certificate, usable or not)
//!     - `dane`: `{verified, matched, failure}` or null when the host has
//!       no TLSA records or no chain was seen; `matched`: `{usage,
//!       selector, mtype, data, depth, from_dns, text}` (`depth` in the
//!       verified path, 0 = leaf)
//!     - `key_probes`: `[{algorithm: "RSA"|"ECDSA", outcome, detail,
//!       same_as_default, leaf}]` (made with the primary engine; none for
//!       an address that needs the legacy engine), `outcome` one of `verified`,
//!       `mismatch`, `presented` (no TLSA records to judge by), `no-key`,
//!       `failed`; `leaf` is the presented leaf (as in `chain`) or null
//!     - `problems`, `warnings` of this address
//!
//! With MTA-STS (RFC 8461): the plan applies the domain's policy as
//! delivery does (discovered, cached or fetched; DANE first), `mta_sts`
//! shows it (`summary`, `txt_id`, `policy`: `{id, mode, max_age, mx,
//! source, fetched_at, age_seconds, expires_at}`, `fetch_error`), each
//! host says its `mechanism` (`dane`, `mta-sts`, `none`, `refused`) and
//! `mta_sts` status, and every address of a host the policy names (and
//! DANE does not cover) gets `webpki: {valid, detail}`, its certificate
//! judged for the MX host name against the WebPKI roots. A host that
//! requires MTA-STS is verified when that check passes; `no-dane` then
//! means that no host is authenticated by either mechanism.
//!
//! What it does not do: send mail, check TLS-RPT, or ask authoritative
//! servers directly (that is `tlsa published`).
//!
//! # Files
//!
//! This file runs the command and the plan; `host.rs` checks one host and
//! each of its addresses (the main handshake and its DANE verdict);
//! `probe.rs` makes the handshakes (through the `check` configuration and
//! recording verifier of [`crate::tls`]) and the RSA-only and ECDSA-only
//! key probes; `cert.rs` describes a presented certificate and warns of
//! its dates; `report.rs` is the report (the JSON object) and its verdict;
//! `text.rs` writes it for people.

mod cert;
mod host;
mod probe;
mod report;
mod sts;
mod text;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tracing::error;

use crate::config::{Config, LogFormat, Timeouts};
use crate::dns::{Probe, Resolver};
use crate::ops::resolve::{source, MxReport, SkippedReport};
use crate::outbound::failure::Failure;
use crate::outbound::plan::{Plan, PlanError, Planner, Source};
use crate::policy::Level;
use crate::tls::UnixTime;

pub use cert::EXPIRY_WARNING_DAYS;
pub use report::{
    AddressCheck, CertReport, CheckReport, DaneReport, Dnssec, HostCheck, KeyProbe, MatchReport,
    TlsReport, TlsaReport,
};

/// `danegate check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The recipient domain whose MX hosts to check.
    pub domain: String,
    /// JSON output for monitoring systems (stable field names; see the
    /// documentation of `danegate::ops::check`).
    #[arg(long)]
    pub json: bool,
    /// Configuration file (TOML): its `[dns]`, `[timeouts]`, `[routes]` and
    /// server.hostname (the EHLO name) are used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Runs the check and prints the report; the exit status is 0 only when
/// every address of every MX host verified.
/// Starts logging (to standard error, in the configuration's `[log]
/// format`) unless the caller already did.
pub fn run(args: CheckArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                crate::logging::init(LogFormat::Text);
                error!("configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    crate::logging::init(config.log.format);
    let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        error!("no domain to check");
        return ExitCode::from(2);
    }
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
    let report = runtime.block_on(check_with_configured_dns(&config, &domain));
    super::print_report(&report, args.json, CheckReport::text, report.ok)
}

/// The configured resolver, the start-up probe of DNSSEC validation, then
/// the check.
async fn check_with_configured_dns(config: &Config, domain: &str) -> CheckReport {
    let built = match crate::dns::build(&config.dns).await {
        Ok(b) => b,
        Err(e) => {
            let dnssec = Dnssec {
                validated: false,
                detail: e.clone(),
            };
            return CheckReport::unchecked(domain, dnssec, e);
        }
    };
    let dnssec = match crate::dns::probe(&built).await {
        Probe::Validated => Dnssec {
            validated: true,
            detail: format!("validated (trust anchors: {})", built.anchors),
        },
        Probe::NotValidated(e) | Probe::Unreachable(e) => Dnssec {
            validated: false,
            detail: e,
        },
    };
    let resolver: Arc<dyn Resolver> = built.resolver;
    let mut report = check(config, &resolver, dnssec, domain).await;
    report.resolver_findings(crate::ops::doctor::examine(config).await);
    report
}

/// Checks `domain` (lowercase, no trailing dot) through `resolver`; see
/// the module documentation for what is checked.
pub async fn check(
    config: &Config,
    resolver: &Arc<dyn Resolver>,
    dnssec: Dnssec,
    domain: &str,
) -> CheckReport {
    let mut config = config.clone();
    config.policy.default = Level::Dane;
    config.policy.domains.clear();
    let mut report = CheckReport::new(domain, dnssec);
    if !report.dnssec.validated {
        report.problems.push(format!(
            "DNSSEC validation does not work, so no answer can be proven secure and no host gets DANE: {}",
            report.dnssec.detail
        ));
    }
    // MTA-STS from the state database when no danegate holds it (else a
    // cache in memory: the policy is fetched).
    let (store, _) = crate::state::Store::open_or_memory(&config.state.dir);
    let sts = crate::sts::from_config(&config, resolver.clone(), store).ok();
    let roots = sts.as_ref().map(|s| s.roots());
    let planner = Planner {
        sts,
        ..Planner::for_config(&config)
    };
    let plan = match planner.plan(resolver.as_ref(), &config, domain).await {
        Ok(p) => p,
        Err(e) => {
            if let PlanError::NoHost {
                problems,
                origin,
                mx_security,
                ..
            } = &e
            {
                // The MX RRset's security is reported with or without a
                // usable host.
                report.mx = Some(MxReport {
                    source: source(*origin),
                    security: mx_security.to_string(),
                });
                report.skipped = problems.iter().map(SkippedReport::of).collect();
            }
            let text = Failure::Plan(e).reply().to_string();
            report.problems.push(format!("cannot deliver: {text}"));
            report.error = Some(text);
            return report.finish();
        }
    };
    plan_findings(&plan, domain, &mut report);
    report.mta_sts = Some(sts::report(&plan, crate::ops::dates::now_secs()));
    let ctx = Ctx {
        roots: roots.unwrap_or_else(crate::tls::webpki::Roots::none),
        hostname: config.server.hostname.0.clone(),
        timeouts: Arc::new(config.timeouts.clone()),
        domain: domain.to_owned(),
        mx_secure: plan.mx_security.is_secure(),
        now: UnixTime::now(),
        tls: config.tls.clone(),
    };
    for host in &plan.hosts {
        report.hosts.push(host::check_host(&ctx, host).await);
    }
    report.finish()
}

/// What the plan itself says: where the next hops came from, whether that
/// is DNSSEC-signed, which MX hosts were skipped.
fn plan_findings(plan: &Plan, domain: &str, report: &mut CheckReport) {
    report.mx = Some(MxReport {
        source: source(plan.source),
        security: plan.mx_security.to_string(),
    });
    // An MTA-STS enforce policy authenticates the MX host names by its
    // patterns (RFC 8461 §4.1): unsigned MX records are then covered.
    let sts_enforced = plan
        .sts
        .active()
        .is_some_and(|a| a.policy.mode == crate::sts::policy::Mode::Enforce);
    if !plan.mx_security.is_secure() && !sts_enforced {
        let what = match plan.source {
            Source::ImplicitMx => format!("the denial of MX records for {domain} is"),
            _ => format!("the MX records of {domain} are"),
        };
        report.problems.push(format!(
            "{what} not DNSSEC-signed (insecure): whoever can change the answer can send the mail elsewhere, so DANE does not protect {domain}"
        ));
    }
    for s in &plan.skipped {
        report.problems.push(format!("MX host skipped: {s}"));
        report.skipped.push(SkippedReport::of(s));
    }
}

/// What every connection of one check shares.
struct Ctx {
    /// The trust anchors of MTA-STS certificate checks.
    roots: crate::tls::webpki::Roots,
    hostname: String,
    timeouts: Arc<Timeouts>,
    domain: String,
    mx_secure: bool,
    now: UnixTime,
    /// `[tls]`: whether the legacy engine may be used, and the floors.
    tls: crate::config::Tls,
}
