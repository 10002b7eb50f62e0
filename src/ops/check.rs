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
//!    [`verify_chain`], the same pure DANE check the relay's verifier
//!    uses, with the host's TLSA records and the reference identifiers
//!    {TLSA base domain, MX host, DOMAIN}. SNI is the TLSA base domain.
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
//! - `mx`: `{source: "mx"|"implicit-mx"|"route"|"address-literal",
//!   security: "secure"|"insecure"}`, or null when no plan was made
//! - `error`: why no plan was made (the reply the legacy MTA would get),
//!   or null
//! - `problems`, `warnings`: every failure and warning, one line each,
//!   naming the host and address (`mx1.example[192.0.2.1]:25: ...`)
//! - `skipped`: `[{name, reason}]`, MX hosts left out of the plan
//! - `hosts`: in the order a sender tries them, each
//!   - `name`, `port`, `preference`, `address_security`, `cname`
//!     (`{target, secure}` or null), `requirement` (as `resolve` says it),
//!     `dane` (DANE required), `ok`
//!   - `tlsa_status`: `usable`, `all-unusable`, `none-secure` or
//!     `not-looked-up`; `tlsa_name` (`_25._tcp.BASE`, null when none was
//!     found); `tlsa`: `[{record, usable, used, unusable_reason}]` (`used`:
//!     usable and kept by digest agility)
//!   - `problems`: host-level ones (no DANE)
//!   - `addresses`: each
//!     - `address`, `family` (`ipv4`|`ipv6`), `ok`, `connected`,
//!       `starttls` (offered: true/false, null when the conversation ended
//!       before EHLO), `error` (why the main handshake did not complete, or
//!       null)
//!     - `tls`: `{protocol, cipher, sni, authentication}` or null
//!       (`authentication`: `Verified`, `Trusted` (DANE matched, MX not
//!       signed) or `Untrusted`)
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
//!       same_as_default, leaf}]`, `outcome` one of `verified`,
//!       `mismatch`, `presented` (no TLSA records to judge by), `no-key`,
//!       `failed`; `leaf` is the presented leaf (as in `chain`) or null
//!     - `problems`, `warnings` of this address
//!
//! What it does not do: send mail, check a domain's inbound policy
//! (MTA-STS, TLS-RPT), or ask authoritative servers directly (that is
//! `tlsa published`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureAlgorithm, SignatureScheme};
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::error;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::config::{Config, LogFormat, Timeouts};
use crate::dns::{Probe, Resolver, Tlsa};
use crate::outbound::client::{sni_for, Client, Hello, OutboundError, Peer, TlsMode};
use crate::outbound::plan::{Host, PlanError, Planner, Source};
use crate::outbound::stage::Stage;
use crate::policy::{Level, Requirement, TlsaStatus};
use crate::tls::dane::{select_records, verify_chain, DaneMatch, ReferenceIds};
use crate::tls::{TlsState, UnauthenticatedVerifier};

/// `danegate check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The recipient domain whose MX hosts to check.
    pub domain: String,
    /// JSON output for monitoring systems (stable field names; see the
    /// documentation of `danegate::ops::check`).
    #[arg(long)]
    pub json: bool,
    /// Configuration file (TOML): its [dns], [timeouts], [routes] and
    /// server.hostname (the EHLO name) are used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// A certificate that expires within this many days is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

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
    let report = runtime.block_on(async {
        let built = match crate::dns::build(&config.dns).await {
            Ok(b) => b,
            Err(e) => {
                let dnssec = Dnssec {
                    validated: false,
                    detail: e.clone(),
                };
                return CheckReport::unchecked(&domain, dnssec, e);
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
        check(&config, built.resolver.as_ref(), dnssec, &domain).await
    });
    if args.json {
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
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What the DNSSEC probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Dnssec {
    pub validated: bool,
    pub detail: String,
}

/// The whole report (the JSON object; see the module documentation).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub domain: String,
    pub verdict: &'static str,
    pub ok: bool,
    pub dnssec: Dnssec,
    pub mx: Option<MxReport>,
    pub error: Option<String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub skipped: Vec<SkippedReport>,
    pub hosts: Vec<HostCheck>,
}

#[derive(Debug, Serialize)]
pub struct MxReport {
    pub source: &'static str,
    pub security: String,
}

#[derive(Debug, Serialize)]
pub struct SkippedReport {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct HostCheck {
    pub name: String,
    pub port: u16,
    pub preference: u16,
    pub address_security: String,
    pub cname: Option<CnameReport>,
    pub requirement: String,
    pub dane: bool,
    pub ok: bool,
    pub tlsa_status: &'static str,
    pub tlsa_name: Option<String>,
    pub tlsa: Vec<TlsaReport>,
    pub problems: Vec<String>,
    pub addresses: Vec<AddressCheck>,
}

#[derive(Debug, Serialize)]
pub struct CnameReport {
    pub target: String,
    pub secure: bool,
}

#[derive(Debug, Serialize)]
pub struct TlsaReport {
    pub record: String,
    pub usable: bool,
    pub used: bool,
    pub unusable_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AddressCheck {
    pub address: String,
    pub family: &'static str,
    pub ok: bool,
    pub connected: bool,
    pub starttls: Option<bool>,
    pub error: Option<String>,
    pub tls: Option<TlsReport>,
    pub chain: Vec<CertReport>,
    pub dane: Option<DaneReport>,
    pub key_probes: Vec<KeyProbe>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TlsReport {
    pub protocol: String,
    pub cipher: String,
    pub sni: Option<String>,
    pub authentication: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub depth: usize,
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub key_algorithm: String,
    pub not_before: String,
    pub not_after: String,
    pub expires_in_days: i64,
    pub spki_sha256: String,
    pub cert_sha256: String,
    pub tlsa_matches: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DaneReport {
    pub verified: bool,
    pub matched: Option<MatchReport>,
    pub failure: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MatchReport {
    pub usage: u8,
    pub selector: u8,
    pub mtype: u8,
    pub data: String,
    pub depth: usize,
    pub from_dns: bool,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct KeyProbe {
    pub algorithm: &'static str,
    pub outcome: &'static str,
    pub detail: String,
    pub same_as_default: bool,
    pub leaf: Option<CertReport>,
}

impl CheckReport {
    fn new(domain: &str, dnssec: Dnssec) -> CheckReport {
        CheckReport {
            domain: domain.to_owned(),
            verdict: "error",
            ok: false,
            dnssec,
            mx: None,
            error: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            skipped: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// A report for a domain that could not be looked at (DNS could not be
    /// set up).
    pub fn unchecked(domain: &str, dnssec: Dnssec, error: String) -> CheckReport {
        let mut r = CheckReport::new(domain, dnssec);
        r.problems.push(error.clone());
        r.error = Some(error);
        r
    }

    /// Collects the hosts' problems and warnings and decides the verdict.
    fn finish(mut self) -> CheckReport {
        for h in &self.hosts {
            for p in &h.problems {
                self.problems.push(format!("{}: {p}", h.name));
            }
            for a in &h.addresses {
                let peer = peer_label(&h.name, &a.address, h.port);
                for p in &a.problems {
                    self.problems.push(format!("{peer}: {p}"));
                }
                for w in &a.warnings {
                    self.warnings.push(format!("{peer}: {w}"));
                }
            }
        }
        self.verdict = if self.error.is_some() || !self.dnssec.validated || self.hosts.is_empty() {
            "error"
        } else if !self.hosts.iter().any(|h| h.dane) {
            "no-dane"
        } else if self.problems.is_empty() {
            "ok"
        } else {
            "failed"
        };
        self.ok = self.verdict == "ok";
        self
    }
}

/// `host[address]:port`, as `outbound::Peer` writes it.
fn peer_label(host: &str, address: &str, port: u16) -> String {
    format!("{host}[{address}]:{port}")
}

/// Checks `domain` (lowercase, no trailing dot) through `resolver`; see
/// the module documentation for what is checked.
pub async fn check(
    config: &Config,
    resolver: &dyn Resolver,
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
    let planner = Planner::for_config(&config);
    let plan = match planner.plan(resolver, &config, domain).await {
        Ok(p) => p,
        Err(e) => {
            if let PlanError::NoHost { problems, .. } = &e {
                report.skipped = problems
                    .iter()
                    .map(|p| SkippedReport {
                        name: p.name.clone(),
                        reason: p.to_string(),
                    })
                    .collect();
            }
            let text = crate::outbound::failure::Failure::Plan(e)
                .reply()
                .to_string();
            report.problems.push(format!("cannot deliver: {text}"));
            report.error = Some(text);
            return report.finish();
        }
    };
    report.mx = Some(MxReport {
        source: source(plan.source),
        security: plan.mx_security.to_string(),
    });
    if !plan.mx_security.is_secure() {
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
        report.skipped.push(SkippedReport {
            name: s.name.clone(),
            reason: s.to_string(),
        });
    }
    let ctx = Ctx {
        hostname: config.server.hostname.0.clone(),
        timeouts: Arc::new(config.timeouts.clone()),
        domain: domain.to_owned(),
        mx_secure: plan.mx_security.is_secure(),
        now: UnixTime::now(),
    };
    for host in &plan.hosts {
        report.hosts.push(check_host(&ctx, host).await);
    }
    report.finish()
}

/// What every connection of one check shares.
struct Ctx {
    hostname: String,
    timeouts: Arc<Timeouts>,
    domain: String,
    mx_secure: bool,
    now: UnixTime,
}

fn source(s: Source) -> &'static str {
    match s {
        Source::Route => "route",
        Source::Mx => "mx",
        Source::ImplicitMx => "implicit-mx",
        Source::Literal => "address-literal",
    }
}

fn tlsa_status(s: TlsaStatus) -> &'static str {
    match s {
        TlsaStatus::NotLooked => "not-looked-up",
        TlsaStatus::NoSecureTlsa => "none-secure",
        TlsaStatus::AllUnusable => "all-unusable",
        TlsaStatus::Usable => "usable",
    }
}

/// Why a host gets no DANE (dane-rules §2).
fn no_dane_reason(host: &Host) -> String {
    let tlsa_name = format!("_{}._tcp.{}", host.port, host.name);
    match host.tlsa {
        TlsaStatus::NotLooked if host.name.parse::<IpAddr>().is_ok() => {
            "an address literal has no TLSA records".to_owned()
        }
        TlsaStatus::NotLooked => format!(
            "its address records are not DNSSEC-signed ({}), so no TLSA lookup is made",
            host.address_security
        ),
        TlsaStatus::NoSecureTlsa => format!(
            "no DNSSEC-signed TLSA records at {tlsa_name} (none published, or not signed)"
        ),
        TlsaStatus::AllUnusable => format!(
            "none of the TLSA records at _{}._tcp.{} is usable for SMTP: TLS is required, but nothing is authenticated",
            host.port,
            host.tlsa_base.as_deref().unwrap_or(&host.name)
        ),
        TlsaStatus::Usable => format!("requirement is {}", crate::ops::resolve::requirement(host.requirement)),
    }
}

async fn check_host(ctx: &Ctx, host: &Host) -> HostCheck {
    let dane = host.requirement == Requirement::DaneRequired;
    let used = select_records(&host.tlsa_records);
    let mut h = HostCheck {
        name: host.name.clone(),
        port: host.port,
        preference: host.preference,
        address_security: host.address_security.to_string(),
        cname: host.alias.as_ref().map(|a| CnameReport {
            target: a.name.clone(),
            secure: a.secure,
        }),
        requirement: crate::ops::resolve::requirement(host.requirement),
        dane,
        ok: false,
        tlsa_status: tlsa_status(host.tlsa),
        tlsa_name: host
            .tlsa_base
            .as_ref()
            .map(|b| format!("_{}._tcp.{b}", host.port)),
        tlsa: host
            .tlsa_records
            .iter()
            .map(|t| TlsaReport {
                record: t.to_string(),
                usable: crate::tls::tlsa::usability(t).is_ok(),
                used: used.contains(t),
                unusable_reason: crate::tls::tlsa::usability(t).err().map(|u| u.to_string()),
            })
            .collect(),
        problems: Vec::new(),
        addresses: Vec::new(),
    };
    if !dane {
        h.problems
            .push(format!("no DANE: {}", no_dane_reason(host)));
    }
    for ip in &host.addresses {
        h.addresses.push(check_address(ctx, host, *ip).await);
    }
    h.ok = h.problems.is_empty() && h.addresses.iter().all(|a| a.ok);
    h
}

/// How one address's certificates are judged.
struct Judge<'a> {
    records: &'a [Tlsa],
    port: u16,
    ids: ReferenceIds,
    now: UnixTime,
    /// DANE is required: a chain that does not verify is a problem.
    dane: bool,
}

impl Judge<'_> {
    /// The DANE verdict on a presented chain, when there are records.
    fn verify(&self, chain: &[CertificateDer<'static>]) -> Option<Result<DaneMatch, String>> {
        let (leaf, rest) = chain.split_first()?;
        if self.records.is_empty() {
            return None;
        }
        Some(
            verify_chain(self.records, self.port, &self.ids, leaf, rest, self.now)
                .map_err(|e| e.to_string()),
        )
    }
}

async fn check_address(ctx: &Ctx, host: &Host, ip: IpAddr) -> AddressCheck {
    let peer = Peer {
        host: host.name.clone(),
        addr: SocketAddr::new(ip, host.port),
    };
    let base = host.tlsa_base.clone().unwrap_or_else(|| host.name.clone());
    let sni = sni_for(&base);
    let judge = Judge {
        records: &host.tlsa_records,
        port: host.port,
        ids: ReferenceIds {
            tlsa_base: base,
            mx_host: host.name.clone(),
            nexthop: ctx.domain.clone(),
        },
        now: ctx.now,
        dane: host.requirement == Requirement::DaneRequired,
    };
    let mut a = AddressCheck {
        address: ip.to_string(),
        family: if ip.is_ipv4() { "ipv4" } else { "ipv6" },
        ok: false,
        connected: false,
        starttls: None,
        error: None,
        tls: None,
        chain: Vec::new(),
        dane: None,
        key_probes: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let main = handshake(ctx, &peer, sni.clone(), Keys::Any).await;
    let state = match &main.result {
        Ok(state) => {
            a.connected = true;
            a.starttls = Some(true);
            Some(state.clone())
        }
        Err(e) => {
            a.connected = !matches!(e, OutboundError::Connect { .. });
            // A chain means STARTTLS went through, whatever failed later.
            a.starttls = if main.chain.is_empty() {
                starttls_offered(e)
            } else {
                Some(true)
            };
            let text = describe(e);
            if judge.dane {
                a.problems.push(text.clone());
            }
            a.error = Some(text);
            None
        }
    };
    a.chain = main
        .chain
        .iter()
        .enumerate()
        .map(|(depth, der)| cert_report(depth, der, judge.records, ctx.now))
        .collect();
    let verdict = judge.verify(&main.chain);
    let dane_ee_leaf = matches!(&verdict, Some(Ok(m)) if m.usage == 3);
    expiry_warnings(&a.chain, dane_ee_leaf, "", &mut a.warnings);
    let completed = main.result.is_ok();
    a.dane = verdict.as_ref().map(|v| match v {
        // A handshake that failed after the certificate (a bad handshake
        // signature, say) proved nothing, whatever the chain matches.
        Ok(m) => DaneReport {
            verified: completed,
            matched: Some(match_report(m)),
            failure: (!completed)
                .then(|| "the chain matches, but the handshake did not complete".to_owned()),
        },
        Err(f) => DaneReport {
            verified: false,
            matched: None,
            failure: Some(f.clone()),
        },
    });
    if let Some(state) = &state {
        let authenticated = match &verdict {
            Some(Ok(m)) if judge.dane => state.authenticated(ctx.mx_secure, m),
            _ => state.clone(),
        };
        a.tls = Some(tls_report(&authenticated, sni.clone()));
    }
    if judge.dane {
        if let Some(Err(f)) = &verdict {
            a.problems.push(format!("certificate does not verify: {f}"));
        }
    }
    if a.starttls == Some(true) {
        for keys in [Keys::Rsa, Keys::Ecdsa] {
            let probe = key_probe(ctx, &peer, sni.clone(), keys, &judge, &main.chain).await;
            probe_findings(&probe, &judge, &main.chain, &mut a);
            a.key_probes.push(probe.report);
        }
    }
    a.ok = judge.dane && completed && a.problems.is_empty() && matches!(verdict, Some(Ok(_)));
    a
}

/// Whether the server offered STARTTLS, as far as the failed conversation
/// got.
fn starttls_offered(e: &OutboundError) -> Option<bool> {
    match e {
        OutboundError::StartTlsMissing { .. } => Some(false),
        OutboundError::StartTlsRefused { .. }
        | OutboundError::Tls { .. }
        | OutboundError::Dane { .. } => Some(true),
        OutboundError::Timeout { stage, .. }
        | OutboundError::Lost { stage, .. }
        | OutboundError::Protocol { stage, .. }
        | OutboundError::Unexpected { stage, .. } => {
            matches!(stage, Stage::StartTls | Stage::TlsHandshake).then_some(true)
        }
        // Before (or without) EHLO: nothing known.
        OutboundError::Rejected { .. }
        | OutboundError::Connect { .. }
        | OutboundError::Refused { .. } => None,
    }
}

/// A conversation failure without the peer (the report says where).
fn describe(e: &OutboundError) -> String {
    match e {
        OutboundError::Connect { cause, .. } => format!("cannot connect: {cause}"),
        OutboundError::Timeout { stage, .. } => format!("timed out while {stage}"),
        OutboundError::Lost { stage, cause, .. } => {
            format!("lost connection while {stage}: {cause}")
        }
        OutboundError::Protocol { stage, cause, .. } => {
            format!("malformed reply while {stage}: {cause}")
        }
        OutboundError::Rejected { stage, reply, .. } => {
            format!("server said {reply} (while {stage})")
        }
        OutboundError::Unexpected { stage, reply, .. } => {
            format!("unexpected reply {reply} while {stage}")
        }
        OutboundError::StartTlsMissing { .. } => "STARTTLS is not offered".to_owned(),
        OutboundError::StartTlsRefused { reply, .. } => format!("STARTTLS refused: {reply}"),
        OutboundError::Tls { cause, .. } | OutboundError::Dane { cause, .. } => {
            format!("TLS handshake failed: {cause}")
        }
        OutboundError::Refused { reason, .. } => reason.to_string(),
    }
}

fn tls_report(state: &TlsState, sni: Option<String>) -> TlsReport {
    let (protocol, cipher) = state
        .protocol_and_cipher()
        .map(|(p, c)| (p.to_owned(), c.to_owned()))
        .unwrap_or_default();
    TlsReport {
        protocol,
        cipher,
        sni,
        authentication: state.label(),
    }
}

fn match_report(m: &DaneMatch) -> MatchReport {
    MatchReport {
        usage: m.usage,
        selector: m.selector,
        mtype: m.mtype,
        data: hex(&m.data),
        depth: m.depth,
        from_dns: m.from_dns,
        text: m.to_string(),
    }
}

/// Warnings for certificates that expire soon, have expired, or are not
/// valid yet. `dane_ee_leaf`: DANE-EE matched the leaf, which makes its
/// dates irrelevant to DANE.
fn expiry_warnings(chain: &[CertReport], dane_ee_leaf: bool, what: &str, out: &mut Vec<String>) {
    for c in chain {
        let which = format!("{what}certificate at depth {} ({})", c.depth, c.subject);
        let ignored = if dane_ee_leaf && c.depth == 0 {
            " (DANE-EE ignores dates, so it still verifies)"
        } else {
            ""
        };
        if c.expires_in_days < 0 {
            out.push(format!("{which} expired on {}{ignored}", c.not_after));
        } else if c.expires_in_days < EXPIRY_WARNING_DAYS {
            out.push(format!(
                "{which} expires on {}, in {} days{ignored}",
                c.not_after, c.expires_in_days
            ));
        }
    }
}

/// Which signature algorithms a handshake offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    Any,
    Rsa,
    Ecdsa,
}

impl Keys {
    fn name(self) -> &'static str {
        match self {
            Keys::Any => "any",
            Keys::Rsa => "RSA",
            Keys::Ecdsa => "ECDSA",
        }
    }

    fn allows(self, scheme: SignatureScheme) -> bool {
        use SignatureScheme as S;
        match self {
            Keys::Any => true,
            Keys::Rsa => matches!(
                scheme,
                S::RSA_PKCS1_SHA1
                    | S::RSA_PKCS1_SHA256
                    | S::RSA_PKCS1_SHA384
                    | S::RSA_PKCS1_SHA512
                    | S::RSA_PSS_SHA256
                    | S::RSA_PSS_SHA384
                    | S::RSA_PSS_SHA512
            ),
            Keys::Ecdsa => matches!(
                scheme,
                S::ECDSA_SHA1_Legacy
                    | S::ECDSA_NISTP256_SHA256
                    | S::ECDSA_NISTP384_SHA384
                    | S::ECDSA_NISTP521_SHA512
            ),
        }
    }

    /// The TLS 1.2 suites' signature algorithm (TLS 1.3 suites name none).
    fn algorithm(self) -> Option<SignatureAlgorithm> {
        match self {
            Keys::Any => None,
            Keys::Rsa => Some(SignatureAlgorithm::RSA),
            Keys::Ecdsa => Some(SignatureAlgorithm::ECDSA),
        }
    }
}

/// The unauthenticated verifier (any chain, handshake signatures always
/// verified), offering only the schemes of `keys` and remembering the
/// chain the server presented.
#[derive(Debug)]
struct Recorder {
    inner: UnauthenticatedVerifier,
    keys: Keys,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl Recorder {
    fn new(keys: Keys) -> Recorder {
        Recorder {
            inner: UnauthenticatedVerifier::new(crate::tls::provider()),
            keys,
            chain: Mutex::new(Vec::new()),
        }
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner
            .supported_verify_schemes()
            .into_iter()
            .filter(|s| self.keys.allows(*s))
            .collect()
    }
}

/// A client configuration around `verifier`: TLS 1.2 suites limited to
/// those signing with `keys`' algorithm, no session resumption (a resumed
/// session shows no certificate).
fn client_config(verifier: Arc<Recorder>, keys: Keys) -> Arc<ClientConfig> {
    let mut provider = (*crate::tls::provider()).clone();
    if let Some(alg) = keys.algorithm() {
        provider
            .cipher_suites
            .retain(|s| s.usable_for_signature_algorithm(alg));
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One conversation up to the end of the second EHLO, then QUIT.
struct Handshake {
    result: Result<TlsState, OutboundError>,
    /// What the server presented (also when the handshake failed after).
    chain: Vec<CertificateDer<'static>>,
}

async fn handshake(ctx: &Ctx, peer: &Peer, sni: Option<String>, keys: Keys) -> Handshake {
    let recorder = Arc::new(Recorder::new(keys));
    let hello = Hello {
        hostname: ctx.hostname.clone(),
        tls_config: crate::tls::stream::Connector::primary(client_config(recorder.clone(), keys)),
        sni,
        tls: TlsMode::Required,
        timeouts: ctx.timeouts.clone(),
    };
    let result = match connect(peer, &ctx.timeouts).await {
        Ok(stream) => match Client::open(stream, peer.clone(), &hello).await {
            Ok(client) => {
                let state = client.tls_state().clone();
                client.quit().await;
                Ok(state)
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    Handshake {
        result,
        chain: recorder.chain(),
    }
}

async fn connect(peer: &Peer, timeouts: &Timeouts) -> Result<TcpStream, OutboundError> {
    let limit = Stage::Connect.timeout(timeouts);
    match timeout(limit, TcpStream::connect(peer.addr)).await {
        Err(_) => Err(OutboundError::Connect {
            peer: peer.clone(),
            cause: format!("connection timed out after {} s", limit.as_secs()),
        }),
        Ok(Err(e)) => Err(OutboundError::Connect {
            peer: peer.clone(),
            cause: e.to_string(),
        }),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// A key probe and what it found, before it becomes problems.
struct Probed {
    report: KeyProbe,
    /// The presented leaf did not verify, or the handshake failed after a
    /// certificate was presented.
    failed_after_certificate: bool,
    /// The probe could not be made for reasons that say nothing about keys.
    inconclusive: bool,
    leaf_chain: Vec<CertReport>,
}

/// A handshake offering only `keys`' signature schemes.
async fn key_probe(
    ctx: &Ctx,
    peer: &Peer,
    sni: Option<String>,
    keys: Keys,
    judge: &Judge<'_>,
    default_chain: &[CertificateDer<'static>],
) -> Probed {
    let alg = keys.name();
    let hs = handshake(ctx, peer, sni, keys).await;
    let same_as_default = !hs.chain.is_empty()
        && default_chain.first().map(|c| c.as_ref()) == hs.chain.first().map(|c| c.as_ref());
    let leaf_chain: Vec<CertReport> = hs
        .chain
        .first()
        .map(|der| cert_report(0, der, judge.records, judge.now))
        .into_iter()
        .collect();
    let mut probed = Probed {
        report: KeyProbe {
            algorithm: alg,
            outcome: "failed",
            detail: String::new(),
            same_as_default,
            leaf: leaf_chain.first().cloned(),
        },
        failed_after_certificate: false,
        inconclusive: false,
        leaf_chain,
    };
    let key = probed
        .report
        .leaf
        .as_ref()
        .map(|l| format!("{} certificate ({})", l.key_algorithm, l.subject))
        .unwrap_or_default();
    match &hs.result {
        Ok(_) => match judge.verify(&hs.chain) {
            Some(Ok(m)) => {
                probed.report.outcome = "verified";
                probed.report.detail = format!("{key} matches {m}");
            }
            Some(Err(f)) => {
                probed.report.outcome = "mismatch";
                probed.report.detail = format!("{key} does not verify: {f}");
                probed.failed_after_certificate = true;
            }
            None => {
                probed.report.outcome = "presented";
                probed.report.detail = format!("{key} (no TLSA records to judge it by)");
            }
        },
        Err(OutboundError::Tls { cause, .. }) if hs.chain.is_empty() => {
            probed.report.outcome = "no-key";
            probed.report.detail = format!(
                "no {alg} key: the server ended the {alg}-only handshake before presenting a certificate ({cause})"
            );
        }
        Err(e) if !hs.chain.is_empty() => {
            probed.report.detail = format!(
                "the {alg}-only handshake failed after the server presented its {key}: {}",
                describe(e)
            );
            probed.failed_after_certificate = true;
        }
        Err(e) => {
            probed.report.detail = format!(
                "the {alg}-only handshake could not be made: {}",
                describe(e)
            );
            probed.inconclusive = true;
        }
    }
    probed
}

/// Problems and warnings from one key probe.
fn probe_findings(
    probe: &Probed,
    judge: &Judge<'_>,
    default_chain: &[CertificateDer<'static>],
    a: &mut AddressCheck,
) {
    let alg = probe.report.algorithm;
    if probe.failed_after_certificate && judge.dane {
        a.problems.push(format!(
            "{alg}-only handshake: {}; senders that prefer {alg} cannot deliver",
            probe.report.detail
        ));
    } else if probe.inconclusive {
        a.warnings.push(probe.report.detail.clone());
    }
    let known = probe.report.leaf.as_ref().is_some_and(|l| {
        default_chain
            .iter()
            .any(|c| hex(&Sha256::digest(c)) == l.cert_sha256)
    });
    if !known {
        expiry_warnings(
            &probe.leaf_chain,
            probe.report.outcome == "verified"
                && probe
                    .report
                    .leaf
                    .as_ref()
                    .is_some_and(|l| l.tlsa_matches.iter().any(|r| r.starts_with("3 "))),
            &format!("{alg} key's "),
            &mut a.warnings,
        );
    }
}

/// What one presented certificate is, and which of `records` match it.
fn cert_report(depth: usize, der: &[u8], records: &[Tlsa], now: UnixTime) -> CertReport {
    let cert_sha256 = hex(&Sha256::digest(der));
    let parsed = X509Certificate::from_der(der).ok().map(|(_, c)| c);
    let Some(cert) = parsed else {
        return CertReport {
            depth,
            subject: "(certificate does not parse)".into(),
            issuer: String::new(),
            dns_names: Vec::new(),
            key_algorithm: "unknown".into(),
            not_before: String::new(),
            not_after: String::new(),
            expires_in_days: 0,
            spki_sha256: String::new(),
            cert_sha256,
            tlsa_matches: records
                .iter()
                .filter(|r| record_matches(r, der, None))
                .map(|r| r.to_string())
                .collect(),
        };
    };
    let spki = cert.tbs_certificate.subject_pki.raw;
    let not_after = cert.validity().not_after.timestamp();
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    CertReport {
        depth,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
        key_algorithm: key_algorithm(cert.public_key()),
        not_before: rfc3339(cert.validity().not_before.timestamp()),
        not_after: rfc3339(not_after),
        expires_in_days: (not_after - now).div_euclid(86_400),
        spki_sha256: hex(&Sha256::digest(spki)),
        cert_sha256,
        tlsa_matches: records
            .iter()
            .filter(|r| record_matches(r, der, Some(spki)))
            .map(|r| r.to_string())
            .collect(),
    }
}

/// Whether a TLSA record's data matches a certificate (RFC 6698 §2.1:
/// selector 0 the whole DER, 1 the SubjectPublicKeyInfo; matching type 0
/// exact, 1 SHA-256, 2 SHA-512), whatever its usage.
fn record_matches(record: &Tlsa, der: &[u8], spki: Option<&[u8]>) -> bool {
    let selected = match (record.selector, spki) {
        (0, _) => der,
        (1, Some(spki)) => spki,
        _ => return false,
    };
    match record.mtype {
        0 => selected == record.data.as_slice(),
        1 => Sha256::digest(selected).as_slice() == record.data.as_slice(),
        2 => Sha512::digest(selected).as_slice() == record.data.as_slice(),
        _ => false,
    }
}

/// "RSA 2048", "ECDSA P-256", "Ed25519"...
fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(PublicKey::RSA(k)) => format!("RSA {}", bit_length(k.modulus)),
            _ => "RSA".into(),
        },
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA (curve {other})"),
                None => "ECDSA".into(),
            }
        }
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("unknown ({other})"),
    }
}

/// The bit length of a big-endian unsigned integer.
fn bit_length(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `3 1 1 2c8a4f01…`: a record with its data cut short, for text output.
fn short_record(record: &str) -> String {
    let mut fields = record.splitn(4, ' ');
    let head: Vec<&str> = fields.by_ref().take(3).collect();
    match fields.next() {
        Some(data) if data.len() > 16 => format!("{} {}…", head.join(" "), &data[..16]),
        Some(data) => format!("{} {data}", head.join(" ")),
        None => record.to_owned(),
    }
}

impl CheckReport {
    /// The report as an operator reads it.
    pub fn text(&self) -> String {
        let mut out = format!("check {}: DNSSEC {}\n", self.domain, self.dnssec.detail);
        if let Some(mx) = &self.mx {
            let _ = writeln!(out, "  next hops from {} ({})", mx.source, mx.security);
        }
        for h in &self.hosts {
            h.text(&mut out);
        }
        for s in &self.skipped {
            let _ = writeln!(out, "  skipped {}: {}", s.name, s.reason);
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  cannot deliver: {e}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "WARNING {w}");
        }
        for p in &self.problems {
            let _ = writeln!(out, "PROBLEM {p}");
        }
        let summary = match self.verdict {
            "ok" => "every address of every MX host verified".to_owned(),
            "no-dane" => "no DANE: no MX host of the domain is protected by DANE".to_owned(),
            "failed" => format!("{} problem(s)", self.problems.len()),
            _ => "the domain could not be checked".to_owned(),
        };
        let _ = writeln!(out, "verdict: {} ({summary})", self.verdict);
        out
    }
}

impl HostCheck {
    fn text(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  host {} port {} preference {}: {}",
            self.name, self.port, self.preference, self.requirement
        );
        let addresses: Vec<&str> = self.addresses.iter().map(|a| a.address.as_str()).collect();
        let _ = writeln!(
            out,
            "    addresses ({}): {}",
            self.address_security,
            addresses.join(" ")
        );
        if let Some(c) = &self.cname {
            let sec = if c.secure { "secure" } else { "insecure" };
            let _ = writeln!(out, "    CNAME to {} ({sec})", c.target);
        }
        match &self.tlsa_name {
            Some(name) => {
                let _ = writeln!(out, "    TLSA at {name} (secure): {}", self.tlsa_status);
                for t in &self.tlsa {
                    let how = match (&t.unusable_reason, t.used) {
                        (Some(r), _) => format!("unusable: {r}"),
                        (None, true) => "usable".to_owned(),
                        (None, false) => "usable, not used (digest agility)".to_owned(),
                    };
                    let _ = writeln!(out, "      {} {how}", t.record);
                }
            }
            None => {
                let _ = writeln!(out, "    TLSA: {}", self.tlsa_status);
            }
        }
        for a in &self.addresses {
            a.text(&self.name, self.port, out);
        }
    }
}

impl AddressCheck {
    fn text(&self, host: &str, port: u16, out: &mut String) {
        let peer = peer_label(host, &self.address, port);
        let starttls = match self.starttls {
            Some(true) => "STARTTLS offered",
            Some(false) => "STARTTLS NOT offered",
            None => "STARTTLS unknown",
        };
        let verdict = if self.ok { "ok" } else { "FAILED" };
        if !self.connected {
            let e = self.error.as_deref().unwrap_or("not connected");
            let _ = writeln!(out, "    {peer}: {verdict}: {e}");
            return;
        }
        match (&self.tls, &self.error) {
            (Some(tls), _) => {
                let _ = writeln!(
                    out,
                    "    {peer}: {verdict}: {starttls}; {} TLS, {} with cipher {}",
                    tls.authentication, tls.protocol, tls.cipher
                );
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "    {peer}: {verdict}: {starttls}; {e}");
            }
            (None, None) => {
                let _ = writeln!(out, "    {peer}: {verdict}: {starttls}");
            }
        }
        for c in &self.chain {
            cert_text(c, "      ", out);
        }
        if let Some(d) = &self.dane {
            match (&d.matched, &d.failure) {
                (Some(m), _) => {
                    let _ = writeln!(out, "      DANE: matched {}", m.text);
                }
                (None, Some(f)) => {
                    let _ = writeln!(out, "      DANE: no match: {f}");
                }
                (None, None) => {}
            }
        }
        for p in &self.key_probes {
            let same = if p.same_as_default {
                " (the same certificate)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "      {}-only handshake: {}: {}{same}",
                p.algorithm, p.outcome, p.detail
            );
        }
    }
}

fn cert_text(c: &CertReport, indent: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "{indent}depth {}: {}; key {}; valid {} to {} ({} days left)",
        c.depth, c.subject, c.key_algorithm, c.not_before, c.not_after, c.expires_in_days
    );
    if !c.dns_names.is_empty() {
        let _ = writeln!(out, "{indent}  DNS names: {}", c.dns_names.join(" "));
    }
    let _ = writeln!(out, "{indent}  SPKI SHA-256 {}", c.spki_sha256);
    for r in &c.tlsa_matches {
        let _ = writeln!(out, "{indent}  matches TLSA {}", short_record(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlsa(usage: u8, selector: u8, mtype: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            mtype,
            data,
        }
    }

    #[test]
    fn rfc3339_table() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (67_090_118_400, "4096-01-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(secs), want, "{secs}");
        }
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        // A DER INTEGER's leading zero byte does not count.
        let mut modulus = vec![0u8, 0xc3];
        modulus.extend([0u8; 255]);
        assert_eq!(bit_length(&modulus), 2048);
        assert_eq!(bit_length(&[0x7f, 0xff]), 15);
    }

    #[test]
    fn short_records() {
        assert_eq!(
            short_record(&format!("3 1 1 {}", "ab".repeat(32))),
            "3 1 1 abababababababab…"
        );
        assert_eq!(short_record("3 1 1 abcd"), "3 1 1 abcd");
    }

    /// A certificate for `mx.example` and its key (rcgen: ECDSA P-256).
    fn ecdsa_cert() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mx.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mx.example");
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    }

    #[test]
    fn certificate_report_names_key_dates_and_matching_records() {
        let (cert, key) = ecdsa_cert();
        let der = cert.der().to_vec();
        let spki = key.public_key_der();
        let records = [
            tlsa(3, 1, 1, Sha256::digest(&spki).to_vec()),
            tlsa(3, 0, 2, Sha512::digest(&der).to_vec()),
            tlsa(2, 1, 0, spki.clone()),
            tlsa(3, 1, 1, vec![0; 32]),
            tlsa(1, 1, 1, Sha256::digest(&spki).to_vec()),
        ];
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000));
        let r = cert_report(0, &der, &records, now);
        assert_eq!(r.subject, "CN=mx.example");
        assert_eq!(r.issuer, "CN=mx.example");
        assert_eq!(r.dns_names, ["mx.example"]);
        assert_eq!(r.key_algorithm, "ECDSA P-256");
        // rcgen's defaults: 1975 to 4096.
        assert_eq!(r.not_before, "1975-01-01T00:00:00Z");
        assert_eq!(r.not_after, "4096-01-01T00:00:00Z");
        assert_eq!(r.expires_in_days, (67_090_118_400 - 1_700_000_000) / 86_400);
        assert_eq!(r.spki_sha256, hex(&Sha256::digest(&spki)));
        assert_eq!(r.cert_sha256, hex(&Sha256::digest(&der)));
        // Every record whose data matches, the PKIX-EE one included; not
        // the wrong digest.
        let want: Vec<String> = [0, 1, 2, 4]
            .iter()
            .map(|&i| records[i].to_string())
            .collect();
        assert_eq!(r.tlsa_matches, want);
    }

    #[test]
    fn an_unparsable_certificate_is_reported_not_fatal() {
        let junk = b"not a certificate";
        let records = [tlsa(3, 0, 1, Sha256::digest(junk).to_vec())];
        let r = cert_report(1, junk, &records, UnixTime::now());
        assert_eq!(r.depth, 1);
        assert_eq!(r.subject, "(certificate does not parse)");
        // Selector 0 needs no parsing: the whole DER still matches.
        assert_eq!(r.tlsa_matches, [records[0].to_string()]);
    }

    fn cert(depth: usize, days: i64) -> CertReport {
        CertReport {
            depth,
            subject: format!("CN=c{depth}"),
            issuer: String::new(),
            dns_names: Vec::new(),
            key_algorithm: "ECDSA P-256".into(),
            not_before: "2020-01-01T00:00:00Z".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            expires_in_days: days,
            spki_sha256: String::new(),
            cert_sha256: String::new(),
            tlsa_matches: Vec::new(),
        }
    }

    #[test]
    fn expiry_warnings_table() {
        let mut out = Vec::new();
        expiry_warnings(&[cert(0, 400), cert(1, 30)], false, "", &mut out);
        assert!(out.is_empty(), "{out:?}");
        expiry_warnings(&[cert(0, 29), cert(1, -1)], false, "", &mut out);
        assert_eq!(
            out,
            [
                "certificate at depth 0 (CN=c0) expires on 2030-01-01T00:00:00Z, in 29 days",
                "certificate at depth 1 (CN=c1) expired on 2030-01-01T00:00:00Z",
            ]
        );
        out.clear();
        expiry_warnings(&[cert(0, -5), cert(1, 3)], true, "RSA key's ", &mut out);
        assert_eq!(
            out,
            [
                "RSA key's certificate at depth 0 (CN=c0) expired on 2030-01-01T00:00:00Z (DANE-EE ignores dates, so it still verifies)",
                "RSA key's certificate at depth 1 (CN=c1) expires on 2030-01-01T00:00:00Z, in 3 days",
            ]
        );
    }

    #[test]
    fn probe_schemes_are_only_those_of_the_key_type() {
        let all = UnauthenticatedVerifier::new(crate::tls::provider()).supported_verify_schemes();
        let rsa = Recorder::new(Keys::Rsa).supported_verify_schemes();
        let ecdsa = Recorder::new(Keys::Ecdsa).supported_verify_schemes();
        assert_eq!(Recorder::new(Keys::Any).supported_verify_schemes(), all);
        assert!(rsa.contains(&SignatureScheme::RSA_PSS_SHA256), "{rsa:?}");
        assert!(
            rsa.iter().all(|s| format!("{s:?}").starts_with("RSA_")),
            "{rsa:?}"
        );
        assert!(
            ecdsa.contains(&SignatureScheme::ECDSA_NISTP256_SHA256),
            "{ecdsa:?}"
        );
        assert!(
            ecdsa.iter().all(|s| format!("{s:?}").starts_with("ECDSA_")),
            "{ecdsa:?}"
        );
        // The TLS 1.2 suites follow: ECDHE_RSA ones for RSA only.
        let config = client_config(Arc::new(Recorder::new(Keys::Rsa)), Keys::Rsa);
        let suites: Vec<String> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(suites.iter().any(|s| s.contains("ECDHE_RSA")), "{suites:?}");
        assert!(!suites.iter().any(|s| s.contains("ECDSA")), "{suites:?}");
        assert!(suites.iter().any(|s| s.starts_with("TLS13_")), "{suites:?}");
        // No resumption: every handshake must show its certificate.
        let resumption = format!("{:?}", config.resumption);
        assert!(
            resumption.contains("NoClientSessionStorage"),
            "{resumption}"
        );
    }

    fn host(dane: bool, problems: Vec<String>, ok: bool) -> HostCheck {
        HostCheck {
            name: "mx.example".into(),
            port: 25,
            preference: 10,
            address_security: "secure".into(),
            cname: None,
            requirement: String::new(),
            dane,
            ok,
            tlsa_status: "usable",
            tlsa_name: None,
            tlsa: Vec::new(),
            problems,
            addresses: vec![AddressCheck {
                address: "192.0.2.1".into(),
                family: "ipv4",
                ok,
                connected: true,
                starttls: Some(true),
                error: None,
                tls: None,
                chain: Vec::new(),
                dane: None,
                key_probes: Vec::new(),
                problems: if ok { vec![] } else { vec!["broken".into()] },
                warnings: vec!["soon".into()],
            }],
        }
    }

    fn validated() -> Dnssec {
        Dnssec {
            validated: true,
            detail: "validated".into(),
        }
    }

    #[test]
    fn verdicts() {
        let finish = |hosts: Vec<HostCheck>, dnssec: Dnssec| {
            let mut r = CheckReport::new("example", dnssec);
            r.hosts = hosts;
            r.finish()
        };
        let ok = finish(vec![host(true, vec![], true)], validated());
        assert_eq!((ok.verdict, ok.ok), ("ok", true));
        assert_eq!(ok.warnings, ["mx.example[192.0.2.1]:25: soon"]);
        let failed = finish(vec![host(true, vec![], false)], validated());
        assert_eq!((failed.verdict, failed.ok), ("failed", false));
        assert_eq!(failed.problems, ["mx.example[192.0.2.1]:25: broken"]);
        let no_dane = finish(
            vec![host(false, vec!["no DANE: x".into()], true)],
            validated(),
        );
        assert_eq!(no_dane.verdict, "no-dane");
        assert_eq!(no_dane.problems, ["mx.example: no DANE: x"]);
        let mixed = finish(
            vec![
                host(true, vec![], true),
                host(false, vec!["no DANE: x".into()], true),
            ],
            validated(),
        );
        assert_eq!(mixed.verdict, "failed");
        let broken_dns = finish(
            vec![host(true, vec![], true)],
            Dnssec {
                validated: false,
                detail: "x".into(),
            },
        );
        assert_eq!(broken_dns.verdict, "error");
        let unchecked = CheckReport::unchecked("example", validated(), "no resolver".into());
        assert_eq!(unchecked.finish().verdict, "error");
    }
}
