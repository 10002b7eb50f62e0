//! The outbound SMTP client: one conversation with one destination
//! address, from the greeting through EHLO and STARTTLS to MAIL, RCPT and
//! the message content.
//!
//! The client owns the stream and its read buffer; every read and write is
//! bounded by the timeout of its [`Stage`]. It reports destination replies
//! as they are and transport trouble as [`OutboundError`]; choosing hosts
//! and mapping errors to replies for the legacy MTA happen elsewhere
//! (`relay`, `reply_map`). The stream type is generic so that tests can run
//! the client over in-memory pipes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::config::Timeouts;
use crate::outbound::stage::Stage;
use crate::policy::RefuseReason;
use crate::smtp::command::{Body, ForwardPath, MailParams, RcptParams, Ret, ReversePath};
use crate::smtp::ehlo::{parse_ehlo, Capabilities};
use crate::smtp::reply::{parse_reply, Reply, ReplyError};
use crate::tls::stream::{self, MaybeTls};
use crate::tls::{CertificateDer, ClientConfig, TlsState};

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
            | OutboundError::Rejected { peer, .. }
            | OutboundError::StartTlsMissing { peer }
            | OutboundError::StartTlsRefused { peer, .. }
            | OutboundError::Tls { peer, .. }
            | OutboundError::Dane { peer, .. }
            | OutboundError::Refused { peer, .. } => peer,
        }
    }
}

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
    pub tls_config: Arc<ClientConfig>,
    /// SNI: the host name to present (dane-rules §3.2: the TLSA base
    /// domain once DANE applies).
    pub sni: Option<String>,
    pub tls: TlsMode,
    pub timeouts: Arc<Timeouts>,
}

/// An open conversation, ready for MAIL FROM.
pub struct Client<S> {
    io: MaybeTls<S>,
    rbuf: BytesMut,
    peer: Peer,
    caps: Capabilities,
    tls: TlsState,
    timeouts: Arc<Timeouts>,
}

/// Read buffer size; replies are bounded by the reply parser.
const READ_CHUNK: usize = 8 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Greeting, EHLO (HELO when EHLO is refused), STARTTLS per `hello.tls`
    /// and EHLO again. Returns a conversation ready for MAIL FROM.
    pub async fn open(stream: S, peer: Peer, hello: &Hello) -> Result<Self, OutboundError> {
        let mut client = Client {
            io: MaybeTls::Plain(stream),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            peer,
            caps: Capabilities::default(),
            tls: TlsState::None,
            timeouts: hello.timeouts.clone(),
        };
        let greeting = client.read_reply(Stage::Greeting).await?;
        if greeting.code != 220 {
            return Err(client.rejected(Stage::Greeting, greeting));
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
            let peer = client.peer.clone();
            client.quit().await;
            return Err(OutboundError::StartTlsMissing { peer });
        }
        Ok(client)
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn tls_state(&self) -> &TlsState {
        &self.tls
    }

    /// The certificate chain the server presented (leaf first), when TLS
    /// is active.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.io.peer_certificates()
    }

    /// Records what the verifier proved about this connection.
    pub fn set_tls_state(&mut self, state: TlsState) {
        self.tls = state;
    }

    async fn ehlo(&mut self, hostname: &str) -> Result<(), OutboundError> {
        let reply = self
            .command(format!("EHLO {hostname}\r\n").as_bytes(), Stage::Ehlo)
            .await?;
        if reply.is_positive() {
            self.caps = parse_ehlo(&reply);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(self.rejected(Stage::Ehlo, reply));
        }
        // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
        let reply = self
            .command(format!("HELO {hostname}\r\n").as_bytes(), Stage::Helo)
            .await?;
        if !reply.is_positive() {
            return Err(self.rejected(Stage::Helo, reply));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    async fn starttls(&mut self, hello: &Hello) -> Result<(), OutboundError> {
        let reply = self.command(b"STARTTLS\r\n", Stage::StartTls).await?;
        if reply.code != 220 {
            return Err(OutboundError::StartTlsRefused {
                peer: self.peer.clone(),
                reply,
            });
        }
        if !self.rbuf.is_empty() {
            // Anything sent before the handshake would be taken as if it
            // came through TLS (the STARTTLS injection attack).
            return Err(OutboundError::Tls {
                peer: self.peer.clone(),
                cause: "server sent data after its STARTTLS reply, before the handshake".into(),
            });
        }
        let plain = match std::mem::replace(&mut self.io, MaybeTls::Gone) {
            MaybeTls::Plain(s) => s,
            other => {
                self.io = other;
                return Err(OutboundError::Tls {
                    peer: self.peer.clone(),
                    cause: "TLS is already active".into(),
                });
            }
        };
        let limit = Stage::TlsHandshake.timeout(&self.timeouts);
        let upgrade = stream::upgrade(
            plain,
            &hello.tls_config,
            hello.sni.as_deref(),
            self.peer.addr.ip(),
        );
        let (io, state) = match timeout(limit, upgrade).await {
            Err(_) => {
                return Err(OutboundError::Timeout {
                    peer: self.peer.clone(),
                    stage: Stage::TlsHandshake,
                })
            }
            Ok(Err(cause)) => {
                return Err(OutboundError::Tls {
                    peer: self.peer.clone(),
                    cause,
                })
            }
            Ok(Ok(up)) => up,
        };
        self.tls = state;
        self.io = io;
        Ok(())
    }

    /// Sends MAIL FROM with the parameters the server supports. The reply
    /// is returned whatever its code.
    pub async fn mail(
        &mut self,
        from: &ReversePath,
        params: &MailParams,
    ) -> Result<Reply, OutboundError> {
        let line = mail_line(from, params, &self.caps);
        self.command(line.as_bytes(), Stage::Mail).await
    }

    /// Sends RCPT TO (with DSN parameters when the server supports DSN).
    pub async fn rcpt(
        &mut self,
        to: &ForwardPath,
        params: &RcptParams,
    ) -> Result<Reply, OutboundError> {
        let line = rcpt_line(to, params, &self.caps);
        self.command(line.as_bytes(), Stage::Rcpt).await
    }

    /// Sends DATA; a 354 reply means the content may follow.
    pub async fn data(&mut self) -> Result<Reply, OutboundError> {
        self.command(b"DATA\r\n", Stage::DataInit).await
    }

    /// Writes message content (already in wire form).
    pub async fn send_content(&mut self, bytes: &[u8]) -> Result<(), OutboundError> {
        self.send(bytes, Stage::DataBlock).await
    }

    /// Writes the end of data and waits for the final reply. A server
    /// that has already said something (a reply before the end of data, a
    /// protocol violation) is refused rather than believed: its early
    /// reply must never stand for the reply to the final dot.
    pub async fn end_data(&mut self, tail: &[u8]) -> Result<Reply, OutboundError> {
        if self.unsolicited().await {
            return Err(OutboundError::Protocol {
                peer: self.peer.clone(),
                stage: Stage::DataBlock,
                cause: ReplyError::Malformed {
                    reason: "the server replied before the end of data",
                },
            });
        }
        self.send(tail, Stage::DataBlock).await?;
        self.read_reply(Stage::DataDone).await
    }

    /// Whether the server sent bytes nobody asked for yet: anything in the
    /// read buffer, or readable right now (one poll, no waiting).
    async fn unsolicited(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return true;
        }
        self.rbuf.reserve(READ_CHUNK);
        // A zero timeout polls the read once: Ready means the server
        // spoke; a closed connection is left to the write that follows.
        matches!(
            timeout(std::time::Duration::ZERO, self.io.read_buf(&mut self.rbuf)).await,
            Ok(Ok(n)) if n > 0
        )
    }

    /// Writes a BDAT command line; the chunk follows with
    /// [`send_content`](Self::send_content), then [`bdat_reply`](Self::bdat_reply).
    pub async fn bdat_start(&mut self, size: u64, last: bool) -> Result<(), OutboundError> {
        let line = if last {
            format!("BDAT {size} LAST\r\n")
        } else {
            format!("BDAT {size}\r\n")
        };
        self.send(line.as_bytes(), Stage::Bdat).await
    }

    pub async fn bdat_reply(&mut self) -> Result<Reply, OutboundError> {
        self.read_reply(Stage::Bdat).await
    }

    pub async fn rset(&mut self) -> Result<Reply, OutboundError> {
        self.command(b"RSET\r\n", Stage::Rset).await
    }

    /// Says goodbye, ignoring what the server makes of it.
    pub async fn quit(mut self) {
        let _ = self.command(b"QUIT\r\n", Stage::Quit).await;
        let limit = Stage::Quit.timeout(&self.timeouts);
        let _ = timeout(limit, self.io.shutdown()).await;
    }

    async fn command(&mut self, line: &[u8], stage: Stage) -> Result<Reply, OutboundError> {
        self.send(line, stage).await?;
        self.read_reply(stage).await
    }

    async fn send(&mut self, bytes: &[u8], stage: Stage) -> Result<(), OutboundError> {
        let limit = stage.timeout(&self.timeouts);
        let io = &mut self.io;
        let result = timeout(limit, async move {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await;
        match result {
            Err(_) => Err(OutboundError::Timeout {
                peer: self.peer.clone(),
                stage,
            }),
            Ok(Err(e)) => Err(self.lost(stage, e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, OutboundError> {
        let deadline = tokio::time::Instant::now() + stage.timeout(&self.timeouts);
        loop {
            match parse_reply(&self.rbuf) {
                Ok((reply, used)) => {
                    self.rbuf.advance(used);
                    return Ok(reply);
                }
                Err(ReplyError::Incomplete) => {}
                Err(cause) => {
                    return Err(OutboundError::Protocol {
                        peer: self.peer.clone(),
                        stage,
                        cause,
                    })
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            let read = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.rbuf)).await;
            match read {
                Err(_) => {
                    return Err(OutboundError::Timeout {
                        peer: self.peer.clone(),
                        stage,
                    })
                }
                Ok(Ok(0)) => return Err(self.lost(stage, "connection closed by server".into())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.lost(stage, e.to_string())),
            }
        }
    }

    fn lost(&self, stage: Stage, cause: String) -> OutboundError {
        OutboundError::Lost {
            peer: self.peer.clone(),
            stage,
            cause,
        }
    }

    fn rejected(&self, stage: Stage, reply: Reply) -> OutboundError {
        OutboundError::Rejected {
            peer: self.peer.clone(),
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
