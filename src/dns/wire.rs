//! DNS messages over UDP (and TCP when truncated), written with
//! hickory-proto's message types: the `trust-ad` backend, the raw
//! queries used to fetch trust anchor keys, and the non-recursive
//! questions `danegate tlsa published` asks authoritative servers.
//!
//! In `trust-ad` mode a local validating resolver does the DNSSEC work and
//! we trust its AD flag: every query sets DO (so the resolver validates)
//! and AD (so it reports the result, RFC 6840 §5.7). Only NOERROR and
//! NXDOMAIN answers are data; any other response code is a failure.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::cache::{Backend, RawAnswer, RawKind};
use super::{Alias, BoxFuture, FailureKind, Security};

/// Builds a recursive query with DO and AD set; `cd` asks the resolver not
/// to validate (to fetch keys it cannot validate yet).
pub(super) fn query_message(name: &Name, rtype: RecordType, cd: bool) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = true;
    m.metadata.checking_disabled = cd;
    m.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

/// Sends `query` to `server` and returns the matching response.
pub(super) async fn exchange(
    server: SocketAddr,
    query: &Message,
    limit: Duration,
) -> Result<Message, FailureKind> {
    let bytes = query
        .to_vec()
        .map_err(|e| FailureKind::Other(format!("cannot encode query: {e}")))?;
    let response = match timeout(limit, udp(server, &bytes, query.metadata.id)).await {
        Err(_) => return Err(FailureKind::Timeout),
        Ok(r) => r.map_err(|e| FailureKind::Other(e.to_string()))?,
    };
    if !response.metadata.truncation {
        return Ok(response);
    }
    match timeout(limit, tcp(server, &bytes, query.metadata.id)).await {
        Err(_) => Err(FailureKind::Timeout),
        Ok(r) => r.map_err(|e| FailureKind::Other(format!("over TCP: {e}"))),
    }
}

/// One UDP exchange, with no TCP retry on truncation (the doctor asks
/// each transport on its own).
pub(super) async fn udp_only(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
) -> std::io::Result<Message> {
    udp(server, bytes, id).await
}

/// One TCP exchange.
pub(super) async fn tcp_only(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
) -> std::io::Result<Message> {
    tcp(server, bytes, id).await
}

async fn udp(server: SocketAddr, bytes: &[u8], id: u16) -> std::io::Result<Message> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(bytes).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Stray or spoofed datagrams with another id are ignored.
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if m.metadata.id == id {
                return Ok(m);
            }
        }
    }
}

async fn tcp(server: SocketAddr, bytes: &[u8], id: u16) -> std::io::Result<Message> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(bytes).await?;
    loop {
        let n = stream.read_u16().await? as usize;
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await?;
        let m = Message::from_vec(&buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        if m.metadata.id == id {
            return Ok(m);
        }
    }
}

/// Follows the CNAME chain from `qname` through the answer section.
/// Returns the final owner name and the CNAME records passed.
pub(super) fn follow_chain<'a>(qname: &Name, answers: &'a [Record]) -> (Name, Vec<&'a Record>) {
    let mut current = qname.clone();
    let mut links = Vec::new();
    // Bounded: a chain cannot be longer than the answer section.
    for _ in 0..answers.len() {
        // Name equality is case-insensitive, as DNS names are.
        let next = answers
            .iter()
            .find(|r| r.record_type() == RecordType::CNAME && r.name == current);
        match next {
            Some(r) => {
                if let RData::CNAME(target) = &r.data {
                    links.push(r);
                    current = target.0.clone();
                } else {
                    break;
                }
            }
            None => break,
        }
    }
    (current, links)
}

/// What a SERVFAIL means: bogus data when its Extended DNS Error (RFC
/// 8914) says DNSSEC validation failed, as unbound sends; else a server
/// failure, with the resolver's reason when it gave one.
fn servfail(response: &Message) -> FailureKind {
    match super::ede::extended_error(response) {
        Some(e) if e.is_dnssec() => FailureKind::Bogus(Some(format!("EDE {e}"))),
        Some(e) => FailureKind::ServFailBecause(e.to_string()),
        None => FailureKind::ServFail,
    }
}

/// The negative TTL of a denial: the SOA's TTL capped by its minimum.
pub(super) fn negative_ttl(authorities: &[Record]) -> u32 {
    authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(60)
}

/// The `trust-ad` backend: a validating resolver on this host. Built
/// with `trust_ad = false` it never believes the AD flag, and every answer
/// is insecure: what danegate uses until DNSSEC is proven to work.
pub struct AdBackend {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    trust_ad: bool,
}

impl AdBackend {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration, trust_ad: bool) -> Self {
        AdBackend {
            servers,
            timeout,
            trust_ad,
        }
    }

    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<Message, FailureKind> {
        let query = query_message(name, rtype, false);
        let mut last = FailureKind::Other("no nameservers configured".into());
        for server in &self.servers {
            match exchange(*server, &query, self.timeout).await {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<RawAnswer, FailureKind> {
        let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| FailureKind::Other(format!("bad name {name:?}: {e}")))?;
        let response = self.ask(&qname, rtype).await?;
        let security = if self.trust_ad && response.metadata.authentic_data {
            Security::Secure
        } else {
            Security::Insecure
        };
        let kind = match response.metadata.response_code {
            ResponseCode::NoError => RawKind::Records,
            ResponseCode::NXDomain => RawKind::NxDomain,
            ResponseCode::ServFail => return Err(servfail(&response)),
            ResponseCode::Refused => return Err(FailureKind::Refused),
            other => return Err(FailureKind::Other(format!("response code {other}"))),
        };
        let (owner, links) = if rtype == RecordType::CNAME {
            (qname.clone(), Vec::new())
        } else {
            follow_chain(&qname, &response.answers)
        };
        let alias = if links.is_empty() {
            None
        } else {
            let secure = security.is_secure()
                || (self.trust_ad && self.links_secure(&links, &response.answers).await);
            Some(Alias {
                name: owner.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
                secure,
            })
        };
        let records: Vec<&Record> = response
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype && r.name == owner)
            .collect();
        let kind = match (kind, records.is_empty()) {
            (RawKind::Records, true) => RawKind::NoData,
            (k, _) => k,
        };
        let ttl = if records.is_empty() {
            negative_ttl(&response.authorities)
        } else {
            records.iter().map(|r| r.ttl).min().unwrap_or(0)
        };
        Ok(RawAnswer {
            kind,
            records: records.into_iter().map(|r| r.data.clone()).collect(),
            security,
            alias,
            ttl,
        })
    }

    /// An insecure answer that went through a CNAME chain: were the links
    /// themselves secure? (The AD bit covers the whole answer, so an
    /// unsigned target hides a signed alias.) A CNAME synthesised from a
    /// DNAME is as secure as the DNAME, which is asked for instead: a
    /// validator cannot vouch for the CNAME alone (unbound answers
    /// SERVFAIL to a CNAME question below a DNAME).
    async fn links_secure(&self, links: &[&Record], answers: &[Record]) -> bool {
        for link in links {
            let (name, rtype) = match super::chain::synthesising_dname(link, answers) {
                Some(d) => (&d.name, RecordType::DNAME),
                None => (&link.name, RecordType::CNAME),
            };
            match self.ask(name, rtype).await {
                Ok(m) if m.metadata.authentic_data => {}
                _ => return false,
            }
        }
        true
    }
}

impl Backend for AdBackend {
    fn query<'a>(
        &'a self,
        name: &'a str,
        rtype: RecordType,
    ) -> BoxFuture<'a, Result<RawAnswer, FailureKind>> {
        Box::pin(self.lookup(name, rtype))
    }
}

/// A question to an authoritative server: no recursion wanted (RD clear),
/// DNSSEC records wanted (DO set), and neither AD nor CD, which mean
/// nothing to a server that does not validate.
pub(crate) fn authoritative_query(name: &Name, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(name.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

/// One TLSA record as an authoritative server served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedTlsa {
    pub record: super::Tlsa,
    pub ttl: u32,
}

/// What one authoritative server answered to a TLSA question, in the
/// project's terms (`danegate tlsa published`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthoritativeTlsa {
    /// The response code as DNS names it: `NOERROR`, `NXDOMAIN`,
    /// `REFUSED`...
    pub rcode: String,
    /// The AA flag: the server answered from a zone it serves.
    pub authoritative: bool,
    /// The TLSA records owned by the name asked for.
    pub records: Vec<ServedTlsa>,
    /// Signature expiration times (seconds since 1970, as the RRSIG
    /// carries them) of the RRSIGs over that TLSA set.
    pub rrsig_expirations: Vec<u32>,
    /// The target of a CNAME at the name asked for, if there is one.
    pub cname: Option<String>,
}

/// Asks `server` directly, without recursion, for the TLSA records of
/// `name` and their signatures. A timeout or network error is a failure;
/// every response code is an answer for the caller to judge.
pub(crate) async fn ask_authoritative_tlsa(
    server: SocketAddr,
    name: &str,
    limit: Duration,
) -> Result<AuthoritativeTlsa, FailureKind> {
    use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
    let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| FailureKind::Other(format!("bad name {name:?}: {e}")))?;
    let response = exchange(
        server,
        &authoritative_query(&qname, RecordType::TLSA),
        limit,
    )
    .await?;
    let at_name = |r: &&Record| r.name == qname;
    let records = response
        .answers
        .iter()
        .filter(at_name)
        .filter_map(|r| match &r.data {
            RData::TLSA(t) => Some(ServedTlsa {
                record: super::Tlsa {
                    usage: u8::from(t.cert_usage),
                    selector: u8::from(t.selector),
                    mtype: u8::from(t.matching),
                    data: t.cert_data.clone(),
                },
                ttl: r.ttl,
            }),
            _ => None,
        })
        .collect();
    let rrsig_expirations = response
        .answers
        .iter()
        .filter(at_name)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig))
                if sig.input().type_covered == RecordType::TLSA =>
            {
                Some(sig.input().sig_expiration.get())
            }
            _ => None,
        })
        .collect();
    let cname = response
        .answers
        .iter()
        .filter(at_name)
        .find_map(|r| match &r.data {
            RData::CNAME(target) => Some(
                target
                    .0
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            ),
            _ => None,
        });
    Ok(AuthoritativeTlsa {
        rcode: rcode_name(response.metadata.response_code),
        authoritative: response.metadata.authoritative,
        records,
        rrsig_expirations,
        cname,
    })
}

/// A response code's mnemonic, as dig and the RFCs write it.
pub(super) fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::NotAuth => "NOTAUTH".to_owned(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// The name server host names at `name` (lowercase, no trailing dot),
/// through `resolver`: records only at a zone apex (or a delegation).
pub(crate) async fn ns_names(
    resolver: &super::cache::CachingResolver,
    name: &str,
) -> super::LookupResult<String> {
    let a = resolver.raw(name, RecordType::NS).await?;
    let security = a.security;
    Ok(match a.kind {
        RawKind::NxDomain => super::Lookup::NxDomain { security },
        RawKind::NoData => super::Lookup::NoData { security },
        RawKind::Records => {
            let records: Vec<String> = a
                .records
                .iter()
                .filter_map(|r| match r {
                    RData::NS(ns) => {
                        Some(ns.0.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect();
            if records.is_empty() {
                super::Lookup::NoData { security }
            } else {
                super::Lookup::Records {
                    records,
                    security,
                    canonical: a.alias,
                }
            }
        }
    })
}
