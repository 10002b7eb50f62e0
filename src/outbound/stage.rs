//! The states of an SMTP conversation, outbound and inbound: each one's
//! timeout, human description and (outbound) the replies it may get live
//! here, in one table, so that log lines and deferral texts say the same
//! thing ("while sending RCPT TO") and every reply is judged the same way.

use std::fmt;
use std::time::Duration;

use crate::config::Timeouts;
use crate::smtp::reply::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Mail,
    Rcpt,
    DataInit,
    DataBlock,
    DataDone,
    /// A BDAT chunk that is not the last one.
    Bdat,
    /// BDAT ... LAST: its reply ends the message.
    BdatLast,
    Rset,
    Quit,
    /// Inbound: waiting for the legacy MTA's next command line.
    InboundCommand,
    /// Inbound: receiving the content after DATA.
    InboundData,
    /// Inbound: receiving the octets of a BDAT chunk.
    InboundBdat,
}

/// How a reply fits the stage it answers (Postfix's discipline: every
/// reply is checked against what its command expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The success this stage waits for (2xx, or 354 to DATA, 220 to the
    /// greeting and STARTTLS).
    Positive,
    /// A refusal: 4xx or 5xx.
    Negative,
    /// A reply this stage can never get (250 to DATA, 354 to RCPT, 3xx to
    /// MAIL, ...): the server is not speaking SMTP with us any more.
    Unexpected,
}

impl Stage {
    /// What we were doing, for "lost connection with X while ...".
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Connect => "connecting",
            Stage::Greeting => "receiving the initial server greeting",
            Stage::Ehlo => "sending EHLO",
            Stage::Helo => "sending HELO",
            Stage::StartTls => "sending STARTTLS",
            Stage::TlsHandshake => "performing the TLS handshake",
            Stage::Mail => "sending MAIL FROM",
            Stage::Rcpt => "sending RCPT TO",
            Stage::DataInit => "sending DATA",
            Stage::DataBlock => "sending message content",
            Stage::DataDone => "sending end of data -- message may be sent more than once",
            Stage::Bdat => "sending BDAT",
            Stage::BdatLast => "sending BDAT LAST -- message may be sent more than once",
            Stage::Rset => "sending RSET",
            Stage::Quit => "sending QUIT",
            Stage::InboundCommand => "waiting for a command",
            Stage::InboundData => "receiving message content",
            Stage::InboundBdat => "receiving a BDAT chunk",
        }
    }

    /// How long this stage may take (RFC 5321 §4.5.3.2 and Postfix's
    /// `smtp_*_timeout` defaults, overridable in `[timeouts]`; inbound
    /// stages wait `inbound_idle`).
    pub fn timeout(self, t: &Timeouts) -> Duration {
        Duration::from_secs(match self {
            Stage::Connect => t.connect,
            Stage::Greeting => t.greeting,
            Stage::Ehlo | Stage::Helo => t.ehlo,
            Stage::StartTls | Stage::TlsHandshake => t.starttls,
            Stage::Mail => t.mail,
            Stage::Rcpt => t.rcpt,
            Stage::DataInit => t.data_init,
            Stage::DataBlock => t.data_block,
            Stage::DataDone | Stage::Bdat | Stage::BdatLast => t.data_done,
            Stage::Rset => t.rset,
            Stage::Quit => t.quit,
            Stage::InboundCommand | Stage::InboundData | Stage::InboundBdat => t.inbound_idle,
        })
    }

    /// Judges a destination's reply to this stage.
    pub fn judge(self, reply: &Reply) -> Verdict {
        let positive = match self {
            Stage::Greeting | Stage::StartTls => reply.code == 220,
            Stage::DataInit => reply.code == 354,
            _ => reply.is_positive(),
        };
        if positive {
            Verdict::Positive
        } else if reply.is_transient() || reply.is_permanent() {
            Verdict::Negative
        } else {
            Verdict::Unexpected
        }
    }

    /// The enhanced status code of a transient failure in this stage when
    /// the server gave none: "connection lost/timed out" (4.4.2) except
    /// while connecting (4.4.1, no answer from host).
    pub fn lost_code(self) -> (u8, u16, u16) {
        match self {
            Stage::Connect => (4, 4, 1),
            _ => (4, 4, 2),
        }
    }

    /// The command a reply to this stage answers, for texts like "in reply
    /// to RCPT TO command".
    pub fn command_name(self) -> &'static str {
        match self {
            Stage::Mail => "MAIL FROM command",
            Stage::Rcpt => "RCPT TO command",
            Stage::DataInit => "DATA command",
            Stage::DataDone | Stage::DataBlock => "end of DATA command",
            Stage::Bdat | Stage::BdatLast => "BDAT command",
            Stage::Rset => "RSET command",
            Stage::Greeting => "initial greeting",
            Stage::Ehlo => "EHLO command",
            Stage::Helo => "HELO command",
            Stage::StartTls => "STARTTLS command",
            _ => "command",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn r(code: u16) -> Reply {
        Reply::new(code, None, "x")
    }

    /// (stage, reply code, verdict): what each stage may be answered.
    const TABLE: &[(Stage, u16, Verdict)] = &[
        (Stage::Greeting, 220, Positive),
        (Stage::Greeting, 250, Unexpected),
        (Stage::Greeting, 421, Negative),
        (Stage::Greeting, 554, Negative),
        (Stage::Ehlo, 250, Positive),
        (Stage::Ehlo, 354, Unexpected),
        (Stage::Ehlo, 502, Negative),
        (Stage::StartTls, 220, Positive),
        (Stage::StartTls, 250, Unexpected),
        (Stage::StartTls, 454, Negative),
        (Stage::Mail, 250, Positive),
        (Stage::Mail, 334, Unexpected),
        (Stage::Mail, 354, Unexpected),
        (Stage::Mail, 451, Negative),
        (Stage::Mail, 553, Negative),
        (Stage::Rcpt, 251, Positive),
        (Stage::Rcpt, 354, Unexpected),
        (Stage::Rcpt, 450, Negative),
        (Stage::Rcpt, 550, Negative),
        (Stage::DataInit, 354, Positive),
        (Stage::DataInit, 250, Unexpected),
        (Stage::DataInit, 221, Unexpected),
        (Stage::DataInit, 334, Unexpected),
        (Stage::DataInit, 451, Negative),
        (Stage::DataInit, 554, Negative),
        (Stage::DataDone, 250, Positive),
        (Stage::DataDone, 354, Unexpected),
        (Stage::DataDone, 452, Negative),
        (Stage::DataDone, 554, Negative),
        (Stage::Bdat, 250, Positive),
        (Stage::Bdat, 354, Unexpected),
        (Stage::Bdat, 552, Negative),
        (Stage::BdatLast, 250, Positive),
        (Stage::BdatLast, 334, Unexpected),
        (Stage::BdatLast, 451, Negative),
        (Stage::Rset, 250, Positive),
        (Stage::Rset, 354, Unexpected),
        (Stage::Rset, 500, Negative),
    ];

    #[test]
    fn every_reply_is_judged_against_its_stage() {
        for &(stage, code, want) in TABLE {
            assert_eq!(stage.judge(&r(code)), want, "{stage:?} answered {code}");
        }
    }
}
