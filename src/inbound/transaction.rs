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
//!
//! Pipelining (RFC 2920): with a destination that offers PIPELINING,
//! MAIL FROM and each RCPT TO are written without waiting; the client's
//! reply to each RCPT keeps its place ([`Slot`]) until the destination's
//! reply arrives. [`Transaction::settle`] reads the owed replies in order;
//! it runs before the session waits for the client, and before anything
//! that depends on them (DATA, BDAT, RSET).

use std::collections::VecDeque;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::answer::Answer;
use super::connection::Slot;
use super::env::Env;
use super::summary::{self, Outcome};
use crate::outbound::client::{Client, Peer};
use crate::outbound::failure::Failure;
use crate::outbound::stage::{Stage, Verdict};
use crate::outbound::transaction::{Chunks, Content, Envelope, Finished};
use crate::smtp::command::{ForwardPath, MailParams, Mailbox, RcptParams, ReversePath};
use crate::smtp::data::DotStuffer;

mod body;
mod envelope;

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

/// A command written to the destination whose reply is still to be read.
enum Owed {
    /// MAIL FROM: answered to the client at once; the destination's
    /// verdict decides what the recipients behind it get.
    Mail,
    /// RCPT TO: the client's reply waits in `slot`.
    Rcpt {
        slot: Slot,
        to: ForwardPath,
        params: RcptParams,
    },
    /// A BDAT chunk relayed as BDAT, not the last.
    Chunk { slot: Slot },
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
    /// Replies owed by the destination, in the order of its commands.
    owed: VecDeque<Owed>,
    /// The conversation came from the session or the cache: if it fails
    /// at MAIL FROM, a new one is worth one try.
    reused: bool,
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
            owed: VecDeque::new(),
            reused: false,
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

    /// RCPT TO: checked here, then relayed to the destination.
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
        match std::mem::replace(&mut self.state, State::AwaitingRcpt) {
            State::Failed(f) => {
                let o = Outcome::failed(&f);
                env.conn.queue(&o.reply);
                self.log(env, &mailbox.to_string(), &o);
                self.state = State::Failed(f);
            }
            State::AwaitingRcpt => self.first_rcpt(env, to, params).await,
            State::Enveloped(e) => self.relay_rcpt(env, e, to, params).await,
            body @ (State::InBdat(_) | State::Converting(..) | State::RefusingChunks) => {
                // Answered above; kept for the match to be whole.
                self.state = body;
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

    /// DATA: the destination's 354 (or ours, when the content goes as
    /// BDAT), the content, the final reply.
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
        body::data(self, env).await
    }

    /// BDAT: one chunk, relayed, converted or refused.
    pub async fn bdat<S>(self, env: &mut Env<'_, S>, size: u64, last: bool) -> Next
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        body::bdat(self, env, size, last).await
    }

    /// RSET, EHLO, HELO or QUIT: the replies still owed are given first,
    /// then the destination's transaction ends (RSET there where the
    /// protocol allows it, else the connection is dropped without an end
    /// of data).
    pub async fn reset<S>(mut self, env: &mut Env<'_, S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.settle(env).await;
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
    fn finished<S>(self, env: &mut Env<'_, S>, f: Finished<TcpStream>, peer: Peer) -> Next {
        let outcome = match f.verdict {
            Verdict::Positive => Outcome::relayed(f.stage, f.reply),
            _ => Outcome::failed(&Failure::remote(&peer, f.stage, f.reply)),
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
