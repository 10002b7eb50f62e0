//! The `validate` backend over hickory-resolver, which validates DNSSEC
//! itself from our trust anchors (hickory is pinned to one release in
//! Cargo.toml: its API moves between releases, and this file and
//! `anchors`/`wire` are the only ones that follow it).
//!
//! Classification (seen to hold against a knotd + unbound lab): records
//! carry a proof (secure / insecure / bogus); a denial is secure when the
//! SOA that came with it was proven; bogus data arrives either as
//! `DnssecBogus` or, when the upstream validates itself, as SERVFAIL: both
//! are failures.

use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use super::cache::{Backend, RawAnswer, RawKind};
use super::wire::follow_chain;
use super::{Alias, BoxFuture, FailureKind, Security};
use crate::config;

/// Longest CNAME chain followed by hand.
const MAX_CHAIN: u8 = 8;

pub struct ValidatingBackend {
    inner: TokioResolver,
}

impl ValidatingBackend {
    /// A validating resolver forwarding to `[dns] nameservers` (or those
    /// of /etc/resolv.conf), trusting exactly `anchors`.
    pub fn new(dns: &config::Dns, anchors: Arc<TrustAnchors>) -> Result<Self, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if dns.nameservers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|e| format!("cannot read the system resolver configuration: {e}"))?
        } else {
            let servers = dns
                .nameservers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let opts = builder.options_mut();
        opts.timeout = Duration::from_secs(dns.timeout.max(1));
        opts.attempts = 1;
        opts.ndots = 0;
        opts.validate = true;
        let inner = builder
            .with_trust_anchor(anchors)
            .build()
            .map_err(|e| format!("cannot build the resolver: {e}"))?;
        Ok(ValidatingBackend { inner })
    }

    /// A lookup, with the CNAME work-around below.
    fn lookup<'a>(
        &'a self,
        name: &'a str,
        rtype: RecordType,
        depth: u8,
    ) -> BoxFuture<'a, Result<RawAnswer, FailureKind>> {
        Box::pin(async move {
            match self.lookup_once(name, rtype).await {
                // hickory 0.26.3 judges a secure CNAME followed by a secure
                // denial at its target as bogus (it checks the denial
                // against the alias). Validate the two RRsets separately:
                // the alias, then the target.
                Err(FailureKind::Bogus) if rtype != RecordType::CNAME && depth < MAX_CHAIN => {
                    let link = self.lookup_once(name, RecordType::CNAME).await?;
                    let target = link.records.iter().find_map(|r| match r {
                        RData::CNAME(c) => {
                            Some(c.0.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                        }
                        _ => None,
                    });
                    let Some(target) = target else {
                        return Err(FailureKind::Bogus);
                    };
                    let mut rest = self.lookup(&target, rtype, depth + 1).await?;
                    let link_secure = link.security.is_secure();
                    let chain_secure = link_secure && rest.alias.as_ref().is_none_or(|a| a.secure);
                    rest.alias = Some(Alias {
                        name: rest.alias.take().map(|a| a.name).unwrap_or(target),
                        secure: chain_secure,
                    });
                    rest.security = if link_secure {
                        rest.security
                    } else {
                        Security::Insecure
                    };
                    rest.ttl = rest.ttl.min(link.ttl);
                    Ok(rest)
                }
                other => other,
            }
        })
    }

    async fn lookup_once(&self, name: &str, rtype: RecordType) -> Result<RawAnswer, FailureKind> {
        let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| FailureKind::Other(format!("bad name {name:?}: {e}")))?;
        match self.inner.lookup(qname.clone(), rtype).await {
            Ok(lookup) => {
                let answers = lookup.answers();
                if answers.iter().any(|r| r.proof == Proof::Bogus) {
                    return Err(FailureKind::Bogus);
                }
                let (owner, links) = if rtype == RecordType::CNAME {
                    (qname.clone(), Vec::new())
                } else {
                    follow_chain(&qname, answers)
                };
                let records: Vec<_> = answers
                    .iter()
                    .filter(|r| r.record_type() == rtype && r.name == owner)
                    .collect();
                let all_secure = records
                    .iter()
                    .chain(links.iter())
                    .all(|r| r.proof == Proof::Secure);
                let alias = (!links.is_empty()).then(|| Alias {
                    name: owner.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
                    secure: links.iter().all(|r| r.proof == Proof::Secure),
                });
                let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
                Ok(RawAnswer {
                    kind: if records.is_empty() {
                        RawKind::NoData
                    } else {
                        RawKind::Records
                    },
                    records: records.into_iter().map(|r| r.data.clone()).collect(),
                    security: if all_secure {
                        Security::Secure
                    } else {
                        Security::Insecure
                    },
                    alias,
                    ttl,
                })
            }
            Err(e) => classify(e),
        }
    }
}

fn classify(e: NetError) -> Result<RawAnswer, FailureKind> {
    let denial = |code: ResponseCode, security: Security, ttl: u32| {
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
            alias: None,
            ttl,
        })
    };
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            let security = match nr.soa.as_ref().map(|s| s.proof) {
                Some(Proof::Secure) => Security::Secure,
                Some(Proof::Bogus) => return Err(FailureKind::Bogus),
                _ => Security::Insecure,
            };
            denial(nr.response_code, security, nr.negative_ttl.unwrap_or(60))
        }
        NetError::Dns(DnsError::Nsec {
            response, proof, ..
        }) => {
            let security = match proof {
                Proof::Secure => Security::Secure,
                Proof::Bogus => return Err(FailureKind::Bogus),
                _ => Security::Insecure,
            };
            denial(response.metadata.response_code, security, 60)
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => Err(FailureKind::ServFail),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => Err(FailureKind::Refused),
        NetError::Dns(DnsError::DnssecBogus) => Err(FailureKind::Bogus),
        NetError::Timeout => Err(FailureKind::Timeout),
        other => Err(FailureKind::Other(other.to_string())),
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
