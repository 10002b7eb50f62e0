//! Message content from the legacy MTA to the destination: the DATA
//! stream and BDAT chunks, read in bounded pieces and written on as they
//! arrive, never held whole.
//!
//! The end of data reaches the destination only after the legacy MTA's
//! own end (CRLF.CRLF, or the last octet of BDAT LAST) and only when every
//! byte before it was relayed (cut-through.md, invariant 2): anything that
//! goes wrong first (a bare CR or LF, a size past the limit, a lost
//! destination, a client that vanishes) drops the destination's content
//! state without it. What to answer is decided by the caller.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::connection::{Connection, InputError};
use crate::outbound::client::{Client, OutboundError};
use crate::outbound::stage::Verdict;
use crate::outbound::transaction::{Chunks, Content, Finished};
use crate::smtp::data::{DataDecoder, DataViolation, DotStuffer};
use crate::smtp::reply::Reply;

/// Content is sent as a BDAT chunk once this much has gathered.
const CHUNK: usize = 64 * 1024;
/// Most chunk replies left unread before one is waited for: bounds what
/// the destination must buffer while we write.
const MAX_OWED: usize = 16;

/// How relaying a DATA stream ended.
pub(super) enum DataEnd {
    /// The client's end of data was relayed; the destination answered.
    Finished(Box<Finished<TcpStream>>),
    /// The client's stream broke the rules (bare CR/LF): refused, the
    /// destination got no end of data.
    Violation(DataViolation),
    /// The content passed the size limit: refused likewise.
    TooBig,
    /// The destination failed while content was flowing (or at its end).
    Failed(OutboundError),
    /// The destination refused a BDAT chunk of content relayed as BDAT;
    /// the conversation, when RSET gave it back.
    Refused(Reply, Option<Box<Client<TcpStream>>>),
    /// The client stopped sending before its end of data.
    ClientGone(InputError),
}

/// Relays the content after a 354 (the destination's, or our own when
/// the destination gets DATA) up to the client's CRLF.CRLF, then the
/// final dot.
pub(super) async fn relay_data<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    mut dest: Content<TcpStream>,
    max: u64,
    idle: Duration,
) -> DataEnd {
    let mut decoder = DataDecoder::new();
    let mut out = BytesMut::with_capacity(32 * 1024);
    let mut failure: Option<OutboundError> = None;
    loop {
        let progress = decoder.feed(conn.buffered(), &mut out);
        conn.consume(progress.consumed);
        let refused = decoder.violation().is_some() || decoder.content_len() > max;
        if refused || failure.is_some() {
            out.clear();
        }
        if progress.done {
            // The last piece goes in one write with the final dot.
            break;
        }
        if !out.is_empty() {
            if let Err(e) = dest.send(&out).await {
                failure = Some(e);
            }
            out.clear();
        }
        if let Err(e) = conn.fill(idle).await {
            return DataEnd::ClientGone(e);
        }
    }
    // Read to the client's end in every case, so the session stays in
    // step with it; only now is it decided what the destination gets.
    if let Some(v) = decoder.violation() {
        DataEnd::Violation(v)
    } else if decoder.content_len() > max {
        DataEnd::TooBig
    } else if let Some(e) = failure {
        DataEnd::Failed(e)
    } else {
        out.extend_from_slice(b".\r\n");
        match dest.finish(&out).await {
            Ok(f) => DataEnd::Finished(Box::new(f)),
            Err(e) => DataEnd::Failed(e),
        }
    }
}

/// Relays the content of a DATA stream (after our own 354) as BDAT
/// chunks, stuffing dots removed, pipelined; BDAT LAST goes only after the
/// client's CRLF.CRLF. The destination's replies to the chunks are taken
/// as they come; after a refused one nothing more is sent.
pub(super) async fn relay_data_as_bdat<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    mut dest: Chunks<TcpStream>,
    max: u64,
    idle: Duration,
) -> DataEnd {
    let mut decoder = DataDecoder::unstuffing();
    let mut out = BytesMut::with_capacity(CHUNK + 16 * 1024);
    let mut failure: Option<OutboundError> = None;
    let mut refused: Option<Reply> = None;
    loop {
        let progress = decoder.feed(conn.buffered(), &mut out);
        conn.consume(progress.consumed);
        let stop = decoder.violation().is_some() || decoder.content_len() > max;
        let healthy = failure.is_none() && refused.is_none() && !stop;
        if healthy && out.len() >= CHUNK {
            match send_chunk(&mut dest, &out).await {
                Ok(r) => refused = r,
                Err(e) => failure = Some(e),
            }
            out.clear();
        } else if !healthy {
            out.clear();
        }
        if progress.done {
            break;
        }
        if let Err(e) = conn.fill(idle).await {
            return DataEnd::ClientGone(e);
        }
    }
    if let Some(v) = decoder.violation() {
        return DataEnd::Violation(v);
    }
    if decoder.content_len() > max {
        return DataEnd::TooBig;
    }
    if let Some(e) = failure {
        return DataEnd::Failed(e);
    }
    if let Some(reply) = refused {
        return DataEnd::Refused(reply, dest.rset().await.ok().map(Box::new));
    }
    dest.begin(out.len() as u64, true);
    if let Err(e) = dest.send(&out).await {
        return DataEnd::Failed(e);
    }
    match dest.finish_all().await {
        Ok(f) => DataEnd::Finished(Box::new(f)),
        Err(e) => DataEnd::Failed(e),
    }
}

/// Writes one chunk that is not the last, then takes the replies that have
/// arrived (waiting for one only when too many are unread). The first
/// refusal among them, if any.
async fn send_chunk(
    dest: &mut Chunks<TcpStream>,
    bytes: &[u8],
) -> Result<Option<Reply>, OutboundError> {
    dest.begin(bytes.len() as u64, false);
    dest.send(bytes).await?;
    loop {
        let answered = if dest.owed() > MAX_OWED {
            Some(dest.next_reply().await?)
        } else {
            dest.reply_if_ready().await?
        };
        match answered {
            None => return Ok(None),
            Some(a) if a.verdict == Verdict::Positive => {}
            Some(a) => return Ok(Some(a.reply)),
        }
    }
}

/// Where the octets of one BDAT chunk go.
pub(super) enum ChunkSink<'a> {
    /// Nowhere: the chunk is refused (its octets still have to be read).
    Discard,
    /// To a destination that takes BDAT: the chunk as it is.
    Bdat(&'a mut Chunks<TcpStream>),
    /// To a destination that takes only DATA: dot-stuffed on the way.
    Data(&'a mut Content<TcpStream>, &'a mut DotStuffer),
}

/// Reads the `size` octets of a chunk from the client and writes them to
/// `sink`. A destination failure stops the writing (it is returned as
/// `Ok(Some(e))`) but not the reading; a client that stops sending is the
/// `Err`.
pub(super) async fn relay_chunk<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    size: u64,
    mut sink: ChunkSink<'_>,
    idle: Duration,
) -> Result<Option<OutboundError>, InputError> {
    let mut remaining = size;
    let mut failure = None;
    let mut out = BytesMut::new();
    while remaining > 0 {
        if conn.buffered().is_empty() {
            conn.fill(idle).await?;
        }
        let n = (conn.buffered().len() as u64).min(remaining) as usize;
        if failure.is_none() {
            let piece = &conn.buffered()[..n];
            let sent = match &mut sink {
                ChunkSink::Discard => Ok(()),
                ChunkSink::Bdat(chunks) => chunks.send(piece).await,
                ChunkSink::Data(content, stuffer) => {
                    out.clear();
                    stuffer.encode(piece, &mut out);
                    content.send(&out).await
                }
            };
            failure = sent.err();
        }
        conn.consume(n);
        remaining -= n as u64;
    }
    Ok(failure)
}
