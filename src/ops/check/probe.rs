//! The handshakes of the check: one conversation up to the second EHLO
//! through the `check` command's TLS configuration and recording verifier
//! (see [`crate::tls::record`]), and the RSA-only and ECDSA-only key
//! probes with what they mean for the address. A conversation failure is
//! described here without its peer (the report says where).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::cert::{cert_report, expiry_warnings};
use super::host::Judge;
use super::report::{AddressCheck, CertReport, KeyProbe};
use super::Ctx;
use crate::config::Timeouts;
use crate::ops::certs::hex;
use crate::outbound::client::{Client, Hello, OutboundError, Peer, TlsMode};
use crate::outbound::stage::Stage;
use crate::tls::legacy::{Floor, LegacyConfig};
use crate::tls::record::Recorder;
use crate::tls::stream::Connector;
use crate::tls::{probe_config, CertificateDer, Keys, TlsState};

/// One conversation up to the end of the second EHLO, then QUIT.
pub(super) struct Handshake {
    pub(super) result: Result<TlsState, OutboundError>,
    /// What the server presented (also when the handshake failed after).
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// Why the primary engine could not, when the conversation was made
    /// again with the legacy engine.
    pub(super) primary_engine_failure: Option<String>,
}

/// What the relay would require of the address: TLS (`[tls]
/// min_version`), and an authenticated suite (DANE).
#[derive(Debug, Clone, Copy)]
pub(super) struct Need {
    pub(super) tls_required: bool,
    pub(super) dane: bool,
}

/// The main handshake (`Keys::Any`), with the legacy engine as the relay
/// would use it; or a key probe (primary engine only).
pub(super) async fn handshake(
    ctx: &Ctx,
    peer: &Peer,
    sni: Option<String>,
    keys: Keys,
    need: Need,
) -> Handshake {
    let recorder = Arc::new(Recorder::new(keys));
    let connector = Connector::primary(probe_config(recorder.clone()));
    let result = converse(ctx, peer, sni.clone(), connector.clone()).await;
    let mismatch = match &result {
        Err(OutboundError::Tls { .. }) => connector.mismatch(),
        _ => None,
    };
    match mismatch {
        Some(m) if keys == Keys::Any && ctx.tls.legacy.is_on() => {
            let recorder = Arc::new(Recorder::new(keys));
            let legacy = Connector::legacy(LegacyConfig {
                verifier: recorder.clone(),
                authenticate: need.dane,
                floor: Floor::for_policy(need.tls_required, &ctx.tls),
            });
            Handshake {
                result: converse(ctx, peer, sni, legacy).await,
                chain: recorder.chain(),
                primary_engine_failure: Some(m.to_string()),
            }
        }
        _ => Handshake {
            result,
            chain: recorder.chain(),
            primary_engine_failure: None,
        },
    }
}

/// Greeting, EHLO, STARTTLS with `connector`, EHLO, QUIT.
async fn converse(
    ctx: &Ctx,
    peer: &Peer,
    sni: Option<String>,
    connector: Connector,
) -> Result<TlsState, OutboundError> {
    let hello = Hello {
        hostname: ctx.hostname.clone(),
        tls_config: connector,
        sni,
        tls: TlsMode::Required,
        timeouts: ctx.timeouts.clone(),
    };
    let stream = connect(peer, &ctx.timeouts).await?;
    let client = Client::open(stream, peer.clone(), &hello).await?;
    let state = client.tls_state().clone();
    client.quit().await;
    Ok(state)
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
pub(super) struct Probed {
    pub(super) report: KeyProbe,
    /// The presented leaf did not verify, or the handshake failed after a
    /// certificate was presented.
    failed_after_certificate: bool,
    /// The probe could not be made for reasons that say nothing about keys.
    inconclusive: bool,
    leaf_chain: Vec<CertReport>,
}

/// A handshake offering only `keys`' signature schemes.
pub(super) async fn key_probe(
    ctx: &Ctx,
    peer: &Peer,
    sni: Option<String>,
    keys: Keys,
    judge: &Judge<'_>,
    default_chain: &[CertificateDer<'static>],
) -> Probed {
    let alg = keys.name();
    let need = Need {
        tls_required: true,
        dane: judge.dane,
    };
    let hs = handshake(ctx, peer, sni, keys, need).await;
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
pub(super) fn probe_findings(
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

/// Whether the server offered STARTTLS, as far as the failed conversation
/// got.
pub(super) fn starttls_offered(e: &OutboundError) -> Option<bool> {
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
pub(super) fn describe(e: &OutboundError) -> String {
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
