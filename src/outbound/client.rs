//! The outbound SMTP client: one conversation with one destination
//! address, from the greeting through EHLO and STARTTLS to a conversation
//! ready for MAIL FROM ([`Client`]).
//!
//! What happens inside a transaction (MAIL, RCPT, the content) is the
//! typed states of [`transaction`](super::transaction); the bytes and the
//! order of replies are the [`Wire`]'s. Every read and write is bounded by
//! the timeout of its [`Stage`]. The client reports destination replies as
//! they are and transport trouble as [`OutboundError`]; choosing hosts and
//! mapping errors to replies for the legacy MTA happen elsewhere
//! (`connect`, `failure`). The stream type is generic so that tests can
//! run the client over in-memory pipes.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout, Instant};

pub use super::error::{OutboundError, Peer};
use super::stage::{Stage, Verdict};
use super::wire::{Quiet, Wire};
use crate::config::Timeouts;
use crate::smtp::command::{Body, ForwardPath, MailParams, RcptParams, Ret, ReversePath};
use crate::smtp::ehlo::{parse_ehlo, Capabilities};
use crate::smtp::reply::Reply;
use crate::tls::stream::{self, Connector, MaybeTls};
use crate::tls::{CertificateDer, TlsState};

/// How to treat STARTTLS on this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Do not attempt TLS (the retry after a failed opportunistic
    /// handshake).
    Off,
    /// STARTTLS when offered.
    Opportunistic,
    /// STARTTLS or fail.
    Required,
}

/// What a client needs to open a conversation.
#[derive(Clone)]
pub struct Hello {
    /// Our EHLO name.
    pub hostname: String,
    /// The TLS engine and verifier for STARTTLS.
    pub tls_config: Connector,
    /// SNI: the host name to present (dane-rules §3.2: the TLSA base
    /// domain once DANE applies).
    pub sni: Option<String>,
    pub tls: TlsMode,
    pub timeouts: Arc<Timeouts>,
}

/// An open conversation between transactions: greeted, EHLO (and TLS as
/// the policy asked) done, nothing written that awaits a reply, nothing
/// unread. It is the only state that can start a transaction
/// ([`Client::start`]) or wait in the connection cache; a transaction
/// gives one back only through its final reply or a RSET answered 250.
pub struct Client<S> {
    pub(crate) wire: Wire<S>,
    pub(crate) caps: Capabilities,
    tls: TlsState,
    established: Instant,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Greeting, EHLO (HELO when EHLO is refused), STARTTLS per `hello.tls`
    /// and EHLO again. Returns a conversation ready for MAIL FROM.
    pub async fn open(stream: S, peer: Peer, hello: &Hello) -> Result<Self, OutboundError> {
        let mut client = Client {
            wire: Wire::new(stream, peer, hello.timeouts.clone()),
            caps: Capabilities::default(),
            tls: TlsState::None,
            established: Instant::now(),
        };
        let greeting = client.wire.read_reply(Stage::Greeting).await?;
        match Stage::Greeting.judge(&greeting) {
            Verdict::Positive => {}
            Verdict::Negative => return Err(client.rejected(Stage::Greeting, greeting)),
            Verdict::Unexpected => return Err(client.unexpected(Stage::Greeting, greeting)),
        }
        client.ehlo(&hello.hostname).await?;
        if client.caps.starttls && hello.tls != TlsMode::Off {
            match client.starttls(hello).await {
                Ok(()) => client.ehlo(&hello.hostname).await?,
                // Opportunistic TLS: a refused STARTTLS means plaintext on
                // this connection, as Postfix does. A failed handshake
                // cannot continue (the stream is gone); the caller retries
                // the address without TLS.
                Err(OutboundError::StartTlsRefused { .. })
                    if hello.tls == TlsMode::Opportunistic => {}
                Err(e @ OutboundError::StartTlsRefused { .. }) => {
                    // Still a clean plaintext conversation: end it politely.
                    client.quit().await;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        } else if hello.tls == TlsMode::Required {
            let peer = client.wire.peer.clone();
            client.quit().await;
            return Err(OutboundError::StartTlsMissing { peer });
        }
        Ok(client)
    }

    pub fn peer(&self) -> &Peer {
        &self.wire.peer
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn tls_state(&self) -> &TlsState {
        &self.tls
    }

    /// When the TCP connection was made.
    pub fn established(&self) -> Instant {
        self.established
    }

    /// The certificate chain the server presented (leaf first), when TLS
    /// is active.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.wire.io.peer_certificates()
    }

    /// Records what the verifier proved about this connection.
    pub fn set_tls_state(&mut self, state: TlsState) {
        self.tls = state;
    }

    /// Whether the conversation is still quiet: the server sent nothing
    /// since its last reply and did not close. Checked before a
    /// conversation is cached and again before it is reused: a stale reply
    /// would be taken for the answer to the next command.
    pub async fn is_clean(&mut self) -> bool {
        self.wire.is_idle() && self.wire.unsolicited().await == Quiet::Yes
    }

    /// Says goodbye, ignoring what the server makes of it.
    pub async fn quit(mut self) {
        let _ = self.wire.command(b"QUIT\r\n", Stage::Quit).await;
        self.wire.shutdown().await;
    }

    async fn ehlo(&mut self, hostname: &str) -> Result<(), OutboundError> {
        let line = format!("EHLO {hostname}\r\n");
        let (verdict, reply) = self.wire.command(line.as_bytes(), Stage::Ehlo).await?;
        if verdict == Verdict::Positive {
            self.caps = parse_ehlo(&reply);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(self.rejected(Stage::Ehlo, reply));
        }
        // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
        let line = format!("HELO {hostname}\r\n");
        let (verdict, reply) = self.wire.command(line.as_bytes(), Stage::Helo).await?;
        if verdict != Verdict::Positive {
            return Err(self.rejected(Stage::Helo, reply));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    async fn starttls(&mut self, hello: &Hello) -> Result<(), OutboundError> {
        let (verdict, reply) = self.wire.command(b"STARTTLS\r\n", Stage::StartTls).await?;
        if verdict != Verdict::Positive {
            return Err(OutboundError::StartTlsRefused {
                peer: self.wire.peer.clone(),
                reply,
            });
        }
        if self.wire.has_unread() {
            // Anything sent before the handshake would be taken as if it
            // came through TLS (the STARTTLS injection attack).
            return Err(
                self.tls_failed("server sent data after its STARTTLS reply, before the handshake")
            );
        }
        let plain = match std::mem::replace(&mut self.wire.io, MaybeTls::Gone) {
            MaybeTls::Plain(s) => s,
            other => {
                self.wire.io = other;
                return Err(self.tls_failed("TLS is already active"));
            }
        };
        let limit = Stage::TlsHandshake.timeout(&self.wire.timeouts);
        let ip = self.wire.peer.addr.ip();
        let upgrade = stream::upgrade(plain, &hello.tls_config, hello.sni.as_deref(), ip);
        let (io, state) = match timeout(limit, upgrade).await {
            Err(_) => return Err(self.wire.timed_out(Stage::TlsHandshake)),
            Ok(Err(cause)) => return Err(self.tls_failed(&cause)),
            Ok(Ok(up)) => up,
        };
        self.tls = state;
        self.wire.io = io;
        Ok(())
    }

    fn tls_failed(&self, cause: &str) -> OutboundError {
        OutboundError::Tls {
            peer: self.wire.peer.clone(),
            cause: cause.to_owned(),
        }
    }

    fn rejected(&self, stage: Stage, reply: Reply) -> OutboundError {
        OutboundError::Rejected {
            peer: self.wire.peer.clone(),
            stage,
            reply,
        }
    }

    fn unexpected(&self, stage: Stage, reply: Reply) -> OutboundError {
        OutboundError::Unexpected {
            peer: self.wire.peer.clone(),
            stage,
            reply,
        }
    }
}

/// The MAIL FROM line, keeping only the parameters the server announced.
/// Whether the transaction may go to this server at all (SMTPUTF8, SIZE)
/// is decided before, by [`refusal`].
pub fn mail_line(from: &ReversePath, params: &MailParams, caps: &Capabilities) -> String {
    let mut line = format!("MAIL FROM:<{from}>");
    if let (Some(size), Some(_)) = (params.size, caps.size) {
        line.push_str(&format!(" SIZE={size}"));
    }
    if caps.eightbitmime {
        match params.body {
            Some(Body::EightBitMime) => line.push_str(" BODY=8BITMIME"),
            Some(Body::SevenBit) => line.push_str(" BODY=7BIT"),
            Some(Body::BinaryMime) if caps.binarymime => line.push_str(" BODY=BINARYMIME"),
            _ => {}
        }
    }
    if params.smtputf8 && caps.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        match params.ret {
            Some(Ret::Full) => line.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => line.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &params.envid {
            line.push_str(&format!(" ENVID={envid}"));
        }
    }
    line.push_str("\r\n");
    line
}

/// The RCPT TO line, with DSN parameters when the server announced DSN.
pub fn rcpt_line(to: &ForwardPath, params: &RcptParams, caps: &Capabilities) -> String {
    let addr = match to {
        ForwardPath::Postmaster => "Postmaster".to_owned(),
        ForwardPath::Mailbox(m) => m.to_string(),
    };
    let mut line = format!("RCPT TO:<{addr}>");
    if caps.dsn {
        if let Some(n) = &params.notify {
            line.push_str(&format!(" NOTIFY={n}"));
        }
        if let Some(o) = &params.orcpt {
            line.push_str(&format!(" ORCPT={o}"));
        }
    }
    line.push_str("\r\n");
    line
}

/// Why a transaction may not go to a server with these capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The message needs SMTPUTF8 and the server lacks it.
    Smtputf8,
    /// The declared size exceeds the server's announced limit.
    Size { limit: u64 },
}

/// Checks a transaction's needs against the server's capabilities.
pub fn refusal(params: &MailParams, caps: &Capabilities) -> Option<Mismatch> {
    if params.smtputf8 && !caps.smtputf8 {
        return Some(Mismatch::Smtputf8);
    }
    match (params.size, caps.size) {
        (Some(size), Some(limit)) if limit > 0 && size > limit => Some(Mismatch::Size { limit }),
        _ => None,
    }
}

/// The SNI name for a host: its name unless it is an address literal.
pub fn sni_for(host: &str) -> Option<String> {
    if host.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(host.to_owned())
    }
}
