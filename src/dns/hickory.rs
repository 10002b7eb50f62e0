//! The [`Resolver`] implementation over hickory-resolver (pinned to one
//! release in Cargo.toml: its API moves between releases, and this file is
//! the only one that has to follow).
//!
//! In this release of danegate the resolver does not validate DNSSEC yet,
//! so every answer is reported [`Security::Insecure`]; nothing is ever
//! claimed secure that was not proven so.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use super::{BoxFuture, DnsFailure, FailureKind, Lookup, LookupResult, Mx, Resolver, Security};
use crate::config;

/// A resolver forwarding to the configured name servers.
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// Builds the resolver from `[dns]`: the listed name servers, or those
    /// of /etc/resolv.conf when the list is empty.
    pub fn new(dns: &config::Dns) -> Result<Self, String> {
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
        opts.attempts = 2;
        opts.ndots = 0;
        let inner = builder
            .build()
            .map_err(|e| format!("cannot build the resolver: {e}"))?;
        Ok(HickoryResolver { inner })
    }

    async fn query(&self, name: &str, rtype: RecordType) -> LookupResult<RData> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let label = rtype_label(rtype);
        match self.inner.lookup(fqdn.as_str(), rtype).await {
            Ok(lookup) => {
                let mut canonical = None;
                let records: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| {
                        let owner = lower(&r.name.to_utf8());
                        if owner != lower(name) {
                            canonical = Some(owner);
                        }
                        r.data.clone()
                    })
                    .collect();
                if records.is_empty() {
                    Ok(Lookup::NoData {
                        security: Security::Insecure,
                    })
                } else {
                    Ok(Lookup::Records {
                        records,
                        security: Security::Insecure,
                        canonical,
                    })
                }
            }
            Err(e) => classify(e, name, label),
        }
    }
}

fn classify(e: NetError, name: &str, rtype: &'static str) -> LookupResult<RData> {
    let fail = |kind| {
        Err(DnsFailure {
            name: name.to_owned(),
            rtype,
            kind,
        })
    };
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => Ok(Lookup::NxDomain {
                security: Security::Insecure,
            }),
            ResponseCode::NoError => Ok(Lookup::NoData {
                security: Security::Insecure,
            }),
            ResponseCode::ServFail => fail(FailureKind::ServFail),
            ResponseCode::Refused => fail(FailureKind::Refused),
            other => fail(FailureKind::Other(format!("response code {other}"))),
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            fail(FailureKind::ServFail)
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => fail(FailureKind::Refused),
        NetError::Dns(DnsError::DnssecBogus) => fail(FailureKind::Bogus),
        NetError::Timeout => fail(FailureKind::Timeout),
        other => fail(FailureKind::Other(other.to_string())),
    }
}

fn rtype_label(rtype: RecordType) -> &'static str {
    match rtype {
        RecordType::MX => "MX",
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::TLSA => "TLSA",
        _ => "other",
    }
}

fn lower(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Keeps the records `pick` recognises; a lookup left with none is NODATA.
fn map_records<T>(lookup: Lookup<RData>, pick: impl Fn(RData) -> Option<T>) -> Lookup<T> {
    match lookup {
        Lookup::Records {
            records,
            security,
            canonical,
        } => {
            let records: Vec<T> = records.into_iter().filter_map(pick).collect();
            if records.is_empty() {
                Lookup::NoData { security }
            } else {
                Lookup::Records {
                    records,
                    security,
                    canonical,
                }
            }
        }
        Lookup::NoData { security } => Lookup::NoData { security },
        Lookup::NxDomain { security } => Lookup::NxDomain { security },
    }
}

impl Resolver for HickoryResolver {
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
        Box::pin(async move {
            let lookup = self.query(name, RecordType::MX).await?;
            Ok(map_records(lookup, |r| match r {
                RData::MX(mx) => Some(Mx {
                    preference: mx.preference,
                    exchange: {
                        let e = lower(&mx.exchange.to_utf8());
                        if e.is_empty() {
                            ".".to_owned()
                        } else {
                            e
                        }
                    },
                }),
                _ => None,
            }))
        })
    }

    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>> {
        Box::pin(async move {
            let lookup = self.query(name, RecordType::A).await?;
            Ok(map_records(lookup, |r| match r {
                RData::A(a) => Some(a.0),
                _ => None,
            }))
        })
    }

    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>> {
        Box::pin(async move {
            let lookup = self.query(name, RecordType::AAAA).await?;
            Ok(map_records(lookup, |r| match r {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            }))
        })
    }
}

/// Parses an address literal host (`192.0.2.1`, `2001:db8::1`).
pub fn literal(host: &str) -> Option<IpAddr> {
    host.parse().ok()
}
