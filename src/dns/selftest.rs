//! The DNS questions `danegate doctor` asks a name server, in the
//! project's terms: one question over one transport (UDP only, or TCP
//! only) with the DO and CD bits as the check needs, and what came back
//! (response code, AD bit, how many records and signatures, the RRSIG
//! validity windows); and the server's own name for its software
//! (`version.bind`, CHAOS class, which dnsmasq, unbound and BIND answer).
//! Judging the answers is the doctor's job (`ops::doctor`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::op::{Edns, Message, Query};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::time::timeout;

use super::wire;
use super::FailureKind;

/// How a question travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// UDP, and TCP when the answer is truncated (as lookups do).
    Any,
}

/// What one question is.
#[derive(Debug, Clone)]
pub struct Question {
    /// Absolute or not; the root is ".".
    pub name: String,
    /// `SOA` or `DNSKEY`.
    pub rtype: &'static str,
    /// DO: ask for DNSSEC records.
    pub dnssec_ok: bool,
    /// CD: ask the resolver not to validate.
    pub checking_disabled: bool,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `NOERROR`, `SERVFAIL`...
    pub rcode: String,
    /// The AD bit.
    pub authenticated: bool,
    /// Records of the type asked for, at the name asked for.
    pub records: usize,
    /// RRSIGs over them.
    pub signatures: usize,
    /// (inception, expiration) of each of those RRSIGs, seconds since 1970
    /// read as 32-bit serial numbers.
    pub windows: Vec<(u32, u32)>,
    pub elapsed: Duration,
}

fn rtype(name: &str) -> RecordType {
    match name {
        "DNSKEY" => RecordType::DNSKEY,
        "A" => RecordType::A,
        _ => RecordType::SOA,
    }
}

/// Asks `server` one question over `transport`, waiting at most `limit`.
pub async fn ask(
    server: SocketAddr,
    transport: Transport,
    q: &Question,
    limit: Duration,
) -> Result<Served, FailureKind> {
    let name = Name::from_ascii(format!("{}.", q.name.trim_end_matches('.')))
        .or_else(|_| Name::from_ascii(&q.name))
        .map_err(|e| FailureKind::Other(format!("bad name {:?}: {e}", q.name)))?;
    let rt = rtype(q.rtype);
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = true;
    m.metadata.checking_disabled = q.checking_disabled;
    m.add_query(Query::query(name.clone(), rt));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(q.dnssec_ok);
    edns.set_max_payload(1232);
    m.set_edns(edns);
    let started = Instant::now();
    let response = one_way(server, transport, &m, limit).await?;
    let at_name = |r: &&hickory_resolver::proto::rr::Record| r.name == name;
    let records = response
        .answers
        .iter()
        .filter(at_name)
        .filter(|r| r.record_type() == rt)
        .count();
    let windows: Vec<(u32, u32)> = response
        .answers
        .iter()
        .filter(at_name)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) if sig.input().type_covered == rt => Some((
                sig.input().sig_inception.get(),
                sig.input().sig_expiration.get(),
            )),
            _ => None,
        })
        .collect();
    Ok(Served {
        rcode: wire::rcode_name(response.metadata.response_code),
        authenticated: response.metadata.authentic_data,
        records,
        signatures: windows.len(),
        windows,
        elapsed: started.elapsed(),
    })
}

async fn one_way(
    server: SocketAddr,
    transport: Transport,
    m: &Message,
    limit: Duration,
) -> Result<Message, FailureKind> {
    match transport {
        Transport::Udp => {
            let bytes = m
                .to_vec()
                .map_err(|e| FailureKind::Other(format!("cannot encode query: {e}")))?;
            match timeout(limit, wire::udp_only(server, &bytes, m.metadata.id)).await {
                Err(_) => Err(FailureKind::Timeout),
                Ok(r) => r.map_err(|e| FailureKind::Other(e.to_string())),
            }
        }
        Transport::Tcp => {
            let bytes = m
                .to_vec()
                .map_err(|e| FailureKind::Other(format!("cannot encode query: {e}")))?;
            match timeout(limit, wire::tcp_only(server, &bytes, m.metadata.id)).await {
                Err(_) => Err(FailureKind::Timeout),
                Ok(r) => r.map_err(|e| FailureKind::Other(e.to_string())),
            }
        }
        Transport::Any => wire::exchange(server, m, limit).await,
    }
}

/// The server's `version.bind` (CHAOS TXT), if it answers one.
pub async fn software(server: SocketAddr, limit: Duration) -> Option<String> {
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    let mut q = Query::query(Name::from_ascii("version.bind.").ok()?, RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let response = wire::exchange(server, &m, limit).await.ok()?;
    response.answers.iter().find_map(|r| match &r.data {
        RData::TXT(t) => {
            let text: String = String::from_utf8_lossy(&t.txt_data.concat())
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(80)
                .collect();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    })
}
