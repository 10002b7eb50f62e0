//! Every reply danegate itself sends to its SMTP client, and how each kind
//! of failure becomes one: code, enhanced status code (RFC 3463) and text.
//!
//! This is the only place where reply codes are chosen (Postfix's
//! `smtp_trouble.c` idea): the session code names an [`Answer`] and never
//! writes a reply literal. Destination replies that are passed through are
//! shaped here too (the `host[ip]:port said:` prefix).

use crate::nexthop::PlanError;
use crate::outbound::{Mismatch, OutboundError, Peer};
use crate::smtp::command::CommandError;
use crate::smtp::data::DataViolation;
use crate::smtp::reply::{EnhancedCode, Reply};
use crate::stage::Stage;

const fn ec(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(class, subject, detail))
}

/// Why a delivery attempt failed, as the legacy MTA must learn it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Outbound(#[from] OutboundError),
    /// The destination answered a transaction command negatively.
    #[error("{peer} said: {reply} (in reply to {command})")]
    Remote {
        peer: Peer,
        command: &'static str,
        reply: Reply,
    },
    #[error("{peer} does not support {mismatch:?}")]
    Mismatch { peer: Peer, mismatch: Mismatch },
}

impl Failure {
    /// A negative destination reply to `stage`.
    pub fn remote(peer: &Peer, stage: Stage, reply: Reply) -> Failure {
        Failure::Remote {
            peer: peer.clone(),
            command: command_name(stage),
            reply,
        }
    }

    /// The `reason` label of the recipient metrics.
    pub fn reason(&self) -> &'static str {
        use crate::dns::FailureKind;
        let dns = |kind: &FailureKind| match kind {
            FailureKind::Bogus => "dns_bogus",
            _ => "dns_failed",
        };
        match self {
            Failure::Plan(PlanError::Dns(e)) => dns(&e.kind),
            Failure::Plan(PlanError::NoHost { definite: true, .. }) => "no_mail_domain",
            Failure::Plan(PlanError::NoHost { problems, .. }) => problems
                .iter()
                .find_map(|p| match &p.reason {
                    crate::nexthop::SkipReason::Dns(e) if e.kind == FailureKind::Bogus => {
                        Some("dns_bogus")
                    }
                    _ => None,
                })
                .unwrap_or("dns_failed"),
            Failure::Plan(PlanError::NxDomain { .. } | PlanError::NullMx { .. }) => {
                "no_mail_domain"
            }
            Failure::Outbound(o) => match o {
                OutboundError::Connect { .. } => "connect_failed",
                OutboundError::Timeout { .. }
                | OutboundError::Lost { .. }
                | OutboundError::Protocol { .. }
                | OutboundError::Rejected { .. } => "connection_lost",
                OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. } => {
                    "starttls_missing"
                }
                OutboundError::Tls { .. } => "tls_failed",
                OutboundError::Dane { .. } => "dane_mismatch",
                OutboundError::Refused { .. } => "policy",
            },
            Failure::Remote { reply, .. } if reply.code >= 500 => "remote_5xx",
            Failure::Remote { .. } => "remote_4xx",
            Failure::Mismatch { .. } => "other",
        }
    }

    /// Ranks failures so that, when every host failed, the deferral names
    /// the most specific reason (dane-rules §3.7): policy and TLS problems
    /// first, then anything the destination said, then transport trouble.
    pub fn specificity(&self) -> u8 {
        match self {
            Failure::Outbound(
                OutboundError::Refused { .. }
                | OutboundError::Tls { .. }
                | OutboundError::Dane { .. }
                | OutboundError::StartTlsMissing { .. }
                | OutboundError::StartTlsRefused { .. },
            ) => 4,
            Failure::Remote { .. } | Failure::Mismatch { .. } => 3,
            Failure::Outbound(OutboundError::Rejected { .. } | OutboundError::Protocol { .. }) => 2,
            Failure::Outbound(_) => 1,
            Failure::Plan(_) => 0,
        }
    }
}

fn command_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Mail => "MAIL FROM command",
        Stage::Rcpt => "RCPT TO command",
        Stage::DataInit => "DATA command",
        Stage::DataDone | Stage::DataBlock => "end of DATA command",
        Stage::Bdat => "BDAT command",
        Stage::Rset => "RSET command",
        Stage::Greeting => "initial greeting",
        Stage::Ehlo => "EHLO command",
        Stage::Helo => "HELO command",
        Stage::StartTls => "STARTTLS command",
        _ => "command",
    }
}

/// Everything the inbound session can say.
#[derive(Debug, Clone)]
pub enum Answer<'a> {
    Greeting {
        hostname: &'a str,
    },
    Ehlo {
        hostname: &'a str,
        client: &'a str,
        max_size: u64,
    },
    Helo {
        hostname: &'a str,
    },
    Ok,
    MailOk,
    StartData,
    ChunkOk {
        size: u64,
    },
    Bye {
        hostname: &'a str,
    },
    Vrfy,
    Help,
    NotAllowed {
        client: std::net::IpAddr,
    },
    TooBusy,
    ShuttingDown,
    IdleTimeout,
    TooManyErrors,
    LineTooLong,
    Command(&'a CommandError),
    NotImplemented {
        command: &'static str,
    },
    BadSequence {
        hint: &'static str,
    },
    NeedMailFirst,
    NoValidRecipients,
    NestedMail,
    NoPostmaster,
    UnsupportedBody,
    Smtputf8Address,
    DeclaredTooBig {
        max: u64,
    },
    MessageTooBig {
        max: u64,
    },
    TooManyRecipients,
    OtherDomain {
        first: &'a str,
    },
    Violation(DataViolation),
    ChunkAfterFailure,
    Failed(&'a Failure),
}

impl Answer<'_> {
    pub fn reply(&self) -> Reply {
        use Answer::*;
        match self {
            Greeting { hostname } => Reply::new(220, None, format!("{hostname} ESMTP danegate")),
            Ehlo {
                hostname,
                client,
                max_size,
            } => Reply {
                code: 250,
                enhanced: None,
                lines: vec![
                    format!("{hostname} greets {client}"),
                    "PIPELINING".into(),
                    format!("SIZE {max_size}"),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                    "SMTPUTF8".into(),
                    "DSN".into(),
                    "CHUNKING".into(),
                ],
            },
            Helo { hostname } => Reply::new(250, None, *hostname),
            Ok => Reply::new(250, ec(2, 0, 0), "Ok"),
            MailOk => Reply::new(250, ec(2, 1, 0), "Ok"),
            StartData => Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"),
            ChunkOk { size } => Reply::new(250, ec(2, 0, 0), format!("{size} octets received")),
            Bye { hostname } => Reply::new(221, ec(2, 0, 0), format!("{hostname} closing connection")),
            Vrfy => Reply::new(
                252,
                ec(2, 5, 0),
                "Cannot VRFY user, but will relay the message and attempt delivery",
            ),
            Help => Reply::new(
                214,
                ec(2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
            ),
            NotAllowed { client } => Reply::new(
                554,
                ec(5, 7, 1),
                format!("Access denied: {client} may not relay through this host"),
            ),
            TooBusy => Reply::new(421, ec(4, 3, 2), "Too many connections, try again later"),
            ShuttingDown => Reply::new(421, ec(4, 3, 2), "Service shutting down, try again later"),
            IdleTimeout => Reply::new(421, ec(4, 4, 2), "Timeout exceeded, closing connection"),
            TooManyErrors => Reply::new(421, ec(4, 7, 0), "Too many errors, closing connection"),
            LineTooLong => Reply::new(500, ec(5, 5, 2), "Line too long"),
            Command(e) => command_error(e),
            NotImplemented { command } => {
                Reply::new(502, ec(5, 5, 1), format!("{command} is not implemented"))
            }
            BadSequence { hint } => Reply::new(503, ec(5, 5, 1), format!("Bad sequence of commands: {hint}")),
            NeedMailFirst => Reply::new(503, ec(5, 5, 1), "Bad sequence of commands: need MAIL first"),
            NoValidRecipients => Reply::new(554, ec(5, 5, 1), "No valid recipients"),
            NestedMail => Reply::new(503, ec(5, 5, 1), "Bad sequence of commands: nested MAIL command"),
            NoPostmaster => Reply::new(
                550,
                ec(5, 1, 1),
                "<Postmaster>: this host relays only and has no local mailboxes",
            ),
            UnsupportedBody => Reply::new(555, ec(5, 5, 4), "BODY=BINARYMIME is not supported"),
            Smtputf8Address => Reply::new(
                553,
                ec(5, 6, 7),
                "Non-ASCII address requires the SMTPUTF8 parameter",
            ),
            DeclaredTooBig { max } => Reply::new(
                552,
                ec(5, 3, 4),
                format!("Message size exceeds fixed limit of {max} octets"),
            ),
            MessageTooBig { max } => Reply::new(
                552,
                ec(5, 3, 4),
                format!("Message size exceeds fixed limit of {max} octets"),
            ),
            TooManyRecipients => Reply::new(452, ec(4, 5, 3), "Too many recipients"),
            OtherDomain { first } => Reply::new(
                452,
                ec(4, 5, 3),
                format!(
                    "Too many recipient domains: this transaction goes to {first}; send recipients of other domains in a new transaction"
                ),
            ),
            Violation(v) => Reply::new(550, ec(5, 5, 2), format!("Message refused: {v}")),
            ChunkAfterFailure => Reply::new(
                503,
                ec(5, 5, 1),
                "Bad sequence of commands: an earlier BDAT of this message failed; send RSET",
            ),
            Failed(f) => failure(f),
        }
    }
}

fn command_error(e: &CommandError) -> Reply {
    match e {
        CommandError::Unrecognized => Reply::new(500, ec(5, 5, 2), "Command not recognized"),
        CommandError::Syntax { syntax } => {
            Reply::new(501, ec(5, 5, 4), format!("Syntax: {syntax}"))
        }
        CommandError::BadSender => Reply::new(501, ec(5, 1, 7), "Bad sender address syntax"),
        CommandError::BadRecipient => Reply::new(501, ec(5, 1, 3), "Bad recipient address syntax"),
        CommandError::UnsupportedParameter { keyword } => {
            Reply::new(555, ec(5, 5, 4), format!("Unsupported parameter {keyword}"))
        }
        CommandError::BadParameterValue { keyword, syntax } => Reply::new(
            501,
            ec(5, 5, 4),
            format!("Bad {keyword} parameter, syntax: {syntax}"),
        ),
        CommandError::NotUtf8 => Reply::new(500, ec(5, 5, 2), "Command is not valid UTF-8"),
    }
}

/// A positive destination reply passed on to the client. We announce
/// ENHANCEDSTATUSCODES, so a reply without one gets the code RFC 3463
/// gives that step.
pub fn relayed(stage: Stage, mut reply: Reply) -> Reply {
    if reply.enhanced.is_none() {
        let class = (reply.code / 100) as u8;
        reply.enhanced = match stage {
            Stage::Mail => ec(class, 1, 0),
            Stage::Rcpt => ec(class, 1, 5),
            _ => ec(class, 0, 0),
        };
    }
    reply
}

/// The reply for a failed delivery step.
pub fn failure(f: &Failure) -> Reply {
    let text = f.to_string();
    match f {
        Failure::Plan(p) => match p {
            PlanError::Dns(_) => Reply::new(451, ec(4, 4, 3), text),
            PlanError::NxDomain { .. } => Reply::new(550, ec(5, 1, 2), text),
            PlanError::NullMx { .. } => Reply::new(556, ec(5, 1, 10), text),
            // Every host definitely has no address (NXDOMAIN or NODATA,
            // nothing failed): permanent, as Postfix bounces it
            // ("Host found but no data record of requested type").
            PlanError::NoHost { definite: true, .. } => Reply::new(550, ec(5, 4, 4), text),
            PlanError::NoHost { .. } => Reply::new(451, ec(4, 4, 3), text),
        },
        Failure::Outbound(o) => match o {
            OutboundError::Connect { .. } => Reply::new(451, ec(4, 4, 1), text),
            OutboundError::Timeout { .. } | OutboundError::Lost { .. } => {
                Reply::new(451, ec(4, 4, 2), text)
            }
            OutboundError::Protocol { .. } => Reply::new(451, ec(4, 5, 0), text),
            OutboundError::Rejected { reply, .. } => {
                // A server refusing the conversation itself (greeting,
                // EHLO) is not a verdict on this message: defer.
                let e = reply
                    .enhanced
                    .map(|e| EnhancedCode::new(4, e.subject, e.detail))
                    .or(ec(4, 0, 0));
                Reply::new(451, e, text)
            }
            OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. } => {
                Reply::new(451, ec(4, 7, 4), text)
            }
            OutboundError::Tls { .. }
            | OutboundError::Dane { .. }
            | OutboundError::Refused { .. } => Reply::new(451, ec(4, 7, 5), text),
        },
        Failure::Remote {
            peer,
            command,
            reply,
        } => {
            // 421 tells the client that *we* close the channel: the
            // destination closing its own becomes an ordinary 451.
            let code = if reply.code == 421 { 451 } else { reply.code };
            let class = (code / 100) as u8;
            let enhanced = reply.enhanced.or(ec(class, 0, 0));
            // No "(in reply to ...)" here: the legacy MTA adds its own
            // (Postfix does), and it would read twice.
            let _ = command;
            Reply::new(code, enhanced, format!("{peer} said: {}", reply.text()))
        }
        Failure::Mismatch { peer, mismatch } => match mismatch {
            Mismatch::Smtputf8 => Reply::new(
                553,
                ec(5, 6, 7),
                format!("{peer} does not support SMTPUTF8, which this message requires"),
            ),
            Mismatch::Size { limit } => Reply::new(
                552,
                ec(5, 3, 4),
                format!("Message size exceeds the limit of {limit} octets announced by {peer}"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            host: "mx1.example.net".into(),
            addr: "192.0.2.1:25".parse().unwrap(),
        }
    }

    #[test]
    fn remote_reply_is_prefixed_and_keeps_codes() {
        let r = failure(&Failure::remote(
            &peer(),
            Stage::Rcpt,
            Reply::new(
                550,
                ec(5, 1, 1),
                "<bob@example.net>: Recipient address rejected",
            ),
        ));
        assert_eq!(
            r.to_string(),
            "550 5.1.1 mx1.example.net[192.0.2.1]:25 said: <bob@example.net>: Recipient address rejected"
        );
    }

    #[test]
    fn remote_reply_without_enhanced_code_gets_class_default() {
        let r = failure(&Failure::remote(
            &peer(),
            Stage::DataDone,
            Reply::new(451, None, "try later"),
        ));
        assert_eq!(r.code, 451);
        assert_eq!(r.enhanced, ec(4, 0, 0));
    }

    #[test]
    fn transport_failures_defer() {
        let lost = failure(&Failure::Outbound(OutboundError::Lost {
            peer: peer(),
            stage: Stage::DataDone,
            cause: "connection closed by server".into(),
        }));
        assert_eq!(
            lost.to_string(),
            "451 4.4.2 lost connection with mx1.example.net[192.0.2.1]:25 while sending end of data -- message may be sent more than once: connection closed by server"
        );
        let greeting = failure(&Failure::Outbound(OutboundError::Rejected {
            peer: peer(),
            stage: Stage::Greeting,
            reply: Reply::new(554, ec(5, 7, 1), "go away"),
        }));
        assert_eq!((greeting.code, greeting.enhanced), (451, ec(4, 7, 1)));
    }

    #[test]
    fn plan_failures() {
        let nx = failure(&Failure::Plan(PlanError::NxDomain {
            domain: "nowhere.example".into(),
        }));
        assert_eq!(
            nx.to_string(),
            "550 5.1.2 domain nowhere.example does not exist"
        );
        let null = failure(&Failure::Plan(PlanError::NullMx {
            domain: "null.example".into(),
        }));
        assert_eq!((null.code, null.enhanced), (556, ec(5, 1, 10)));
    }
}
