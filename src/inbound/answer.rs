//! Every reply danegate itself sends to the legacy MTA: code, enhanced
//! status code (RFC 3463) and text.
//!
//! This is the only place where the inbound side chooses a reply (Postfix's
//! `smtp_trouble.c` idea): the session names an [`Answer`] and never
//! writes a reply literal. A failed delivery becomes a reply in
//! [`Failure::reply`](crate::outbound::failure::Failure::reply); a
//! destination's own positive reply is passed on through [`relayed`].

use crate::outbound::failure::Failure;
use crate::outbound::stage::Stage;
use crate::smtp::command::CommandError;
use crate::smtp::data::DataViolation;
use crate::smtp::reply::{EnhancedCode, Reply};

const fn ec(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(class, subject, detail))
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
    /// Something that cannot happen did: the client is told to try again.
    LocalError,
    Failed(&'a Failure),
}

const VRFY: &str = "Cannot VRFY user, but will relay the message and attempt delivery";
const HELP: &str = "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
const NO_POSTMASTER: &str = "<Postmaster>: this host relays only and has no local mailboxes";
const SMTPUTF8_ADDRESS: &str = "Non-ASCII address requires the SMTPUTF8 parameter";
const CHUNK_AFTER_FAILURE: &str =
    "Bad sequence of commands: an earlier BDAT of this message failed; send RSET";

/// A reply with an enhanced status code.
fn r(code: u16, (class, subject, detail): (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::new(code, ec(class, subject, detail), text)
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
            } => ehlo(hostname, client, *max_size),
            Helo { hostname } => Reply::new(250, None, *hostname),
            Ok => r(250, (2, 0, 0), "Ok"),
            MailOk => r(250, (2, 1, 0), "Ok"),
            StartData => Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"),
            ChunkOk { size } => r(250, (2, 0, 0), format!("{size} octets received")),
            Bye { hostname } => r(221, (2, 0, 0), format!("{hostname} closing connection")),
            Vrfy => r(252, (2, 5, 0), VRFY),
            Help => r(214, (2, 0, 0), HELP),
            NotAllowed { client } => r(
                554,
                (5, 7, 1),
                format!("Access denied: {client} may not relay through this host"),
            ),
            TooBusy => r(421, (4, 3, 2), "Too many connections, try again later"),
            ShuttingDown => r(421, (4, 3, 2), "Service shutting down, try again later"),
            IdleTimeout => r(421, (4, 4, 2), "Timeout exceeded, closing connection"),
            TooManyErrors => r(421, (4, 7, 0), "Too many errors, closing connection"),
            LineTooLong => r(500, (5, 5, 2), "Line too long"),
            Command(e) => command_error(e),
            NotImplemented { command } => r(502, (5, 5, 1), format!("{command} is not implemented")),
            BadSequence { hint } => r(503, (5, 5, 1), format!("Bad sequence of commands: {hint}")),
            NeedMailFirst => r(503, (5, 5, 1), "Bad sequence of commands: need MAIL first"),
            NoValidRecipients => r(554, (5, 5, 1), "No valid recipients"),
            NestedMail => r(503, (5, 5, 1), "Bad sequence of commands: nested MAIL command"),
            NoPostmaster => r(550, (5, 1, 1), NO_POSTMASTER),
            UnsupportedBody => r(555, (5, 5, 4), "BODY=BINARYMIME is not supported"),
            Smtputf8Address => r(553, (5, 6, 7), SMTPUTF8_ADDRESS),
            DeclaredTooBig { max } | MessageTooBig { max } => r(
                552,
                (5, 3, 4),
                format!("Message size exceeds fixed limit of {max} octets"),
            ),
            TooManyRecipients => r(452, (4, 5, 3), "Too many recipients"),
            OtherDomain { first } => r(
                452,
                (4, 5, 3),
                format!("Too many recipient domains: this transaction goes to {first}; send recipients of other domains in a new transaction"),
            ),
            Violation(v) => r(550, (5, 5, 2), format!("Message refused: {v}")),
            ChunkAfterFailure => r(503, (5, 5, 1), CHUNK_AFTER_FAILURE),
            LocalError => r(451, (4, 3, 0), "Local error in processing; try again later"),
            Failed(f) => f.reply(),
        }
    }
}

/// The EHLO reply: our name and the extensions we offer.
fn ehlo(hostname: &str, client: &str, max_size: u64) -> Reply {
    Reply {
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
