//! The states of an outbound SMTP conversation: each one's timeout and
//! human description live here, in one place, so that log lines and
//! deferral texts say the same thing ("while sending RCPT TO").

use std::fmt;
use std::time::Duration;

use crate::config::Timeouts;

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
    Bdat,
    Rset,
    Quit,
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
            Stage::Rset => "sending RSET",
            Stage::Quit => "sending QUIT",
        }
    }

    /// How long this stage may take (RFC 5321 §4.5.3.2 and Postfix's
    /// `smtp_*_timeout` defaults, overridable in `[timeouts]`).
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
            Stage::DataDone | Stage::Bdat => t.data_done,
            Stage::Rset => t.rset,
            Stage::Quit => t.quit,
        })
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
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}
