//! The `validate` backend: hickory's DNSSEC validator (hickory is pinned
//! to one release in Cargo.toml: its API moves between releases, and this
//! file, `forward`, `chain`, `explain`, `anchors` and `wire` are the only
//! ones that follow it) over [`CdHandle`], which asks the upstream with
//! the CD bit so that danegate judges the raw data itself.
//!
//! Classification: every record carries hickory's proof (secure,
//! insecure, bogus); a denial is secure when the NSEC/NSEC3 records that
//! came with it were proven. Two shapes hickory 0.26.3 gets wrong are
//! put right here, each checked by the lab's zoo:
//! - a CNAME synthesised from a DNAME carries no signature by design
//!   (RFC 6672 §5.3.1) and hickory calls it bogus: [`chain`] accepts it
//!   when a secure DNAME in the same answer synthesises exactly it;
//! - a secure CNAME followed by a secure denial at its target: hickory
//!   checks the denial against the alias and calls it bogus: the target is
//!   then asked on its own and the two answers are combined;
//! - a name error whose next closer name an opt-out NSEC3 covers is
//!   insecure, as unbound has it (hickory: secure; see [`nsec3`]).
//!
//! NSEC3 iterations (RFC 9276): denials with more than
//! [`NSEC3_ITERATION_LIMIT`] iterations are insecure, never bogus, like
//! unbound and BIND. A bogus answer is handed to [`explain`], which says
//! why ("RRSIG of ... expired 2026-11-30 ...").

use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};

use super::cache::{Backend, RawAnswer, RawKind};
use super::chain::Chain;
use super::explain::{Cause, Explainer};
use super::forward::CdHandle;
use super::nsec3;
use super::wire::negative_ttl;
use super::{Alias, BoxFuture, FailureKind, Security};

/// Longest CNAME chain followed by hand.
const MAX_CHAIN: u8 = 8;

/// NSEC3 denials with more additional iterations than this are insecure
/// (RFC 9276 §3.2), as in unbound 1.17 and BIND 9.18; never bogus.
pub const NSEC3_ITERATION_LIMIT: u16 = 150;

/// How long the search for the cause of a bogus answer may take; past it
/// the answer is reported bogus without a cause.
const EXPLAIN_BUDGET: Duration = Duration::from_secs(2);

pub struct ValidatingBackend {
    handle: DnssecDnsHandle<CdHandle>,
    explainer: Explainer,
}

/// What one question to the validator gave.
enum Step {
    Done(RawAnswer),
    /// A secure chain to `target`, whose denial hickory could not judge
    /// (see the module comment): ask `target` itself.
    Alias {
        target: String,
        secure: bool,
        ttl: u32,
    },
}

impl ValidatingBackend {
    /// A validator asking `servers` (with CD), trusting exactly `anchors`;
    /// `zones` are the anchored zones with their trusted keys (for the
    /// explanations).
    pub fn new(
        servers: Vec<std::net::SocketAddr>,
        timeout: Duration,
        anchors: Arc<TrustAnchors>,
        zones: Vec<super::anchors::ZoneKeys>,
    ) -> Self {
        let handle =
            DnssecDnsHandle::with_trust_anchor(CdHandle::new(servers.clone(), timeout), anchors)
                .nsec3_iteration_limits(Some(NSEC3_ITERATION_LIMIT), Some(u16::MAX));
        ValidatingBackend {
            handle,
            explainer: Explainer::new(servers, timeout, zones),
        }
    }

    /// A lookup, following what hickory cannot (see the module comment).
    fn lookup<'a>(
        &'a self,
        name: &'a str,
        rtype: RecordType,
        depth: u8,
    ) -> BoxFuture<'a, Result<RawAnswer, FailureKind>> {
        Box::pin(async move {
            let qname = fqdn(name)?;
            let step = match self.lookup_once(&qname, rtype).await {
                Err(FailureKind::Bogus(None)) => return Err(self.explain(&qname, rtype).await),
                other => other?,
            };
            match step {
                Step::Done(answer) => Ok(answer),
                Step::Alias { .. } if depth >= MAX_CHAIN => {
                    Err(FailureKind::Other("CNAME chain too long".into()))
                }
                Step::Alias {
                    target,
                    secure,
                    ttl,
                } => {
                    let mut rest = self.lookup(&target, rtype, depth + 1).await?;
                    let chain_secure = secure && rest.alias.as_ref().is_none_or(|a| a.secure);
                    rest.alias = Some(Alias {
                        name: rest.alias.take().map(|a| a.name).unwrap_or(target),
                        secure: chain_secure,
                    });
                    if !secure {
                        rest.security = Security::Insecure;
                    }
                    rest.ttl = rest.ttl.min(ttl);
                    Ok(rest)
                }
            }
        })
    }

    async fn lookup_once(&self, qname: &Name, rtype: RecordType) -> Result<Step, FailureKind> {
        let mut options = DnsRequestOptions::default();
        options.edns_set_dnssec_ok = true;
        let result = self
            .handle
            .lookup(Query::query(qname.clone(), rtype), options)
            .first_answer()
            .await;
        match result {
            Ok(response) => classify_answer(qname, rtype, &response).map(Step::Done),
            Err(NetError::Dns(DnsError::Nsec {
                response, proof, ..
            })) => classify_denial(qname, rtype, &response, proof),
            Err(e) => Err(classify_error(e)),
        }
    }

    /// The failure for a bogus answer to `qname`/`rtype`, with its cause
    /// when one is found in time.
    async fn explain(&self, qname: &Name, rtype: RecordType) -> FailureKind {
        match tokio::time::timeout(EXPLAIN_BUDGET, self.explainer.explain(qname, rtype)).await {
            Ok(Some(Cause::Bogus(why))) => FailureKind::Bogus(Some(why)),
            Ok(Some(Cause::Unanswered(why))) => {
                FailureKind::Other(format!("cannot validate: {why}"))
            }
            Ok(None) | Err(_) => FailureKind::Bogus(None),
        }
    }
}

/// `name` as an absolute DNS name.
fn fqdn(name: &str) -> Result<Name, FailureKind> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| FailureKind::Other(format!("bad name {name:?}: {e}")))
}

/// A response hickory validated: records at the end of the chain, or a
/// denial hickory found secure or insecure.
fn classify_answer(
    qname: &Name,
    rtype: RecordType,
    response: &DnsResponse,
) -> Result<RawAnswer, FailureKind> {
    let chain = Chain::follow(qname, rtype, &response.answers);
    if chain.bogus() {
        return Err(FailureKind::Bogus(None));
    }
    let records = chain.records(rtype, &response.answers);
    if records.iter().any(|r| r.proof == Proof::Bogus) {
        return Err(FailureKind::Bogus(None));
    }
    if !records.is_empty() {
        let secure = chain.secure() && records.iter().all(|r| r.proof == Proof::Secure);
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
        return Ok(RawAnswer {
            kind: RawKind::Records,
            records: records.into_iter().map(|r| r.data.clone()).collect(),
            security: secure_if(secure),
            alias: chain.alias(),
            ttl: ttl.min(chain.ttl()),
        });
    }
    // A denial hickory let through: secure when the NSEC/NSEC3 records
    // proving it were validated (an insecure zone has none), but for a
    // name error under an opt-out span (see `nsec3`).
    let proven = response.authorities.iter().any(|r| {
        matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3) && r.proof == Proof::Secure
    }) && !(response.response_code == ResponseCode::NXDomain
        && nsec3::nxdomain_opt_out(&chain.end(), &response.authorities));
    denial(
        response.response_code,
        secure_if(proven && chain.secure()),
        chain.alias(),
        negative_ttl(&response.authorities).min(chain.ttl()),
    )
}

/// A denial hickory did not find secure: insecure, bogus, or (at the end
/// of a secure chain) one to ask again at the target.
fn classify_denial(
    qname: &Name,
    rtype: RecordType,
    response: &DnsResponse,
    proof: Proof,
) -> Result<Step, FailureKind> {
    let chain = Chain::follow(qname, rtype, &response.answers);
    if chain.bogus() {
        return Err(FailureKind::Bogus(None));
    }
    match proof {
        Proof::Bogus if chain.is_alias() => Ok(Step::Alias {
            target: chain.target(),
            secure: chain.secure(),
            ttl: chain.ttl(),
        }),
        Proof::Bogus => Err(FailureKind::Bogus(None)),
        proof => denial(
            response.response_code,
            secure_if(proof == Proof::Secure && chain.secure()),
            chain.alias(),
            negative_ttl(&response.authorities).min(chain.ttl()),
        )
        .map(Step::Done),
    }
}

fn denial(
    code: ResponseCode,
    security: Security,
    alias: Option<Alias>,
    ttl: u32,
) -> Result<RawAnswer, FailureKind> {
    let kind = match code {
        ResponseCode::NXDomain => RawKind::NxDomain,
        ResponseCode::NoError => RawKind::NoData,
        ResponseCode::ServFail => return Err(FailureKind::ServFail),
        ResponseCode::Refused => return Err(FailureKind::Refused),
        other => return Err(FailureKind::Other(format!("response code {other}"))),
    };
    Ok(RawAnswer {
        kind,
        records: Vec::new(),
        security,
        alias,
        ttl,
    })
}

fn secure_if(secure: bool) -> Security {
    if secure {
        Security::Secure
    } else {
        Security::Insecure
    }
}

fn classify_error(e: NetError) -> FailureKind {
    match e {
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => FailureKind::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => FailureKind::Refused,
        NetError::Dns(DnsError::DnssecBogus) => FailureKind::Bogus(None),
        NetError::Timeout => FailureKind::Timeout,
        other => FailureKind::Other(other.to_string()),
    }
}

impl Backend for ValidatingBackend {
    fn query<'a>(
        &'a self,
        name: &'a str,
        rtype: RecordType,
    ) -> BoxFuture<'a, Result<RawAnswer, FailureKind>> {
        self.lookup(name, rtype, 0)
    }
}
