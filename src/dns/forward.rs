//! The upstream name servers as hickory's DNSSEC validator sees them in
//! `validate` mode: every question is asked with DO (send signatures) and
//! CD (checking disabled, RFC 4035 §3.2.2), so that a validating upstream
//! hands over the raw data, bogus or not, and danegate's own validator
//! judges it and can say why it fails (RFC 6840 §5.9: a validating
//! resolver sets CD on its own queries). Without CD a validating upstream
//! answers bogus data with a bare SERVFAIL, and the cause is lost.
//!
//! This is a [`DnsHandle`] over [`wire::exchange`] (UDP, TCP when the
//! answer is truncated), asking the servers in order until one answers.
//! Responses become hickory's results the way hickory's own name server
//! pool makes them ([`DnsError::from_response`]), so the validator above
//! it behaves as it does in hickory-resolver.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, Stream};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequest, DnsResponse, Edns, Message};

use super::wire;
use super::FailureKind;

/// Recursive name servers asked with the CD bit set.
#[derive(Clone)]
pub struct CdHandle {
    servers: Arc<Vec<SocketAddr>>,
    timeout: Duration,
}

impl CdHandle {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        CdHandle {
            servers: Arc::new(servers),
            timeout,
        }
    }

    /// Asks each server in turn; the first answer wins.
    async fn ask(self, query: Message) -> Result<DnsResponse, NetError> {
        let mut last = NetError::Msg("no nameservers configured".into());
        for server in self.servers.iter() {
            match wire::exchange(*server, &query, self.timeout).await {
                Ok(m) => {
                    let response = DnsResponse::from_message(m).map_err(NetError::from)?;
                    return DnsError::from_response(response).map_err(NetError::from);
                }
                Err(FailureKind::Timeout) => last = NetError::Timeout,
                Err(e) => last = NetError::Msg(format!("{server}: {e}")),
            }
        }
        Err(last)
    }
}

/// The question of `request` as danegate sends it upstream.
pub(super) fn cd_query(request: &Message) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    // RFC 6840 §5.7: AD in a query asks for the AD bit in the answer; CD
    // asks the resolver to pass on data it has not validated.
    m.metadata.authentic_data = true;
    m.metadata.checking_disabled = true;
    for q in &request.queries {
        m.add_query(q.clone());
    }
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

impl DnsHandle for CdHandle {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let query = cd_query(&request);
        let this = self.clone();
        Box::pin(stream::once(this.ask(query)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{DnsRequestOptions, Query};
    use hickory_resolver::proto::rr::{Name, RecordType};

    #[test]
    fn every_question_asks_for_signatures_and_raw_data() {
        let name = Name::from_ascii("example.net.").unwrap();
        let request = DnsRequest::from_query(
            Query::query(name.clone(), RecordType::MX),
            DnsRequestOptions::default(),
        );
        let m = cd_query(&request);
        assert!(m.metadata.checking_disabled);
        assert!(m.metadata.recursion_desired);
        assert!(m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].name(), &name);
        assert_eq!(m.queries[0].query_type(), RecordType::MX);
    }
}
