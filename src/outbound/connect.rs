//! Finding a destination for a recipient domain and opening a
//! conversation with it: the plan from `plan`, then each host and each
//! address in turn until one accepts (RFC 5321 §5.1, dane-rules §3.7).
//!
//! A handshake that fails because rustls and the server have nothing in
//! common is tried again with the legacy TLS engine (OpenSSL), with the
//! same verification. Opportunistic TLS that fails in the handshake (with
//! every engine) is retried on a new connection without TLS (Postfix does
//! the same); a host that requires TLS is never retried in plaintext.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{info, warn};

use crate::metrics;
use crate::outbound::client::{sni_for, Client, Hello, OutboundError, Peer, TlsMode};
use crate::outbound::eyeballs;
use crate::outbound::failure::Failure;
use crate::outbound::mtasts;
use crate::outbound::plan::{Host, Plan, SkipReason};
use crate::outbound::pool::Destination;
use crate::outbound::stage::Stage;
use crate::outbound::{tlsrpt, Context};
use crate::policy::{Mode, Requirement, TlsaStatus};
use crate::tls::dane::{DaneVerifier, ReferenceIds};
use crate::tls::legacy::{Floor, LegacyConfig};
use crate::tls::stream::Connector;
use crate::tls::webpki::StsVerifier;
use crate::tls::Engine;
use crate::tls_version::TlsVersion;

/// Plans `domain` and opens a conversation with the first host that
/// takes one. `session` tags log lines.
pub async fn connect(ctx: &Context, session: &str, domain: &str) -> Result<Destination, Failure> {
    let plan = match ctx
        .planner
        .plan(ctx.resolver.as_ref(), &ctx.config, domain)
        .await
    {
        Ok(plan) => plan,
        Err(e) => {
            tlsrpt::record_plan_error(ctx, domain, &e);
            return Err(e.into());
        }
    };
    if plan.unicode != plan.domain {
        info!(
            session,
            domain, "internationalised domain {} is {} in DNS", plan.unicode, plan.domain
        );
    }
    tlsrpt::record_plan(ctx, &plan);
    mtasts::log_plan(session, &plan);
    for skipped in &plan.skipped {
        info!(session, domain, "skipping MX host: {skipped}");
        if matches!(&skipped.reason, SkipReason::Dns(e) if e.rtype == "TLSA") {
            metrics::global().dane("lookup_failed");
        }
    }
    let mut worst: Option<Failure> = None;
    for host in &plan.hosts {
        match try_host(ctx, &plan, host).await {
            Ok(client) => {
                let state = client.tls_state();
                let word = state.metric_label();
                metrics::global().tls(word);
                if let Some(s) = state.session().filter(|s| s.engine == Engine::Legacy) {
                    metrics::global().tls_legacy(word, &s.protocol, &s.cipher);
                }
                let note = test_note(ctx);
                info!(
                    session,
                    domain,
                    "{}{note}",
                    client.tls_state().connection_line(client.peer())
                );
                return Ok(Destination {
                    domain: domain.to_owned(),
                    client,
                });
            }
            Err(e) => {
                let f = mtasts::failure(&plan, host, e);
                warn!(session, domain, "delivery attempt failed: {f}");
                if worst
                    .as_ref()
                    .is_none_or(|w| f.specificity() >= w.specificity())
                {
                    worst = Some(f);
                }
            }
        }
    }
    Err(worst.expect("a plan has at least one host"))
}

/// Appended to log lines in test mode, so that none reads as if
/// protection was in force.
pub fn test_note(ctx: &Context) -> &'static str {
    if ctx.config.policy.mode == Mode::Test {
        " [test mode: nothing enforced]"
    } else {
        ""
    }
}

/// How one attempt protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    /// No STARTTLS (the retry after a failed opportunistic handshake).
    Off,
    /// STARTTLS when offered, any certificate.
    Opportunistic,
    /// STARTTLS required, any certificate.
    Encrypt,
    /// STARTTLS required, certificate matched against TLSA records.
    Dane,
    /// STARTTLS required, certificate valid for the MX host name under
    /// the WebPKI (an MTA-STS `enforce` policy).
    Sts,
}

/// A TLS problem that enforcement would defer for (4.7.4, 4.7.5).
fn tls_problem(e: &OutboundError) -> bool {
    matches!(
        e,
        OutboundError::StartTlsMissing { .. }
            | OutboundError::StartTlsRefused { .. }
            | OutboundError::Tls { .. }
            | OutboundError::Dane { .. }
            | OutboundError::Timeout {
                stage: Stage::TlsHandshake,
                ..
            }
    )
}

/// A handshake that failed after STARTTLS was accepted.
fn handshake_failed(e: &OutboundError) -> bool {
    matches!(
        e,
        OutboundError::Tls { .. }
            | OutboundError::Dane { .. }
            | OutboundError::Timeout {
                stage: Stage::TlsHandshake,
                ..
            }
    )
}

/// dane-rules §3–4 for one host: its addresses with the protection the
/// policy requires of each (addresses it refuses are not connected to,
/// except in test mode, which logs what it would defer). The TCP
/// connections are raced (Happy Eyeballs, RFC 8305: families alternating,
/// a new attempt every 250 ms); the first address to connect is tried, and
/// should it fail, the race goes on among the others.
async fn try_host(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
) -> Result<Client<TcpStream>, OutboundError> {
    let (mut candidates, mut last) = candidates(ctx, plan, host);
    let limit = Stage::Connect.timeout(&ctx.timeouts);
    while !candidates.is_empty() {
        let addrs: Vec<SocketAddr> = candidates.iter().map(|(p, _)| p.addr).collect();
        let raced = eyeballs::race(&addrs, limit, TcpStream::connect).await;
        // Addresses that failed to connect are not tried again.
        let mut out: Vec<usize> = raced.failed.iter().map(|(i, _)| *i).collect();
        for (i, cause) in raced.failed {
            let peer = candidates[i].0.clone();
            last = Some(OutboundError::Connect { peer, cause });
        }
        let Some((stream, won)) = raced.won else {
            break;
        };
        let (peer, wanted) = candidates[won].clone();
        out.push(won);
        out.sort_unstable();
        for i in out.into_iter().rev() {
            candidates.remove(i);
        }
        match on_address(ctx, plan, host, &peer, wanted, stream).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("a planned host has at least one address"))
}

/// The addresses of `host` to connect to, in Happy Eyeballs order, each
/// with the protection its requirement asks for; and the refusal of the
/// last address the policy refuses, if any.
fn candidates(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
) -> (Vec<(Peer, Protection)>, Option<OutboundError>) {
    let test = ctx.config.policy.mode == Mode::Test;
    let mut out = Vec::new();
    let mut refused = None;
    // Each address with its own requirement: DANE applies to addresses
    // from secure RRsets (plan.rs, dane-rules §2 per address).
    for address in eyeballs::interleave(&host.addresses, |a| a.ip) {
        let peer = Peer {
            host: host.name.clone(),
            addr: SocketAddr::new(address.ip, host.port),
        };
        if let Requirement::Refuse(reason) = address.requirement {
            tlsrpt::record_refusal(ctx, plan, host, &peer, reason);
        }
        let wanted = match address.requirement {
            Requirement::Refuse(reason) if test => {
                metrics::global().would_defer("policy");
                warn!(peer = %peer, "TEST MODE: would defer: {reason}; delivering anyway, nothing enforced");
                Protection::Opportunistic
            }
            Requirement::Refuse(reason) => {
                refused = Some(OutboundError::Refused { peer, reason });
                continue;
            }
            Requirement::Opportunistic => Protection::Opportunistic,
            Requirement::TlsRequired => Protection::Encrypt,
            Requirement::DaneRequired => Protection::Dane,
            Requirement::StsRequired => Protection::Sts,
        };
        out.push((peer, wanted));
    }
    (out, refused)
}

/// One address, over the connection the race won: the protection it
/// requires, and the fallbacks the policy allows after a failed handshake
/// (opportunistic TLS retried without TLS; test mode's best connection).
async fn on_address(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    peer: &Peer,
    wanted: Protection,
    stream: TcpStream,
) -> Result<Client<TcpStream>, OutboundError> {
    let test = ctx.config.policy.mode == Mode::Test;
    mtasts::observe_not_allowed(plan, host, peer);
    let e = match attempt(ctx, plan, host, peer, wanted, Some(stream)).await {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let fallback = if wanted == Protection::Opportunistic && handshake_failed(&e) {
        info!(peer = %peer, "TLS handshake failed ({e}); retrying without TLS (opportunistic TLS)");
        Protection::Off
    } else if test && wanted != Protection::Opportunistic && tls_problem(&e) {
        metrics::global().would_defer(Failure::Outbound(e.clone()).reason());
        warn!(peer = %peer, "TEST MODE: would defer: {e}; delivering with the best connection available, nothing enforced");
        Protection::Opportunistic
    } else {
        return Err(e);
    };
    match attempt(ctx, plan, host, peer, fallback, None).await {
        Ok(c) => Ok(c),
        Err(e2) if fallback == Protection::Opportunistic && handshake_failed(&e2) => {
            attempt(ctx, plan, host, peer, Protection::Off, None).await
        }
        Err(e2) => Err(e2),
    }
}

/// One connection to one address with the given protection: with rustls,
/// and once more with the legacy engine (OpenSSL) when rustls and the
/// server had no protocol version, cipher suite, key exchange or
/// signature algorithm in common and `[tls] legacy` is on
/// ([`crate::tls::fallback`]). The same verifiers judge the chain either
/// way; a verification failure is never tried again.
async fn attempt(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    peer: &Peer,
    protection: Protection,
    stream: Option<TcpStream>,
) -> Result<Client<TcpStream>, OutboundError> {
    let (hello, mut verifiers) = hello_for(ctx, plan, host, protection, Engine::Rustls);
    let (mut local, mut result) = try_address(ctx, peer, &hello, stream).await;
    if let (Err(e @ OutboundError::Tls { peer, cause }), Some(mismatch)) =
        (&result, hello.tls_config.mismatch())
    {
        if ctx.config.tls.legacy.is_on() {
            metrics::global().tls_fallback(mismatch.metric_word());
            info!(peer = %peer, "{e}; trying again with the legacy TLS engine (OpenSSL)");
            let (hello, v) = hello_for(ctx, plan, host, protection, Engine::Legacy);
            (local, result) = try_address(ctx, peer, &hello, None).await;
            verifiers = v;
        } else {
            result = Err(OutboundError::Tls {
                peer: peer.clone(),
                cause: format!("{cause}; the legacy TLS engine is off ([tls] legacy)"),
            });
        }
    }
    let dane = verifiers.dane.as_ref().and_then(|v| v.failure());
    let webpki = verifiers.sts.as_ref().and_then(|v| v.verdict());
    let result = judge(plan, host, protection, verifiers, result);
    // TLS reporting: the attempt under the address's own requirement
    // (not the plaintext or test-mode fallbacks after it).
    if Some(protection) == required(host, peer) {
        let (dane, webpki) = (dane.as_ref(), webpki.as_ref());
        tlsrpt::record_attempt(ctx, plan, host, peer, local, &result, dane, webpki);
    }
    result
}

/// The protection the requirement of the address `peer` asks for (none:
/// refused).
fn required(host: &Host, peer: &Peer) -> Option<Protection> {
    let requirement = host
        .addresses
        .iter()
        .find(|a| a.ip == peer.addr.ip())
        .map_or(host.requirement, |a| a.requirement);
    match requirement {
        Requirement::Refuse(_) => None,
        Requirement::Opportunistic => Some(Protection::Opportunistic),
        Requirement::TlsRequired => Some(Protection::Encrypt),
        Requirement::DaneRequired => Some(Protection::Dane),
        Requirement::StsRequired => Some(Protection::Sts),
    }
}

/// The verifiers of one attempt, to ask afterwards what they proved.
struct Verifiers {
    dane: Option<Arc<DaneVerifier>>,
    /// Under an MTA-STS policy the connection carries its WebPKI check
    /// (RFC 8461 §4.2: of the MX host name, also the SNI).
    sts: Option<Arc<StsVerifier>>,
}

/// What the verifiers of an attempt proved (or why they refused), on top
/// of the attempt's result; counts the DANE result.
fn judge(
    plan: &Plan,
    host: &Host,
    protection: Protection,
    verifiers: Verifiers,
    result: Result<Client<TcpStream>, OutboundError>,
) -> Result<Client<TcpStream>, OutboundError> {
    let Some(v) = verifiers.dane else {
        if protection != Protection::Off {
            metrics::global().dane(match host.tlsa {
                TlsaStatus::AllUnusable => "unusable",
                TlsaStatus::NoSecureTlsa => "insecure",
                _ => "not_applicable",
            });
        }
        return match &verifiers.sts {
            Some(v) => mtasts::conclude(result, v, protection == Protection::Sts, plan, host),
            None => result,
        };
    };
    metrics::global().dane(if v.matched().is_some() {
        "ok"
    } else {
        "mismatch"
    });
    match result {
        Ok(mut client) => match v.matched() {
            Some(m) => {
                let state = client
                    .tls_state()
                    .authenticated(plan.mx_security.is_secure(), &m);
                client.set_tls_state(state);
                Ok(client)
            }
            // The verifier accepted nothing, yet the handshake completed:
            // impossible, and never to be mistaken for success.
            None => Err(OutboundError::Tls {
                peer: client.peer().clone(),
                cause: "handshake completed without a DANE match".into(),
            }),
        },
        Err(OutboundError::Tls { peer, cause }) => match v.failure() {
            Some(f) => Err(OutboundError::Dane {
                peer,
                cause: f.to_string(),
            }),
            None => Err(OutboundError::Tls { peer, cause }),
        },
        Err(e) => Err(e),
    }
}

/// The conversation settings for one attempt with one TLS engine, and its
/// own verifiers (DANE, MTA-STS).
fn hello_for(
    ctx: &Context,
    plan: &Plan,
    host: &Host,
    protection: Protection,
    engine: Engine,
) -> (Hello, Verifiers) {
    let tls = match protection {
        Protection::Off => TlsMode::Off,
        Protection::Opportunistic => TlsMode::Opportunistic,
        Protection::Encrypt | Protection::Dane | Protection::Sts => TlsMode::Required,
    };
    let base = host.tlsa_base.as_ref().unwrap_or(&host.name);
    let dane = (protection == Protection::Dane).then(|| {
        let ids = ReferenceIds {
            tlsa_base: base.clone(),
            mx_host: host.name.clone(),
            nexthop: plan.domain.clone(),
        };
        Arc::new(DaneVerifier::new(
            host.tlsa_records.clone(),
            host.port,
            ids,
            crate::tls::provider(),
        ))
    });
    let sts = match dane {
        None => mtasts::verifier(ctx, host, protection == Protection::Sts),
        Some(_) => None,
    };
    let tls_config = connector(ctx, engine, tls, &dane, &sts, protection);
    // dane-rules §3.2: SNI is the TLSA base domain.
    let sni = if dane.is_some() { base } else { &host.name };
    let hello = Hello {
        hostname: ctx.config.server.hostname.0.clone(),
        tls_config,
        sni: sni_for(sni),
        tls,
        timeouts: ctx.timeouts.clone(),
    };
    (hello, Verifiers { dane, sts })
}

/// The handshake's engine and verifier: DANE's, MTA-STS's, or none
/// (opportunistic TLS, TLS required without authentication).
fn connector(
    ctx: &Context,
    engine: Engine,
    tls: TlsMode,
    dane: &Option<Arc<DaneVerifier>>,
    sts: &Option<Arc<StsVerifier>>,
    protection: Protection,
) -> Connector {
    let min = ctx.config.tls.min_version;
    match engine {
        Engine::Rustls => Connector::primary(match (dane, sts) {
            (Some(v), _) => crate::tls::dane_config(v.clone(), min),
            (None, Some(v)) => crate::tls::webpki::sts_config(v.clone(), min),
            (None, None) if tls == TlsMode::Required => ctx.tls_encrypt.clone(),
            (None, None) => ctx.tls_opportunistic.clone(),
        }),
        Engine::Legacy => {
            let floor = Floor::for_policy(tls == TlsMode::Required, &ctx.config.tls);
            Connector::legacy(match (dane, sts) {
                (Some(v), _) => LegacyConfig::dane(v.clone(), floor),
                // An `enforce` policy's check must pass, over TLS 1.2 or
                // later whatever the configured floor (RFC 8461 §4.2); a
                // `testing` policy's only observes.
                (None, Some(v)) if protection == Protection::Sts => {
                    let min_version = ctx.config.tls.min_version.max(TlsVersion::Tls1_2);
                    LegacyConfig::sts(v.clone(), true, Floor::Mandatory { min_version })
                }
                (None, Some(v)) => LegacyConfig::sts(v.clone(), false, floor),
                (None, None) => LegacyConfig::unauthenticated(floor),
            })
        }
    }
}

/// One connection and its conversation up to the hello; also our own
/// address on it (TLS reporting's sending-mta-ip).
/// The SMTP conversation with one address, over `stream` when the race
/// connected one, else over a new connection.
async fn try_address(
    ctx: &Context,
    peer: &Peer,
    hello: &Hello,
    stream: Option<TcpStream>,
) -> (Option<SocketAddr>, Result<Client<TcpStream>, OutboundError>) {
    let limit = Stage::Connect.timeout(&ctx.timeouts);
    let connect = async {
        match stream {
            Some(s) => Ok(s),
            None => TcpStream::connect(peer.addr).await,
        }
    };
    let stream = match timeout(limit, connect).await {
        Err(_) => {
            let cause = "connection timed out".into();
            return (
                None,
                Err(OutboundError::Connect {
                    peer: peer.clone(),
                    cause,
                }),
            );
        }
        Ok(Err(e)) => {
            let cause = e.to_string();
            return (
                None,
                Err(OutboundError::Connect {
                    peer: peer.clone(),
                    cause,
                }),
            );
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    (local, Client::open(stream, peer.clone(), hello).await)
}
