//! The message content of a transaction: DATA relayed as DATA (in the
//! pipelined group where the destination allows it) or as BDAT chunks
//! (with our own 354, when the destination offers CHUNKING: no round trip
//! for DATA), and BDAT chunks relayed as BDAT, converted into a DATA
//! stream, or read and refused.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Next, Owed, State, Transaction};
use crate::inbound::answer::Answer;
use crate::inbound::connection::InputError;
use crate::inbound::content::{relay_chunk, relay_data, relay_data_as_bdat, ChunkSink, DataEnd};
use crate::inbound::env::Env;
use crate::inbound::summary::Outcome;
use crate::outbound::client::Client;
use crate::outbound::failure::Failure;
use crate::outbound::stage::{Stage, Verdict};
use crate::outbound::transaction::{Chunks, Content, DataAnswer, Envelope};
use crate::smtp::data::DotStuffer;

/// DATA (the content has not started).
pub(super) async fn data<S>(mut txn: Transaction, env: &mut Env<'_, S>) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A client that pipelined its DATA behind recipients still owed gets
    // it written in the same group, unless the content goes as BDAT.
    if let State::Enveloped(e) = &mut txn.state {
        if e.pipelining()
            && !e.chunking()
            && txn.owed.iter().any(|o| matches!(o, Owed::Rcpt { .. }))
        {
            e.data();
        }
    }
    txn.settle(env).await;
    if txn.accepted.is_empty() {
        env.answer(Answer::NoValidRecipients);
        txn.reset(env).await;
        return Next::Ended;
    }
    let e = match std::mem::replace(&mut txn.state, State::AwaitingRcpt) {
        State::Enveloped(e) => e,
        State::Failed(f) => return txn.end(env, Outcome::failed(&f), None),
        // Accepted recipients imply an envelope at the destination (or a
        // failure); nothing else can answer this DATA.
        _ => {
            return txn.end(
                env,
                Outcome::answer(Answer::NoValidRecipients, "other"),
                None,
            )
        }
    };
    if e.chunking() && e.pipelining() {
        // RFC 3030: the content goes as BDAT, so the 354 is ours.
        env.answer(Answer::StartData);
        let chunks = e.chunks();
        let peer = chunks.peer().clone();
        let (max, idle) = (env.ctx.config.server.max_message_size, env.idle_limit());
        let end = relay_data_as_bdat(env.conn, chunks, max, idle).await;
        return data_end(txn, env, end, peer);
    }
    data_stream(txn, env, e).await
}

/// DATA to the destination: its 354, then the content.
async fn data_stream<S>(txn: Transaction, env: &mut Env<'_, S>, mut e: Envelope<TcpStream>) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !e.data_queued() {
        e.data();
    }
    let content = match e.data_reply().await {
        Ok(DataAnswer::GoAhead(content)) => content,
        Ok(DataAnswer::Refused(e, reply)) => {
            let f = Failure::remote(e.peer(), Stage::DataInit, reply);
            let back = e.rset().await.ok();
            return txn.end(env, Outcome::failed(&f), back);
        }
        Err(err) => return txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
    };
    env.answer(Answer::StartData);
    let peer = content.peer().clone();
    let (max, idle) = (env.ctx.config.server.max_message_size, env.idle_limit());
    let end = relay_data(env.conn, content, max, idle).await;
    data_end(txn, env, end, peer)
}

/// The client's end of data, as the destination took it.
fn data_end<S>(
    txn: Transaction,
    env: &mut Env<'_, S>,
    end: DataEnd,
    peer: crate::outbound::client::Peer,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match end {
        DataEnd::Finished(f) => txn.finished(env, *f, peer),
        DataEnd::Violation(v) => txn.end(
            env,
            Outcome::answer(Answer::Violation(v), "message_refused"),
            None,
        ),
        DataEnd::TooBig => {
            let max = env.ctx.config.server.max_message_size;
            let o = Outcome::answer(Answer::MessageTooBig { max }, "message_refused");
            txn.end(env, o, None)
        }
        DataEnd::Failed(err) => txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
        DataEnd::Refused(reply, back) => {
            let f = Failure::remote(&peer, Stage::Bdat, reply);
            txn.end(env, Outcome::failed(&f), back.map(|c| *c))
        }
        DataEnd::ClientGone(e) => {
            env.input_failed(&e);
            txn.client_gone(env, Stage::InboundData);
            Next::Close
        }
    }
}

/// One BDAT chunk, answered from the state it arrives in.
pub(super) async fn bdat<S>(
    mut txn: Transaction,
    env: &mut Env<'_, S>,
    size: u64,
    last: bool,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if matches!(txn.state, State::Enveloped(_)) {
        // The recipients' fate decides what the first chunk gets.
        txn.settle(env).await;
    }
    match std::mem::replace(&mut txn.state, State::AwaitingRcpt) {
        State::Enveloped(e) if !txn.accepted.is_empty() => {
            first_chunk(txn, env, e, size, last).await
        }
        State::Enveloped(e) => {
            let back = e.rset().await.ok();
            let o = Outcome::answer(Answer::NoValidRecipients, "other");
            refuse_chunk(txn, env, size, last, o, back).await
        }
        State::AwaitingRcpt => {
            let o = Outcome::answer(Answer::NoValidRecipients, "other");
            refuse_chunk(txn, env, size, last, o, None).await
        }
        State::Failed(f) => refuse_chunk(txn, env, size, last, Outcome::failed(&f), None).await,
        State::RefusingChunks => {
            if discard(env, size).await.is_err() {
                return Next::Close;
            }
            env.answer(Answer::ChunkAfterFailure);
            if last {
                Next::Ended
            } else {
                txn.state = State::RefusingChunks;
                Next::keep(txn)
            }
        }
        State::InBdat(chunks) => bdat_chunk(txn, env, chunks, size, last).await,
        State::Converting(content, stuffer) => {
            converted_chunk(txn, env, content, stuffer, size, last).await
        }
    }
}

/// The first chunk chooses: BDAT to a destination with CHUNKING, else
/// DATA (the chunks are converted into a dot-stuffed stream).
async fn first_chunk<S>(
    txn: Transaction,
    env: &mut Env<'_, S>,
    mut e: Envelope<TcpStream>,
    size: u64,
    last: bool,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if e.chunking() {
        return bdat_chunk(txn, env, e.chunks(), size, last).await;
    }
    e.data();
    match e.data_reply().await {
        Ok(DataAnswer::GoAhead(content)) => {
            converted_chunk(txn, env, content, DotStuffer::new(), size, last).await
        }
        Ok(DataAnswer::Refused(e, reply)) => {
            let f = Failure::remote(e.peer(), Stage::DataInit, reply);
            let back = e.rset().await.ok();
            refuse_chunk(txn, env, size, last, Outcome::failed(&f), back).await
        }
        Err(err) => {
            let o = Outcome::failed(&Failure::Outbound(err));
            refuse_chunk(txn, env, size, last, o, None).await
        }
    }
}

/// Counts a chunk against the size limit. Sizes from the wire are added
/// with a check: an overflow is as much "too big" as a sum past the limit.
fn within_limit<S>(txn: &mut Transaction, env: &Env<'_, S>, size: u64) -> bool {
    let max = env.ctx.config.server.max_message_size;
    match txn.size.checked_add(size).filter(|t| *t <= max) {
        Some(total) => {
            txn.size = total;
            true
        }
        None => false,
    }
}

fn too_big<S>(env: &Env<'_, S>) -> Outcome {
    let max = env.ctx.config.server.max_message_size;
    Outcome::answer(Answer::MessageTooBig { max }, "message_refused")
}

/// A chunk relayed as BDAT. With pipelining its reply is read later (its
/// place is kept); the reply to LAST comes after every earlier one.
async fn bdat_chunk<S>(
    mut txn: Transaction,
    env: &mut Env<'_, S>,
    mut chunks: Chunks<TcpStream>,
    size: u64,
    last: bool,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !within_limit(&mut txn, env, size) {
        // The destination is dropped without its end of data.
        drop(chunks);
        txn.refuse_owed_chunks(env);
        let o = too_big(env);
        return refuse_chunk(txn, env, size, last, o, None).await;
    }
    chunks.begin(size, last);
    let peer = chunks.peer().clone();
    let idle = env.idle_limit();
    match relay_chunk(env.conn, size, ChunkSink::Bdat(&mut chunks), idle).await {
        Err(e) => return gone(txn, env, &e),
        Ok(Some(err)) => {
            txn.refuse_owed_chunks(env);
            return chunk_failed(txn, env, last, Failure::Outbound(err), None);
        }
        Ok(None) => {}
    }
    if last {
        return last_chunk(txn, env, chunks, peer).await;
    }
    if chunks.pipelining() {
        let slot = env.conn.reserve();
        txn.owed.push_back(Owed::Chunk { slot });
        txn.state = State::InBdat(chunks);
        return Next::keep(txn);
    }
    match chunks.next_reply().await {
        Ok(a) if a.verdict == Verdict::Positive => {
            env.conn
                .queue(&Outcome::relayed(Stage::Bdat, a.reply).reply);
            txn.state = State::InBdat(chunks);
            Next::keep(txn)
        }
        Ok(a) => {
            let f = Failure::remote(&peer, Stage::Bdat, a.reply);
            let back = chunks.rset().await.ok();
            chunk_failed(txn, env, last, f, back)
        }
        Err(err) => chunk_failed(txn, env, last, Failure::Outbound(err), None),
    }
}

/// After BDAT LAST: the replies owed for earlier chunks, then LAST's.
async fn last_chunk<S>(
    mut txn: Transaction,
    env: &mut Env<'_, S>,
    mut chunks: Chunks<TcpStream>,
    peer: crate::outbound::client::Peer,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(owed) = txn.owed.pop_front() {
        let Owed::Chunk { slot } = owed else { continue };
        let f = match chunks.next_reply().await {
            Ok(a) if a.verdict == Verdict::Positive => {
                env.conn
                    .answer_slot(slot, &Outcome::relayed(Stage::Bdat, a.reply).reply);
                continue;
            }
            Ok(a) => Failure::remote(&peer, Stage::Bdat, a.reply),
            Err(err) => Failure::Outbound(err),
        };
        // A refused chunk refuses the message; the chunks after it, LAST
        // included, are answered as after any refused chunk.
        let o = Outcome::failed(&f);
        env.conn.answer_slot(slot, &o.reply);
        txn.log_all(env, &o);
        txn.refuse_owed_chunks(env);
        env.answer(Answer::ChunkAfterFailure);
        let back = chunks.finish().await.ok().and_then(|f| f.client);
        if let Some(client) = back {
            env.keep_idle(txn.domain.as_deref().unwrap_or_default(), client);
        }
        return Next::Ended;
    }
    match chunks.finish().await {
        Ok(f) => txn.finished(env, f, peer),
        Err(err) => txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
    }
}

/// A chunk converted into the DATA stream; non-last chunks are answered
/// here (the destination answers only the end of data).
async fn converted_chunk<S>(
    mut txn: Transaction,
    env: &mut Env<'_, S>,
    mut content: Content<TcpStream>,
    mut stuffer: DotStuffer,
    size: u64,
    last: bool,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !within_limit(&mut txn, env, size) {
        drop(content);
        let o = too_big(env);
        return refuse_chunk(txn, env, size, last, o, None).await;
    }
    let idle = env.idle_limit();
    let sink = ChunkSink::Data(&mut content, &mut stuffer);
    match relay_chunk(env.conn, size, sink, idle).await {
        Err(e) => return gone(txn, env, &e),
        Ok(Some(err)) => return chunk_failed(txn, env, last, Failure::Outbound(err), None),
        Ok(None) => {}
    }
    if !last {
        env.answer(Answer::ChunkOk { size: txn.size });
        txn.state = State::Converting(content, stuffer);
        return Next::keep(txn);
    }
    let peer = content.peer().clone();
    let mut tail = bytes::BytesMut::new();
    stuffer.finish(&mut tail);
    match content.finish(&tail).await {
        Ok(f) => txn.finished(env, f, peer),
        Err(err) => txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
    }
}

/// A chunk whose relay failed after its octets were read.
fn chunk_failed<S>(
    txn: Transaction,
    env: &mut Env<'_, S>,
    last: bool,
    f: Failure,
    back: Option<Client<TcpStream>>,
) -> Next {
    refused(txn, env, last, Outcome::failed(&f), back)
}

/// Reads a chunk that is refused, then answers it.
async fn refuse_chunk<S>(
    txn: Transaction,
    env: &mut Env<'_, S>,
    size: u64,
    last: bool,
    outcome: Outcome,
    back: Option<Client<TcpStream>>,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(client) = back {
        env.keep_idle(txn.domain.as_deref().unwrap_or_default(), client);
    }
    // The chunk's octets follow the command whatever the answer.
    if let Err(e) = discard(env, size).await {
        return gone(txn, env, &e);
    }
    refused(txn, env, last, outcome, None)
}

/// Answers a refused chunk: the transaction ends with it at LAST, else
/// later chunks are read and refused until LAST. Every accepted recipient
/// learns its fate here, once.
fn refused<S>(
    mut txn: Transaction,
    env: &mut Env<'_, S>,
    last: bool,
    outcome: Outcome,
    back: Option<Client<TcpStream>>,
) -> Next {
    if last {
        return txn.end(env, outcome, back);
    }
    if let Some(client) = back {
        env.keep_idle(txn.domain.as_deref().unwrap_or_default(), client);
    }
    txn.log_all(env, &outcome);
    env.conn.queue(&outcome.reply);
    txn.state = State::RefusingChunks;
    Next::keep(txn)
}

async fn discard<S>(env: &mut Env<'_, S>, size: u64) -> Result<(), InputError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle = env.idle_limit();
    relay_chunk(env.conn, size, ChunkSink::Discard, idle)
        .await
        .map(|_| ())
}

/// The client stopped sending inside a chunk.
fn gone<S>(txn: Transaction, env: &mut Env<'_, S>, e: &InputError) -> Next {
    env.input_failed(e);
    txn.client_gone(env, Stage::InboundBdat);
    Next::Close
}
