//! The inbound connection: the stream, its read buffer and the replies
//! queued for it.
//!
//! Replies are queued and written when the session is about to wait for
//! more input, so a pipelining client gets its replies in batches (RFC
//! 2920) and a non-pipelining one gets each reply before it sends again.
//! A reply that is not known yet (the destination has still to answer a
//! pipelined command) holds a [`Slot`]: replies queued after it wait until
//! it is filled, so they always go out in the order of the commands.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::smtp::line::{find_line, LineError, MAX_COMMAND_LINE};
use crate::smtp::reply::Reply;

/// Bytes read per system call at most; also the read buffer's usual size.
const READ_CHUNK: usize = 16 * 1024;

/// Why no more input is coming.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("client closed the connection")]
    Closed,
    #[error("client idle past the timeout")]
    Timeout,
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// One framed command line, or a line that was too long (and has been
/// discarded up to its end).
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    Line(Vec<u8>),
    TooLong,
}

/// The place of a reply that is not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u64);

pub struct Connection<S> {
    io: S,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// Bytes of `wbuf` already written.
    written: usize,
    /// Discarding the rest of an overlong line.
    discarding: bool,
    /// Replies behind a slot not filled yet (`None`), in command order.
    held: VecDeque<Option<Vec<u8>>>,
    /// The number of the slot at the front of `held`.
    held_base: u64,
}

impl<S> Connection<S> {
    /// Queues a reply; it is written by the next [`flush`](Self::flush),
    /// once every slot before it is filled.
    pub fn queue(&mut self, reply: &Reply) {
        if self.held.is_empty() {
            reply.write_to(&mut self.wbuf);
        } else {
            self.held.push_back(Some(reply.to_wire()));
        }
    }

    /// Keeps the place of a reply to be given later with
    /// [`answer_slot`](Self::answer_slot).
    pub fn reserve(&mut self) -> Slot {
        self.held.push_back(None);
        Slot(self.held_base + self.held.len() as u64 - 1)
    }

    /// Fills a slot; it and the replies behind it go out once nothing
    /// before them is missing.
    pub fn answer_slot(&mut self, slot: Slot, reply: &Reply) {
        let Some(i) = slot.0.checked_sub(self.held_base) else {
            return;
        };
        if let Some(place) = self.held.get_mut(i as usize) {
            *place = Some(reply.to_wire());
        }
        while let Some(Some(_)) = self.held.front() {
            if let Some(Some(bytes)) = self.held.pop_front() {
                self.wbuf.extend_from_slice(&bytes);
            }
            self.held_base += 1;
        }
    }

    /// Whether a reply is still unknown.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Fills every slot still open with `reply`, so that nothing waits
    /// for an answer that is not coming. Returns how many there were.
    pub fn abandon_slots(&mut self, reply: &Reply) -> usize {
        let open: Vec<Slot> = self
            .held
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| Slot(self.held_base + i as u64))
            .collect();
        for slot in &open {
            self.answer_slot(*slot, reply);
        }
        open.len()
    }

    /// Whether a whole command line (or the end of an overlong one) is
    /// already buffered: reading it will not wait for the client.
    pub fn has_line(&self) -> bool {
        if self.discarding {
            return self.rbuf.contains(&b'\n');
        }
        !matches!(
            find_line(&self.rbuf, MAX_COMMAND_LINE),
            Err(LineError::Incomplete)
        )
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf
    }

    /// Drops `n` consumed bytes from the front of the read buffer.
    pub fn consume(&mut self, n: usize) {
        self.rbuf.advance(n);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(io: S) -> Self {
        Connection {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(512),
            written: 0,
            discarding: false,
            held: VecDeque::new(),
            held_base: 0,
        }
    }

    /// Writes queued replies. Cancel-safe: progress is kept in `written`,
    /// so a flush dropped half way (the session's shutdown `select!`)
    /// neither loses nor repeats a byte when the next one resumes.
    pub async fn flush(&mut self, limit: Duration) -> io::Result<()> {
        while self.written < self.wbuf.len() {
            let n = match timeout(limit, self.io.write(&self.wbuf[self.written..])).await {
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        self.wbuf.clear();
        self.written = 0;
        match timeout(limit, self.io.flush()).await {
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
            Ok(r) => r,
        }
    }

    /// The next command line. Queued replies are flushed before waiting
    /// for input. The whole line must arrive within `idle` (Postfix's
    /// per-record deadline): a client trickling one byte at a time cannot
    /// hold its slot longer than that.
    pub async fn next_line(&mut self, idle: Duration) -> Result<Framed, InputError> {
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            if self.discarding {
                match self.rbuf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.rbuf.advance(i + 1);
                        self.discarding = false;
                        return Ok(Framed::TooLong);
                    }
                    None => self.rbuf.clear(),
                }
            } else {
                match find_line(&self.rbuf, MAX_COMMAND_LINE) {
                    Ok(line) => {
                        let text = line.text.to_vec();
                        let used = line.consumed;
                        self.rbuf.advance(used);
                        return Ok(Framed::Line(text));
                    }
                    Err(LineError::Incomplete) => {}
                    Err(LineError::TooLong { .. }) => {
                        self.discarding = true;
                        continue;
                    }
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(InputError::Timeout);
            }
            self.fill(left).await?;
        }
    }

    /// Reads more input, flushing queued replies first.
    pub async fn fill(&mut self, idle: Duration) -> Result<(), InputError> {
        self.flush(idle).await?;
        self.rbuf.reserve(READ_CHUNK);
        match timeout(idle, self.io.read_buf(&mut self.rbuf)).await {
            Err(_) => Err(InputError::Timeout),
            Ok(Ok(0)) => Err(InputError::Closed),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(InputError::Io(e)),
        }
    }

    /// Writes queued replies and closes the write side.
    pub async fn close(mut self, limit: Duration) {
        let _ = self.flush(limit).await;
        let _ = timeout(limit, self.io.shutdown()).await;
    }
}
