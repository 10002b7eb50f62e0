//! What the legacy MTA heard for each recipient, as the operator reads it:
//! the per-recipient summary line and its metrics.
//!
//! Every value that came from the wire (addresses, the destination's
//! reply text) goes through [`Field`], so no value can pass for another
//! field and no control byte reaches the log.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::info;

use super::answer::{relayed, Answer};
use crate::logging::Field;
use crate::metrics;
use crate::outbound::client::Peer;
use crate::outbound::failure::Failure;
use crate::outbound::stage::Stage;
use crate::smtp::reply::Reply;

/// A reply with the reason label it is counted under.
pub(super) struct Outcome {
    pub reply: Reply,
    pub reason: &'static str,
}

impl Outcome {
    pub fn failed(f: &Failure) -> Outcome {
        Outcome {
            reply: Answer::Failed(f).reply(),
            reason: f.reason(),
        }
    }

    pub fn answer(a: Answer<'_>, reason: &'static str) -> Outcome {
        Outcome {
            reply: a.reply(),
            reason,
        }
    }

    /// The destination's own positive reply.
    pub fn relayed(stage: Stage, reply: Reply) -> Outcome {
        Outcome {
            reply: relayed(stage, reply),
            reason: "none",
        }
    }

    /// delivered (2xx), deferred (4xx) or rejected (5xx).
    pub fn word(&self) -> &'static str {
        if self.reply.is_positive() {
            "delivered"
        } else if self.reply.is_transient() {
            "deferred"
        } else {
            "rejected"
        }
    }
}

/// Who the session is, for its log lines.
#[derive(Clone, Copy)]
pub(super) struct Who<'a> {
    pub session: &'a str,
    pub client: SocketAddr,
    /// Appended to the TLS field (test mode says nothing was enforced).
    pub note: &'static str,
}

/// The envelope facts a summary line names.
pub(super) struct Envelope<'a> {
    pub from: &'a str,
    pub started: Instant,
    /// The destination address and TLS state the transaction went to.
    pub relay: Option<&'a (Peer, String)>,
}

/// The per-recipient summary line, counted in the recipient metrics.
pub(super) fn recipient(who: Who<'_>, env: &Envelope<'_>, rcpt: &str, outcome: &Outcome) {
    let (relay, tls) = match env.relay {
        Some((peer, tls)) => (peer.to_string(), format!("{tls}{}", who.note)),
        None => ("none".to_owned(), format!("none{}", who.note)),
    };
    let word = outcome.word();
    metrics::global().recipient(word, outcome.reason);
    info!(
        session = %who.session,
        client = %who.client.ip(),
        from = %Field(&format!("<{}>", env.from)),
        to = %Field(&format!("<{rcpt}>")),
        relay = %Field(&relay),
        tls = %Field(&tls),
        delay = %format!("{:.2}", env.started.elapsed().as_secs_f64()),
        status = %Field(&outcome.reply.to_string()),
        "{word}"
    );
}

/// A recipient whose client vanished before the end of the message.
pub(super) fn abandoned(who: Who<'_>, from: &str, rcpt: &str, stage: Stage) {
    metrics::global().recipient("abandoned", "client_gone");
    info!(
        session = %who.session,
        client = %who.client.ip(),
        from = %Field(&format!("<{from}>")),
        to = %Field(&format!("<{rcpt}>")),
        status = "none",
        "client disconnected while {stage}; nothing delivered"
    );
}
