//! One mail transaction of the legacy MTA and the destination transaction
//! it drives, as one state machine.
//!
//! ```text
//! AwaitingRcpt --RCPT--> Enveloped (the destination has MAIL FROM and the
//!   recipients so far) --DATA--> content relayed --> ended
//!                      --BDAT--> InBdat | Converting --BDAT LAST--> ended
//! any state --a failure before the content--> Failed (every further
//!   RCPT, DATA and BDAT of the transaction gets that failure)
//! a refused chunk --> RefusingChunks (later chunks are read and refused)
//! ```
//!
//! The transaction owns the destination conversation in whatever state
//! the destination's side is in (`outbound::transaction`), so a
//! conversation can only leave it through the destination's final reply
//! or a RSET answered 250, and only then go back to the session or the
//! connection cache. Each handler consumes the transaction and returns
//! what follows ([`Next`]). Every command is answered from the state it
//! arrives in (cut-through.md, invariant 5); replies are chosen in
//! `answer` and `failure`, never here.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::answer::Answer;
use super::session::Env;
use super::summary::{self, Outcome};
use crate::outbound::client::{refusal, Client, Peer};
use crate::outbound::connect;
use crate::outbound::failure::Failure;
use crate::outbound::stage::{Stage, Verdict};
use crate::outbound::transaction::{Chunks, Content, Envelope, Finished};
use crate::smtp::command::{ForwardPath, MailParams, Mailbox, RcptParams, ReversePath};
use crate::smtp::data::DotStuffer;

mod body;

/// What follows a command of the transaction.
pub(super) enum Next {
    /// The transaction goes on.
    Keep(Box<Transaction>),
    /// It ended (its final reply was given, or it was reset).
    Ended,
    /// The client is gone: close the session.
    Close,
}

impl Next {
    fn keep(t: Transaction) -> Next {
        Next::Keep(Box::new(t))
    }
}

/// The state of the destination's side, named after what it awaits.
enum State {
    /// MAIL FROM was taken here; the first recipient picks the
    /// destination.
    AwaitingRcpt,
    /// The destination has MAIL FROM and the recipients so far; awaiting
    /// more RCPT, or DATA/BDAT.
    Enveloped(Envelope<TcpStream>),
    /// BDAT chunks relayed as BDAT; awaiting the next chunk.
    InBdat(Chunks<TcpStream>),
    /// BDAT chunks converted into a DATA stream for a destination without
    /// CHUNKING; awaiting the next chunk.
    Converting(Content<TcpStream>, DotStuffer),
    /// Failed before the content; awaiting the client's next RCPT, DATA
    /// or BDAT to tell it.
    Failed(Failure),
    /// A chunk was refused; later chunks are read and refused until LAST.
    RefusingChunks,
}

pub(super) struct Transaction {
    from: ReversePath,
    params: MailParams,
    started: Instant,
    /// The destination domain, fixed by the first recipient.
    domain: Option<String>,
    rcpt_count: usize,
    /// Recipients the destination accepted (and the client was told so).
    accepted: Vec<String>,
    /// Content octets of the BDAT chunks so far.
    size: u64,
    /// Where the transaction went, for the summary lines.
    relay: Option<(Peer, String)>,
    state: State,
}

impl Transaction {
    pub fn new(from: ReversePath, params: MailParams) -> Transaction {
        Transaction {
            from,
            params,
            started: Instant::now(),
            domain: None,
            rcpt_count: 0,
            accepted: Vec::new(),
            size: 0,
            relay: None,
            state: State::AwaitingRcpt,
        }
    }

    /// Whether the content has started (BDAT chunks on their way).
    fn in_body(&self) -> bool {
        matches!(
            self.state,
            State::InBdat(_) | State::Converting(..) | State::RefusingChunks
        )
    }

    /// RCPT TO: checked here, then asked of the destination.
    pub async fn rcpt<S>(
        mut self,
        env: &mut Env<'_, S>,
        to: ForwardPath,
        params: RcptParams,
    ) -> Next
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.in_body() {
            env.refuse(Answer::BadSequence {
                hint: "RCPT after BDAT",
            });
            return Next::keep(self);
        }
        let mailbox = match &to {
            ForwardPath::Postmaster => {
                env.answer(Answer::NoPostmaster);
                return Next::keep(self);
            }
            ForwardPath::Mailbox(m) => m.clone(),
        };
        if let Some((outcome, logged)) = self.local_refusal(&mailbox, env) {
            env.conn.queue(&outcome.reply);
            if logged {
                self.log(env, &mailbox.to_string(), &outcome);
            }
            return Next::keep(self);
        }
        self.rcpt_count += 1;
        let outcome = match std::mem::replace(&mut self.state, State::AwaitingRcpt) {
            State::Failed(f) => {
                let o = Outcome::failed(&f);
                self.state = State::Failed(f);
                Err(o)
            }
            State::AwaitingRcpt => self.first_rcpt(env, &to, &params).await,
            State::Enveloped(e) => self.more_rcpt(env, e, &to, &params).await,
            body @ (State::InBdat(_) | State::Converting(..) | State::RefusingChunks) => {
                // Answered above; kept for the match to be whole.
                self.state = body;
                return Next::keep(self);
            }
        };
        match outcome {
            Ok(o) => env.conn.queue(&o.reply),
            Err(o) => {
                env.conn.queue(&o.reply);
                self.log(env, &mailbox.to_string(), &o);
            }
        }
        Next::keep(self)
    }

    /// The checks a recipient gets before any destination is asked: the
    /// answer, and whether it goes into the log as an outcome.
    fn local_refusal<S>(&mut self, m: &Mailbox, env: &Env<'_, S>) -> Option<(Outcome, bool)> {
        if m.is_utf8() && !self.params.smtputf8 {
            return Some((Outcome::answer(Answer::Smtputf8Address, "other"), false));
        }
        if self.rcpt_count >= env.ctx.config.server.max_recipients {
            return Some((Outcome::answer(Answer::TooManyRecipients, "other"), false));
        }
        let domain = domain_of(m);
        match &self.domain {
            Some(first) if *first != domain => {
                let a = Answer::OtherDomain { first };
                Some((Outcome::answer(a, "other_domain"), true))
            }
            Some(_) => None,
            None => {
                self.domain = Some(domain);
                None
            }
        }
    }

    /// The first recipient: a conversation with the destination (reused or
    /// new), MAIL FROM, then this RCPT.
    async fn first_rcpt<S>(
        &mut self,
        env: &mut Env<'_, S>,
        to: &ForwardPath,
        params: &RcptParams,
    ) -> Result<Outcome, Outcome>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let domain = self.domain.clone().unwrap_or_default();
        let envelope = match self.open_envelope(env, &domain).await {
            Ok(e) => e,
            Err(f) => {
                let o = Outcome::failed(&f);
                self.state = State::Failed(f);
                return Err(o);
            }
        };
        self.more_rcpt(env, envelope, to, params).await
    }

    /// Sends one more recipient and answers with the destination's reply.
    async fn more_rcpt<S>(
        &mut self,
        env: &mut Env<'_, S>,
        mut e: Envelope<TcpStream>,
        to: &ForwardPath,
        params: &RcptParams,
    ) -> Result<Outcome, Outcome> {
        e.rcpt(to, params);
        match e.next_reply().await {
            Ok(a) if a.verdict == Verdict::Positive => {
                self.accepted.push(path_text(to));
                self.state = State::Enveloped(e);
                Ok(Outcome::relayed(Stage::Rcpt, a.reply))
            }
            Ok(a) => {
                let f = Failure::remote(e.peer(), Stage::Rcpt, a.reply.clone());
                if a.reply.code == 421 {
                    // The destination is closing the connection: the
                    // transaction cannot go on there.
                    self.state = State::Failed(f.clone());
                    env.spawn_quit(e);
                } else {
                    self.state = State::Enveloped(e);
                }
                Err(Outcome::failed(&f))
            }
            Err(err) => {
                let f = Failure::Outbound(err);
                self.state = State::Failed(f.clone());
                Err(Outcome::failed(&f))
            }
        }
    }

    /// A conversation for `domain` with MAIL FROM accepted: the session's
    /// own idle one or a cached one when it is still quiet, else a new
    /// one. A reused conversation the server closed while idle is replaced
    /// once by a new one.
    async fn open_envelope<S>(
        &mut self,
        env: &mut Env<'_, S>,
        domain: &str,
    ) -> Result<Envelope<TcpStream>, Failure> {
        let mut reused = env.reuse(domain).await;
        loop {
            let client = match reused.take() {
                Some(c) => (c, true),
                None => match connect::connect(env.ctx, env.id, domain).await {
                    Ok(d) => (d.client, false),
                    Err(f) => {
                        if let Failure::Outbound(e) = &f {
                            // The summary line names the host that failed.
                            self.relay = Some((e.peer().clone(), "none".to_owned()));
                        }
                        return Err(f);
                    }
                },
            };
            let (client, was_reused) = client;
            self.relay = Some((client.peer().clone(), client.tls_state().to_string()));
            if let Some(mismatch) = refusal(&self.params, client.capabilities()) {
                let peer = client.peer().clone();
                env.keep_idle(domain, client);
                return Err(Failure::Mismatch { peer, mismatch });
            }
            match self.mail(client).await {
                Ok(e) => return Ok(e),
                Err(refused) => {
                    if let Some(client) = refused.back {
                        env.keep_idle(domain, client);
                    }
                    if !(refused.retry && was_reused) {
                        return Err(refused.failure);
                    }
                    tracing::debug!(
                        session = env.id,
                        "reused connection failed ({}); connecting anew",
                        refused.failure
                    );
                }
            }
        }
    }

    /// MAIL FROM at the destination.
    async fn mail(&self, client: Client<TcpStream>) -> Result<Envelope<TcpStream>, MailRefused> {
        let mut e = client.start(&self.from, &self.params);
        match e.next_reply().await {
            Ok(a) if a.verdict == Verdict::Positive => Ok(e),
            Ok(a) => {
                let retry = a.reply.code == 421;
                let failure = Failure::remote(e.peer(), Stage::Mail, a.reply);
                // A refused MAIL FROM leaves no transaction open; RSET
                // makes sure before the conversation is used again. A
                // server that is closing (421) is not asked anything.
                let back = if retry { None } else { e.rset().await.ok() };
                Err(MailRefused {
                    failure,
                    retry,
                    back,
                })
            }
            Err(err) => Err(MailRefused {
                failure: Failure::Outbound(err),
                retry: true,
                back: None,
            }),
        }
    }

    /// DATA: the destination's 354, the content, the final reply.
    pub async fn data<S>(self, env: &mut Env<'_, S>) -> Next
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.in_body() {
            env.refuse(Answer::BadSequence {
                hint: "DATA after BDAT",
            });
            return Next::keep(self);
        }
        if self.accepted.is_empty() {
            env.answer(Answer::NoValidRecipients);
            self.reset(env).await;
            return Next::Ended;
        }
        body::data(self, env).await
    }

    /// BDAT: one chunk, relayed, converted or refused.
    pub async fn bdat<S>(self, env: &mut Env<'_, S>, size: u64, last: bool) -> Next
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        body::bdat(self, env, size, last).await
    }

    /// RSET, EHLO, HELO or QUIT: the destination's transaction ends first
    /// (RSET there where the protocol allows it, else the connection is
    /// dropped without an end of data).
    pub async fn reset<S>(self, env: &mut Env<'_, S>) {
        let domain = self.domain.unwrap_or_default();
        let back = match self.state {
            State::Enveloped(e) => e.rset().await.ok(),
            State::InBdat(c) => c.rset().await.ok(),
            // Inside a DATA stream nothing can end the destination's
            // transaction but its end of data: drop the connection.
            State::Converting(..) => None,
            State::AwaitingRcpt | State::Failed(_) | State::RefusingChunks => None,
        };
        if let Some(client) = back {
            env.keep_idle(&domain, client);
        }
    }

    /// The client vanished: every accepted recipient stays with it; the
    /// destination's transaction is abandoned (QUIT where allowed, else
    /// the connection is dropped) and never reused.
    pub fn client_gone<S>(self, env: &Env<'_, S>, stage: Stage) {
        let who = env.who();
        for rcpt in &self.accepted {
            summary::abandoned(who, &self.from.to_string(), rcpt, stage);
        }
        if let State::Enveloped(e) = self.state {
            env.spawn_quit(e);
        }
    }

    /// Answers the end of the transaction, logs every accepted recipient's
    /// outcome and keeps the conversation when the destination gave it
    /// back.
    fn end<S>(
        self,
        env: &mut Env<'_, S>,
        outcome: Outcome,
        back: Option<Client<TcpStream>>,
    ) -> Next {
        self.log_all(env, &outcome);
        crate::metrics::global().transaction(outcome.word(), self.started.elapsed());
        env.conn.queue(&outcome.reply);
        if let Some(client) = back {
            env.keep_idle(self.domain.as_deref().unwrap_or_default(), client);
        }
        Next::Ended
    }

    /// The end of a message at the destination, as the client hears it.
    fn finished<S>(
        self,
        env: &mut Env<'_, S>,
        f: Finished<TcpStream>,
        stage: Stage,
        peer: Peer,
    ) -> Next {
        let outcome = match f.verdict {
            Verdict::Positive => Outcome::relayed(stage, f.reply),
            _ => Outcome::failed(&Failure::remote(&peer, stage, f.reply)),
        };
        self.end(env, outcome, f.client)
    }

    fn log_all<S>(&self, env: &Env<'_, S>, outcome: &Outcome) {
        for rcpt in &self.accepted {
            self.log(env, rcpt, outcome);
        }
    }

    fn log<S>(&self, env: &Env<'_, S>, rcpt: &str, outcome: &Outcome) {
        let from = self.from.to_string();
        let facts = summary::Envelope {
            from: &from,
            started: self.started,
            relay: self.relay.as_ref(),
        };
        summary::recipient(env.who(), &facts, rcpt, outcome);
    }
}

/// A MAIL FROM the destination refused.
struct MailRefused {
    failure: Failure,
    /// The server may have closed a reused connection: one new connection
    /// is worth a try.
    retry: bool,
    /// The conversation, when it is still good for another transaction.
    back: Option<Client<TcpStream>>,
}

/// The destination domain of a recipient: lowercase, no trailing dot.
fn domain_of(m: &Mailbox) -> String {
    m.domain.trim_end_matches('.').to_lowercase()
}

fn path_text(to: &ForwardPath) -> String {
    match to {
        ForwardPath::Mailbox(m) => m.to_string(),
        ForwardPath::Postmaster => "Postmaster".into(),
    }
}
