//! What goes wrong with one destination address, in words for the
//! operator: [`OutboundError`], and the [`Peer`] it names. How each
//! becomes a reply for the legacy MTA is `failure`'s business.

use std::fmt;
use std::net::SocketAddr;

use super::stage::Stage;
use crate::policy::RefuseReason;
use crate::smtp::reply::{Reply, ReplyError};

/// A destination address with the host name it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub host: String,
    pub addr: SocketAddr,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]:{}", self.host, self.addr.ip(), self.addr.port())
    }
}

/// Transport and protocol trouble with one destination address.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    #[error("connect to {peer}: {cause}")]
    Connect { peer: Peer, cause: String },
    #[error("conversation with {peer} timed out while {stage}")]
    Timeout { peer: Peer, stage: Stage },
    #[error("lost connection with {peer} while {stage}: {cause}")]
    Lost {
        peer: Peer,
        stage: Stage,
        cause: String,
    },
    #[error("malformed reply from {peer} while {stage}: {cause}")]
    Protocol {
        peer: Peer,
        stage: Stage,
        cause: ReplyError,
    },
    /// A reply the stage can never get (250 to DATA, 354 to RCPT, ...):
    /// the server and we no longer agree where the conversation stands.
    #[error("protocol error: {peer} answered the {} with an unexpected reply: {reply}", stage.command_name())]
    Unexpected {
        peer: Peer,
        stage: Stage,
        reply: Reply,
    },
    /// The server refused the conversation (greeting, EHLO/HELO).
    #[error("{peer} said: {reply} (while {stage})")]
    Rejected {
        peer: Peer,
        stage: Stage,
        reply: Reply,
    },
    #[error("TLS is required, but {peer} did not offer STARTTLS")]
    StartTlsMissing { peer: Peer },
    #[error("TLS is required, but {peer} refused STARTTLS: {reply}")]
    StartTlsRefused { peer: Peer, reply: Reply },
    #[error("TLS handshake with {peer} failed: {cause}")]
    Tls { peer: Peer, cause: String },
    /// The handshake failed because the certificate matched no TLSA record
    /// (or its DANE-TA path or name did not verify).
    #[error("TLS handshake with {peer} failed: {cause}")]
    Dane { peer: Peer, cause: String },
    #[error("{peer}: {reason}")]
    Refused { peer: Peer, reason: RefuseReason },
}

impl OutboundError {
    pub fn peer(&self) -> &Peer {
        match self {
            OutboundError::Connect { peer, .. }
            | OutboundError::Timeout { peer, .. }
            | OutboundError::Lost { peer, .. }
            | OutboundError::Protocol { peer, .. }
            | OutboundError::Unexpected { peer, .. }
            | OutboundError::Rejected { peer, .. }
            | OutboundError::StartTlsMissing { peer }
            | OutboundError::StartTlsRefused { peer, .. }
            | OutboundError::Tls { peer, .. }
            | OutboundError::Dane { peer, .. }
            | OutboundError::Refused { peer, .. } => peer,
        }
    }
}
