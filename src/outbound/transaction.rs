//! The destination's side of one mail transaction, as typed states:
//!
//! ```text
//! Client (ready) --start--> Envelope (MAIL FROM, RCPT TO, DATA queued)
//!   Envelope --DATA answered 354--> Content --final reply--> Client
//!   Envelope --chunks--> Chunks (BDAT) --reply to LAST--> Client
//!   Envelope | Chunks --RSET answered 250--> Client
//!   anything else (a lost connection, an unexpected reply, a caller that
//!   gives up) --> dropped, never reused
//! ```
//!
//! Each transition consumes the state it leaves, so a conversation can
//! reach the connection cache only as a [`Client`], and a `Client` comes
//! back out of a transaction only through the destination's final reply
//! to the message or its 250 to RSET, with nothing left unread
//! (cut-through.md, invariant 1). Dropping a state mid-transaction drops
//! the connection: no end of data is ever sent that the caller did not
//! ask for (invariant 2). Every reply is judged against its stage
//! ([`Stage::judge`]); one that does not fit is an error (invariant 4).
//!
//! Commands are queued on the wire and their replies read in order, so a
//! caller may pipeline (RFC 2920) by queueing several before reading.

use tokio::io::{AsyncRead, AsyncWrite};

use super::client::{mail_line, rcpt_line, Client, OutboundError, Peer};
use super::stage::{Stage, Verdict};
use super::wire::Quiet;
use crate::smtp::command::{ForwardPath, MailParams, RcptParams, ReversePath};
use crate::smtp::ehlo::Capabilities;
use crate::smtp::reply::{Reply, ReplyError};
use crate::tls::TlsState;

/// The destination's final word on a message, and the conversation when
/// it may carry another transaction.
pub struct Finished<S> {
    /// The stage the reply answers (a refused chunk's, when one was).
    pub stage: Stage,
    pub verdict: Verdict,
    pub reply: Reply,
    /// `None` when the server said more than its reply, or closed: such a
    /// conversation is closed, never reused.
    pub client: Option<Client<S>>,
}

/// One reply read from a transaction in progress.
pub struct Answered {
    pub stage: Stage,
    pub verdict: Verdict,
    pub reply: Reply,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Starts a transaction: MAIL FROM is queued (written with the next
    /// command that needs an answer).
    pub fn start(mut self, from: &ReversePath, params: &MailParams) -> Envelope<S> {
        let line = mail_line(from, params, &self.caps);
        self.wire.queue(line.as_bytes(), Stage::Mail);
        Envelope {
            client: self,
            data_queued: false,
        }
    }

    /// After the final reply: the conversation goes back to `Client` only
    /// if it is quiet.
    async fn settled(mut self) -> Option<Client<S>> {
        if self.is_clean().await {
            Some(self)
        } else {
            None
        }
    }
}

/// MAIL FROM sent (or queued), recipients being added; DATA may be queued
/// last.
pub struct Envelope<S> {
    client: Client<S>,
    data_queued: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Envelope<S> {
    pub fn peer(&self) -> &Peer {
        self.client.peer()
    }

    pub fn capabilities(&self) -> &Capabilities {
        self.client.capabilities()
    }

    pub fn tls_state(&self) -> &TlsState {
        self.client.tls_state()
    }

    /// The server takes pipelined commands (RFC 2920).
    pub fn pipelining(&self) -> bool {
        self.client.caps.pipelining
    }

    /// The server takes BDAT (RFC 3030).
    pub fn chunking(&self) -> bool {
        self.client.caps.chunking
    }

    /// Queues RCPT TO.
    pub fn rcpt(&mut self, to: &ForwardPath, params: &RcptParams) {
        let line = rcpt_line(to, params, &self.client.caps);
        self.client.wire.queue(line.as_bytes(), Stage::Rcpt);
    }

    /// Whether DATA is queued (its reply still to be read).
    pub fn data_queued(&self) -> bool {
        self.data_queued
    }

    /// Queues DATA, the last command of the envelope.
    pub fn data(&mut self) {
        self.client.wire.queue(b"DATA\r\n", Stage::DataInit);
        self.data_queued = true;
    }

    /// Replies still owed for commands queued or written.
    pub fn owed(&self) -> usize {
        self.client.wire.owed()
    }

    /// Writes what is queued without waiting for replies.
    pub async fn flush(&mut self) -> Result<(), OutboundError> {
        self.client.wire.flush(Stage::Rcpt).await
    }

    /// The reply to the oldest command still owed one (MAIL, RCPT or
    /// DATA). The reply to DATA is read with [`data_reply`](Self::data_reply).
    pub async fn next_reply(&mut self) -> Result<Answered, OutboundError> {
        let (stage, verdict, reply) = self.client.wire.reply().await?;
        Ok(Answered {
            stage,
            verdict,
            reply,
        })
    }

    /// Reads the reply to DATA, once every earlier reply has been read:
    /// 354 leads to [`Content`], a refusal leaves the envelope (which then
    /// needs RSET before the conversation can be reused).
    pub async fn data_reply(mut self) -> Result<DataAnswer<S>, OutboundError> {
        if !self.data_queued || self.owed() != 1 {
            let peer = self.client.wire.peer.clone();
            return Err(OutboundError::Protocol {
                peer,
                stage: Stage::DataInit,
                cause: ReplyError::Malformed {
                    reason: "the reply to DATA was awaited out of order",
                },
            });
        }
        let a = self.next_reply().await?;
        self.data_queued = false;
        Ok(match a.verdict {
            Verdict::Positive => DataAnswer::GoAhead(Content {
                client: self.client,
            }),
            _ => DataAnswer::Refused(self, a.reply),
        })
    }

    /// Sends the content as BDAT chunks instead of DATA (RFC 3030; the
    /// server announced CHUNKING).
    pub fn chunks(self) -> Chunks<S> {
        Chunks {
            client: self.client,
        }
    }

    /// Ends the destination's transaction with RSET (every reply still
    /// owed is read and dropped first). 250 gives the conversation back.
    pub async fn rset(self) -> Result<Client<S>, OutboundError> {
        rset(self.client).await
    }

    /// Gives up on the transaction: QUIT, then close. Allowed here, outside
    /// the message content.
    pub async fn quit(self) {
        self.client.quit().await;
    }
}

/// The reply to DATA.
pub enum DataAnswer<S> {
    /// 354: the content may follow.
    GoAhead(Content<S>),
    /// 4xx/5xx: no content; the envelope still needs RSET.
    Refused(Envelope<S>, Reply),
}

/// After 354: the content is flowing. Dropping it drops the connection
/// without an end of data.
pub struct Content<S> {
    client: Client<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Content<S> {
    pub fn peer(&self) -> &Peer {
        self.client.peer()
    }

    /// Writes message content, already in DATA wire form (dot-stuffed).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), OutboundError> {
        self.client.wire.write_now(bytes, Stage::DataBlock).await
    }

    /// Writes what ends the content (`tail`: at least ".\r\n") and reads
    /// the final reply. A server that has already said something (a reply
    /// before the end of data) is refused rather than believed: its early
    /// reply must never stand for the reply to the final dot.
    pub async fn finish(mut self, tail: &[u8]) -> Result<Finished<S>, OutboundError> {
        // A closed connection is left to the write and read that follow,
        // which report it as lost.
        if self.client.wire.unsolicited().await == Quiet::Spoke {
            let peer = self.client.wire.peer.clone();
            return Err(OutboundError::Protocol {
                peer,
                stage: Stage::DataBlock,
                cause: ReplyError::Malformed {
                    reason: "the server replied before the end of data",
                },
            });
        }
        // The tail is content as far as writing goes ("while sending
        // message content"); its reply is the final one.
        self.client.wire.write_now(tail, Stage::DataBlock).await?;
        self.client.wire.queue(b"", Stage::DataDone);
        let (stage, verdict, reply) = self.client.wire.reply().await?;
        Ok(Finished {
            stage,
            verdict,
            reply,
            client: self.client.settled().await,
        })
    }
}

/// BDAT chunks on their way (RFC 3030). Each chunk is answered; the reply
/// to the LAST one ends the message.
pub struct Chunks<S> {
    client: Client<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Chunks<S> {
    pub fn peer(&self) -> &Peer {
        self.client.peer()
    }

    /// Queues the BDAT command of a chunk of `size` octets; its octets
    /// follow with [`send`](Self::send).
    pub fn begin(&mut self, size: u64, last: bool) {
        let (line, stage) = if last {
            (format!("BDAT {size} LAST\r\n"), Stage::BdatLast)
        } else {
            (format!("BDAT {size}\r\n"), Stage::Bdat)
        };
        self.client.wire.queue(line.as_bytes(), stage);
    }

    /// Writes octets of the current chunk.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), OutboundError> {
        self.client.wire.write_now(bytes, Stage::DataBlock).await
    }

    /// Replies still owed.
    pub fn owed(&self) -> usize {
        self.client.wire.owed()
    }

    /// Whether the server takes the chunks pipelined (RFC 2920 with RFC
    /// 3030): without PIPELINING each chunk waits for its reply.
    pub fn pipelining(&self) -> bool {
        self.client.caps.pipelining
    }

    /// The reply to the oldest chunk if it has arrived (no waiting).
    pub async fn reply_if_ready(&mut self) -> Result<Option<Answered>, OutboundError> {
        Ok(self
            .client
            .wire
            .reply_if_ready()
            .await?
            .map(|(stage, verdict, reply)| Answered {
                stage,
                verdict,
                reply,
            }))
    }

    /// The reply to the oldest chunk (or envelope command) still owed one.
    pub async fn next_reply(&mut self) -> Result<Answered, OutboundError> {
        let (stage, verdict, reply) = self.client.wire.reply().await?;
        Ok(Answered {
            stage,
            verdict,
            reply,
        })
    }

    /// Reads the reply to BDAT LAST, the only reply still owed.
    pub async fn finish(mut self) -> Result<Finished<S>, OutboundError> {
        if self.owed() != 1 {
            let peer = self.client.wire.peer.clone();
            return Err(OutboundError::Protocol {
                peer,
                stage: Stage::BdatLast,
                cause: ReplyError::Malformed {
                    reason: "the reply to BDAT LAST was awaited out of order",
                },
            });
        }
        let a = self.next_reply().await?;
        Ok(Finished {
            stage: a.stage,
            verdict: a.verdict,
            reply: a.reply,
            client: self.client.settled().await,
        })
    }

    /// After BDAT LAST: reads every reply still owed. The first refused
    /// chunk, if any, is the destination's word on the message; otherwise
    /// the reply to LAST is.
    pub async fn finish_all(mut self) -> Result<Finished<S>, OutboundError> {
        let mut refused: Option<Answered> = None;
        while self.owed() > 1 {
            let a = self.next_reply().await?;
            if a.verdict != Verdict::Positive && refused.is_none() {
                refused = Some(a);
            }
        }
        let last = self.next_reply().await?;
        let a = refused.unwrap_or(last);
        Ok(Finished {
            stage: a.stage,
            verdict: a.verdict,
            reply: a.reply,
            client: self.client.settled().await,
        })
    }

    /// Aborts the message with RSET (RFC 3030 allows it between chunks).
    pub async fn rset(self) -> Result<Client<S>, OutboundError> {
        rset(self.client).await
    }
}

/// Reads every reply still owed, then RSET; 250 with nothing unread gives
/// the conversation back.
async fn rset<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut client: Client<S>,
) -> Result<Client<S>, OutboundError> {
    while client.wire.owed() > 0 {
        let (stage, verdict, _) = client.wire.reply().await?;
        if stage == Stage::DataInit && verdict == Verdict::Positive {
            // A 354 to a pipelined DATA nobody wants any more: RSET now
            // would be message content, and only an end of data can leave
            // a DATA stream. The connection is dropped instead.
            return Err(OutboundError::Protocol {
                peer: client.wire.peer.clone(),
                stage: Stage::DataInit,
                cause: ReplyError::Malformed {
                    reason: "the server accepted DATA that could not be sent",
                },
            });
        }
    }
    let (verdict, reply) = client.wire.command(b"RSET\r\n", Stage::Rset).await?;
    if verdict != Verdict::Positive {
        return Err(OutboundError::Rejected {
            peer: client.wire.peer.clone(),
            stage: Stage::Rset,
            reply,
        });
    }
    let peer = client.wire.peer.clone();
    client.settled().await.ok_or(OutboundError::Protocol {
        peer,
        stage: Stage::Rset,
        cause: ReplyError::Malformed {
            reason: "the server sent more than its reply to RSET",
        },
    })
}
