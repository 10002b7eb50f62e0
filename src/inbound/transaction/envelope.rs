//! The envelope at the destination: a conversation for the recipient's
//! domain, MAIL FROM and each RCPT TO relayed (pipelined where the
//! destination offers it), and the owed replies read in order.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{path_text, Owed, State, Transaction};
use crate::inbound::answer::Answer;
use crate::inbound::env::Env;
use crate::inbound::summary::Outcome;
use crate::outbound::client::{refusal, Client};
use crate::outbound::connect;
use crate::outbound::failure::Failure;
use crate::outbound::stage::{Stage, Verdict};
use crate::outbound::transaction::{Chunks, Envelope};
use crate::smtp::command::{ForwardPath, RcptParams};

impl Transaction {
    /// The first recipient: a conversation with the destination, MAIL
    /// FROM, then this RCPT.
    pub(super) async fn first_rcpt<S>(
        &mut self,
        env: &mut Env<'_, S>,
        to: ForwardPath,
        params: RcptParams,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let domain = self.domain.clone().unwrap_or_default();
        match self.open(env, &domain, true).await {
            Ok(e) => self.relay_rcpt(env, e, to, params).await,
            Err(f) => {
                let o = Outcome::failed(&f);
                env.conn.queue(&o.reply);
                self.log(env, &path_text(&to), &o);
                self.state = State::Failed(f);
            }
        }
    }

    /// Relays one recipient. Its reply keeps its place until the
    /// destination answers: at once without pipelining, later with it.
    pub(super) async fn relay_rcpt<S>(
        &mut self,
        env: &mut Env<'_, S>,
        mut e: Envelope<TcpStream>,
        to: ForwardPath,
        params: RcptParams,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let pipelining = e.pipelining();
        e.rcpt(&to, &params);
        let slot = env.conn.reserve();
        self.owed.push_back(Owed::Rcpt { slot, to, params });
        self.state = State::Enveloped(e);
        if !pipelining {
            self.settle(env).await;
        }
    }

    /// A conversation for `domain` with MAIL FROM queued: the session's
    /// own idle one or a cached one when it is still quiet (if `reuse`),
    /// else a new one. Without pipelining, MAIL FROM is answered here.
    async fn open<S>(
        &mut self,
        env: &mut Env<'_, S>,
        domain: &str,
        reuse: bool,
    ) -> Result<Envelope<TcpStream>, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let reused = if reuse { env.reuse(domain).await } else { None };
        self.reused = reused.is_some();
        let client = match reused {
            Some(c) => c,
            None => match connect::connect(env.ctx, env.id, domain).await {
                Ok(d) => d.client,
                Err(f) => {
                    if let Some(peer) = f.peer() {
                        // The summary line names the host that failed.
                        self.relay = Some((peer.clone(), "none".to_owned()));
                    }
                    return Err(f);
                }
            },
        };
        self.relay = Some((client.peer().clone(), client.tls_state().to_string()));
        if let Some(mismatch) = refusal(&self.params, client.capabilities()) {
            let peer = client.peer().clone();
            env.keep_idle(domain, client);
            return Err(Failure::Mismatch { peer, mismatch });
        }
        let mut e = client.start(&self.from, &self.params);
        self.owed.push_front(Owed::Mail);
        if e.pipelining() {
            return Ok(e);
        }
        // Lock-step: MAIL FROM's reply before anything else is sent.
        match e.next_reply().await {
            Ok(a) if a.verdict == Verdict::Positive => {
                self.owed.pop_front();
                Ok(e)
            }
            Ok(a) => {
                self.owed.pop_front();
                self.mail_refused(env, e, a.reply, domain).await
            }
            Err(err) => {
                self.owed.pop_front();
                if self.reused {
                    Box::pin(self.open(env, domain, false)).await
                } else {
                    Err(Failure::Outbound(err))
                }
            }
        }
    }

    /// MAIL FROM refused, in lock-step: a reused conversation the server
    /// is closing (421) gets one new try; otherwise RSET keeps the
    /// conversation for another transaction.
    async fn mail_refused<S>(
        &mut self,
        env: &mut Env<'_, S>,
        e: Envelope<TcpStream>,
        reply: crate::smtp::reply::Reply,
        domain: &str,
    ) -> Result<Envelope<TcpStream>, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let f = Failure::remote(e.peer(), Stage::Mail, reply.clone());
        if reply.code == 421 {
            return if self.reused {
                Box::pin(self.open(env, domain, false)).await
            } else {
                Err(f)
            };
        }
        if let Ok(client) = e.rset().await {
            env.keep_idle(domain, client);
        }
        Err(f)
    }

    /// Whether the destination owes replies to commands already relayed.
    pub fn owes(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Reads every reply the destination owes, in order, and gives the
    /// client the replies that waited for them.
    pub async fn settle<S>(&mut self, env: &mut Env<'_, S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.owed.is_empty() {
            return;
        }
        match std::mem::replace(&mut self.state, State::AwaitingRcpt) {
            State::Enveloped(e) => self.settle_envelope(env, e).await,
            State::InBdat(c) => self.settle_chunks(env, c).await,
            other => {
                // Nothing can be owed without a destination; should
                // anything be, the client still gets an answer in its
                // place.
                self.state = other;
                let o = Outcome::answer(Answer::LocalError, "other");
                for owed in std::mem::take(&mut self.owed) {
                    if let Owed::Rcpt { slot, .. } | Owed::Chunk { slot } = owed {
                        env.conn.answer_slot(slot, &o.reply);
                    }
                }
            }
        }
    }

    async fn settle_envelope<S>(&mut self, env: &mut Env<'_, S>, mut e: Envelope<TcpStream>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        while let Some(owed) = self.owed.pop_front() {
            let answer = e.next_reply().await;
            match owed {
                Owed::Mail => match answer {
                    Ok(a) if a.verdict == Verdict::Positive => {}
                    Ok(a) => {
                        let code = a.reply.code;
                        let f = Failure::remote(e.peer(), Stage::Mail, a.reply);
                        if code == 421 && self.reused {
                            let data = e.data_queued();
                            e = match self.reopen(env, data, f).await {
                                Ok(e) => e,
                                Err(f) => return self.failed(env, f, None),
                            };
                            continue;
                        }
                        // The recipients behind a refused MAIL FROM get
                        // its refusal; RSET reads their replies.
                        let back = if code == 421 {
                            None
                        } else {
                            e.rset().await.ok()
                        };
                        return self.failed(env, f, back);
                    }
                    Err(err) if self.reused => {
                        tracing::debug!(
                            session = env.id,
                            "reused connection failed ({err}); connecting anew"
                        );
                        let data = e.data_queued();
                        e = match self.reopen(env, data, Failure::Outbound(err)).await {
                            Ok(e) => e,
                            Err(f) => return self.failed(env, f, None),
                        };
                    }
                    Err(err) => return self.failed(env, Failure::Outbound(err), None),
                },
                Owed::Rcpt { slot, to, .. } => match answer {
                    Ok(a) if a.verdict == Verdict::Positive => {
                        self.accepted.push(path_text(&to));
                        env.conn
                            .answer_slot(slot, &Outcome::relayed(Stage::Rcpt, a.reply).reply);
                    }
                    Ok(a) => {
                        let closing = a.reply.code == 421;
                        let f = Failure::remote(e.peer(), Stage::Rcpt, a.reply);
                        let o = Outcome::failed(&f);
                        env.conn.answer_slot(slot, &o.reply);
                        self.log(env, &path_text(&to), &o);
                        if closing {
                            // The destination is closing the connection:
                            // the transaction cannot go on there.
                            return self.failed(env, f, None);
                        }
                    }
                    Err(err) => {
                        let f = Failure::Outbound(err);
                        let o = Outcome::failed(&f);
                        env.conn.answer_slot(slot, &o.reply);
                        self.log(env, &path_text(&to), &o);
                        return self.failed(env, f, None);
                    }
                },
                Owed::Chunk { slot } => {
                    // Chunks are owed only once the content has started.
                    env.conn
                        .answer_slot(slot, &Answer::ChunkAfterFailure.reply());
                }
            }
        }
        self.state = State::Enveloped(e);
    }

    /// A reused conversation failed at MAIL FROM (the server closed it
    /// while it was idle): a new conversation, with MAIL FROM, the
    /// recipients and DATA still owed queued again. Pipelined as before,
    /// or not at all: a server that no longer pipelines fails the try.
    async fn reopen<S>(
        &mut self,
        env: &mut Env<'_, S>,
        data: bool,
        failure: Failure,
    ) -> Result<Envelope<TcpStream>, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let domain = self.domain.clone().unwrap_or_default();
        let owed = std::mem::take(&mut self.owed);
        let mut e = match self.open(env, &domain, false).await {
            Ok(e) => e,
            Err(f) => {
                // The recipients still owed keep their places: the
                // caller answers them with the failure.
                self.owed = owed;
                return Err(f);
            }
        };
        if !e.pipelining() {
            self.owed = owed;
            e.quit().await;
            return Err(failure);
        }
        for o in owed {
            if let Owed::Rcpt { to, params, .. } = &o {
                e.rcpt(to, params);
            }
            self.owed.push_back(o);
        }
        if data {
            e.data();
        }
        Ok(e)
    }

    /// Reads the replies owed for pipelined chunks; a refused one refuses
    /// the message (later chunks are read and refused until LAST).
    async fn settle_chunks<S>(&mut self, env: &mut Env<'_, S>, mut c: Chunks<TcpStream>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        while let Some(owed) = self.owed.pop_front() {
            let Owed::Chunk { slot } = owed else {
                continue;
            };
            let f = match c.next_reply().await {
                Ok(a) if a.verdict == Verdict::Positive => {
                    env.conn
                        .answer_slot(slot, &Outcome::relayed(Stage::Bdat, a.reply).reply);
                    continue;
                }
                Ok(a) => Failure::remote(c.peer(), Stage::Bdat, a.reply),
                Err(err) => Failure::Outbound(err),
            };
            let o = Outcome::failed(&f);
            env.conn.answer_slot(slot, &o.reply);
            self.log_all(env, &o);
            self.refuse_owed_chunks(env);
            if let Ok(client) = c.rset().await {
                env.keep_idle(self.domain.as_deref().unwrap_or_default(), client);
            }
            self.state = State::RefusingChunks;
            return;
        }
        self.state = State::InBdat(c);
    }

    /// Chunks pipelined after a refused one are refused too.
    pub(super) fn refuse_owed_chunks<S>(&mut self, env: &mut Env<'_, S>) {
        for o in std::mem::take(&mut self.owed) {
            if let Owed::Chunk { slot } = o {
                env.conn
                    .answer_slot(slot, &Answer::ChunkAfterFailure.reply());
            }
        }
    }

    /// The transaction failed before the content: every reply still owed
    /// gets the failure; the conversation is kept when RSET gave it back.
    fn failed<S>(&mut self, env: &mut Env<'_, S>, f: Failure, back: Option<Client<TcpStream>>) {
        self.fail_owed(env, &f);
        if let Some(client) = back {
            env.keep_idle(self.domain.as_deref().unwrap_or_default(), client);
        }
        self.state = State::Failed(f);
    }

    fn fail_owed<S>(&mut self, env: &mut Env<'_, S>, f: &Failure) {
        let o = Outcome::failed(f);
        for owed in std::mem::take(&mut self.owed) {
            match owed {
                Owed::Mail => {}
                Owed::Rcpt { slot, to, .. } => {
                    env.conn.answer_slot(slot, &o.reply);
                    self.log(env, &path_text(&to), &o);
                }
                Owed::Chunk { slot } => env.conn.answer_slot(slot, &o.reply),
            }
        }
    }
}
