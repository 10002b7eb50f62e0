//! The message content of a transaction: DATA relayed up to the final
//! reply, and BDAT chunks relayed as BDAT, converted into a DATA stream,
//! or read and refused.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Next, State, Transaction};
use crate::inbound::answer::Answer;
use crate::inbound::content::{relay_chunk, relay_data, ChunkSink, DataEnd};
use crate::inbound::session::Env;
use crate::inbound::summary::Outcome;
use crate::outbound::client::Client;
use crate::outbound::failure::Failure;
use crate::outbound::stage::{Stage, Verdict};
use crate::outbound::transaction::{DataAnswer, Envelope};
use crate::smtp::data::DotStuffer;

/// DATA with at least one accepted recipient.
pub(super) async fn data<S>(mut txn: Transaction, env: &mut Env<'_, S>) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut e = match std::mem::replace(&mut txn.state, State::AwaitingRcpt) {
        State::Enveloped(e) => e,
        State::Failed(f) => return txn.end(env, Outcome::failed(&f), None),
        // Accepted recipients imply an envelope at the destination (or
        // a failure); nothing else can answer this DATA.
        State::AwaitingRcpt => {
            return txn.end(
                env,
                Outcome::answer(Answer::NoValidRecipients, "other"),
                None,
            )
        }
        body => {
            txn.state = body;
            env.refuse(Answer::BadSequence {
                hint: "DATA after BDAT",
            });
            return Next::keep(txn);
        }
    };
    e.data();
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
    let max = env.ctx.config.server.max_message_size;
    let idle = env.idle_limit();
    match relay_data(env.conn, content, max, idle).await {
        DataEnd::Finished(f) => txn.finished(env, *f, Stage::DataDone, peer),
        DataEnd::Violation(v) => txn.end(
            env,
            Outcome::answer(Answer::Violation(v), "message_refused"),
            None,
        ),
        DataEnd::TooBig => {
            let o = Outcome::answer(Answer::MessageTooBig { max }, "message_refused");
            txn.end(env, o, None)
        }
        DataEnd::Failed(err) => txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
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
        State::InBdat(chunks) => next_chunk(txn, env, ChunkTo::Bdat(chunks), size, last).await,
        State::Converting(content, stuffer) => {
            next_chunk(txn, env, ChunkTo::Data(content, stuffer), size, last).await
        }
    }
}

/// Where the message goes once its first chunk arrived.
enum ChunkTo {
    Bdat(crate::outbound::transaction::Chunks<TcpStream>),
    Data(crate::outbound::transaction::Content<TcpStream>, DotStuffer),
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
    if e.capabilities().chunking {
        return next_chunk(txn, env, ChunkTo::Bdat(e.chunks()), size, last).await;
    }
    e.data();
    match e.data_reply().await {
        Ok(DataAnswer::GoAhead(content)) => {
            next_chunk(
                txn,
                env,
                ChunkTo::Data(content, DotStuffer::new()),
                size,
                last,
            )
            .await
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

/// Relays a chunk of a message whose content has started.
async fn next_chunk<S>(
    mut txn: Transaction,
    env: &mut Env<'_, S>,
    to: ChunkTo,
    size: u64,
    last: bool,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = env.ctx.config.server.max_message_size;
    // Sizes from the wire are added with a check: an overflow is as much
    // "too big" as a sum past the limit.
    let Some(total) = txn.size.checked_add(size).filter(|t| *t <= max) else {
        // The destination is dropped without its end of data.
        drop(to);
        let o = Outcome::answer(Answer::MessageTooBig { max }, "message_refused");
        return refuse_chunk(txn, env, size, last, o, None).await;
    };
    txn.size = total;
    let idle = env.idle_limit();
    match to {
        ChunkTo::Bdat(mut chunks) => {
            chunks.begin(size, last);
            let peer = chunks.peer().clone();
            match relay_chunk(env.conn, size, ChunkSink::Bdat(&mut chunks), idle).await {
                Err(e) => return gone(txn, env, &e),
                Ok(Some(err)) => return chunk_failed(txn, env, last, Failure::Outbound(err), None),
                Ok(None) => {}
            }
            if last {
                return match chunks.finish().await {
                    Ok(f) => txn.finished(env, f, Stage::BdatLast, peer),
                    Err(err) => txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
                };
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
        ChunkTo::Data(mut content, mut stuffer) => {
            let sink = ChunkSink::Data(&mut content, &mut stuffer);
            match relay_chunk(env.conn, size, sink, idle).await {
                Err(e) => return gone(txn, env, &e),
                Ok(Some(err)) => return chunk_failed(txn, env, last, Failure::Outbound(err), None),
                Ok(None) => {}
            }
            if !last {
                env.answer(Answer::ChunkOk { size: total });
                txn.state = State::Converting(content, stuffer);
                return Next::keep(txn);
            }
            let peer = content.peer().clone();
            let mut tail = bytes::BytesMut::new();
            stuffer.finish(&mut tail);
            match content.finish(&tail).await {
                Ok(f) => txn.finished(env, f, Stage::DataDone, peer),
                Err(err) => txn.end(env, Outcome::failed(&Failure::Outbound(err)), None),
            }
        }
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

async fn discard<S>(
    env: &mut Env<'_, S>,
    size: u64,
) -> Result<(), crate::inbound::connection::InputError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle = env.idle_limit();
    relay_chunk(env.conn, size, ChunkSink::Discard, idle)
        .await
        .map(|_| ())
}

/// The client stopped sending inside a chunk.
fn gone<S>(
    txn: Transaction,
    env: &mut Env<'_, S>,
    e: &crate::inbound::connection::InputError,
) -> Next {
    env.input_failed(e);
    txn.client_gone(env, Stage::InboundBdat);
    Next::Close
}
