//! The bytes of one outbound conversation: the stream (plain or TLS), the
//! read buffer, the commands written and not yet answered, and the stage
//! each of those replies belongs to.
//!
//! Commands are queued and written together (RFC 2920 pipelining when the
//! caller queues several before reading); replies are read strictly in the
//! order of the commands, each judged against its stage
//! ([`Stage::judge`]) and bounded by its stage's timeout. The wire knows
//! nothing of transactions: the typed states in `transaction` decide what
//! may be queued when.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};

use super::error::{OutboundError, Peer};
use super::stage::{Stage, Verdict};
use crate::config::Timeouts;
use crate::smtp::reply::{parse_reply, Reply, ReplyError};
use crate::tls::stream::MaybeTls;

/// Read buffer size; replies are bounded by the reply parser.
const READ_CHUNK: usize = 8 * 1024;

/// What one look at an idle connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quiet {
    /// Nothing unread, still open.
    Yes,
    /// The server sent bytes nobody asked for.
    Spoke,
    /// The server closed the connection (or it failed).
    Closed,
}

pub(crate) struct Wire<S> {
    pub(crate) io: MaybeTls<S>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// Commands written or queued whose replies are still to be read, in
    /// order.
    pending: VecDeque<Stage>,
    pub(crate) peer: Peer,
    pub(crate) timeouts: Arc<Timeouts>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(crate) fn new(stream: S, peer: Peer, timeouts: Arc<Timeouts>) -> Self {
        Wire {
            io: MaybeTls::Plain(stream),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(512),
            pending: VecDeque::new(),
            peer,
            timeouts,
        }
    }

    /// Queues a command whose reply belongs to `stage`; it is written by
    /// the next [`flush`](Self::flush) or [`reply`](Self::reply).
    pub(crate) fn queue(&mut self, line: &[u8], stage: Stage) {
        self.wbuf.extend_from_slice(line);
        self.pending.push_back(stage);
    }

    /// Replies still owed for commands queued or written.
    pub(crate) fn owed(&self) -> usize {
        self.pending.len()
    }

    /// Writes everything queued, within `stage`'s timeout, and flushes the
    /// stream even when nothing was queued: a TLS stream may still hold
    /// records of an earlier write (tokio-rustls returns from a write once
    /// the socket would block, with the rest in rustls's buffer), and a
    /// reply must never be awaited for octets the server has not got.
    pub(crate) async fn flush(&mut self, stage: Stage) -> Result<(), OutboundError> {
        self.write_now(&[], stage).await
    }

    /// Writes what is queued, then `bytes` (a large piece of content: no
    /// copy into the queue), and flushes: the server gets every octet now,
    /// not with the next write.
    pub(crate) async fn write_now(
        &mut self,
        bytes: &[u8],
        stage: Stage,
    ) -> Result<(), OutboundError> {
        let limit = stage.timeout(&self.timeouts);
        let (io, queued) = (&mut self.io, &self.wbuf);
        let result = timeout(limit, async move {
            io.write_all(queued).await?;
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await;
        self.wbuf.clear();
        match result {
            Err(_) => Err(self.timed_out(stage)),
            Ok(Err(e)) => Err(self.lost(stage, e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// The reply to the oldest command still owed one, with its stage and
    /// the verdict on it. Anything queued is written first. A reply the
    /// stage can never get is an error: the conversation is broken.
    pub(crate) async fn reply(&mut self) -> Result<(Stage, Verdict, Reply), OutboundError> {
        let stage = self.owed_stage()?;
        self.flush(stage).await?;
        let reply = self.read_reply(stage).await?;
        self.judged(stage, reply)
    }

    /// The reply to the oldest command still owed one if it has arrived
    /// already (the socket is polled once, never waited for). Lets a long
    /// pipelined stream (BDAT chunks) take its replies as they come, so
    /// that neither side blocks writing while the other does too.
    pub(crate) async fn reply_if_ready(
        &mut self,
    ) -> Result<Option<(Stage, Verdict, Reply)>, OutboundError> {
        let Some(&stage) = self.pending.front() else {
            return Ok(None);
        };
        loop {
            match parse_reply(&self.rbuf) {
                Ok((reply, used)) => {
                    self.rbuf.advance(used);
                    return self.judged(stage, reply).map(Some);
                }
                Err(ReplyError::Incomplete) => {}
                Err(cause) => return Err(self.protocol(stage, cause)),
            }
            self.rbuf.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.rbuf).now_or_never() {
                None => return Ok(None),
                Some(Ok(0)) => return Err(self.lost(stage, "connection closed by server".into())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(self.lost(stage, e.to_string())),
            }
        }
    }

    fn owed_stage(&self) -> Result<Stage, OutboundError> {
        self.pending.front().copied().ok_or_else(|| {
            self.protocol(
                Stage::Quit,
                ReplyError::Malformed {
                    reason: "a reply was awaited where no command was sent",
                },
            )
        })
    }

    /// Takes `reply` as the answer to the oldest owed command.
    fn judged(
        &mut self,
        stage: Stage,
        reply: Reply,
    ) -> Result<(Stage, Verdict, Reply), OutboundError> {
        self.pending.pop_front();
        match stage.judge(&reply) {
            Verdict::Unexpected => Err(OutboundError::Unexpected {
                peer: self.peer.clone(),
                stage,
                reply,
            }),
            v => Ok((stage, v, reply)),
        }
    }

    /// Sends one command and reads its reply (lock-step).
    pub(crate) async fn command(
        &mut self,
        line: &[u8],
        stage: Stage,
    ) -> Result<(Verdict, Reply), OutboundError> {
        self.queue(line, stage);
        let (_, verdict, reply) = self.reply().await?;
        Ok((verdict, reply))
    }

    /// Reads one reply for `stage` from the stream, whatever its code.
    pub(crate) async fn read_reply(&mut self, stage: Stage) -> Result<Reply, OutboundError> {
        let deadline = Instant::now() + stage.timeout(&self.timeouts);
        loop {
            match parse_reply(&self.rbuf) {
                Ok((reply, used)) => {
                    self.rbuf.advance(used);
                    return Ok(reply);
                }
                Err(ReplyError::Incomplete) => {}
                Err(cause) => return Err(self.protocol(stage, cause)),
            }
            self.rbuf.reserve(READ_CHUNK);
            match timeout_at(deadline, self.io.read_buf(&mut self.rbuf)).await {
                Err(_) => return Err(self.timed_out(stage)),
                Ok(Ok(0)) => return Err(self.lost(stage, "connection closed by server".into())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.lost(stage, e.to_string())),
            }
        }
    }

    /// Whether the server has said something nobody asked for: bytes in
    /// the read buffer, or readable right now (one poll, no waiting).
    pub(crate) async fn unsolicited(&mut self) -> Quiet {
        if !self.rbuf.is_empty() {
            return Quiet::Spoke;
        }
        self.rbuf.reserve(READ_CHUNK);
        match self.io.read_buf(&mut self.rbuf).now_or_never() {
            // Nothing to read yet: the quiet state we want.
            None => Quiet::Yes,
            Some(Ok(n)) if n > 0 => Quiet::Spoke,
            Some(_) => Quiet::Closed,
        }
    }

    /// True when nothing is queued, owed or unread.
    pub(crate) fn is_idle(&self) -> bool {
        self.wbuf.is_empty() && self.pending.is_empty() && self.rbuf.is_empty()
    }

    /// Bytes the server sent that no reply has consumed yet.
    pub(crate) fn has_unread(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// Closes the write side within the QUIT timeout.
    pub(crate) async fn shutdown(&mut self) {
        let limit = Stage::Quit.timeout(&self.timeouts);
        let _ = timeout(limit, self.io.shutdown()).await;
    }

    pub(crate) fn lost(&self, stage: Stage, cause: String) -> OutboundError {
        OutboundError::Lost {
            peer: self.peer.clone(),
            stage,
            cause,
        }
    }

    pub(crate) fn timed_out(&self, stage: Stage) -> OutboundError {
        OutboundError::Timeout {
            peer: self.peer.clone(),
            stage,
        }
    }

    pub(crate) fn protocol(&self, stage: Stage, cause: ReplyError) -> OutboundError {
        OutboundError::Protocol {
            peer: self.peer.clone(),
            stage,
            cause,
        }
    }
}
