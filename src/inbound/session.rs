//! One inbound SMTP session (RFC 5321 server side) and the cut-through
//! relay of its transactions.
//!
//! A transaction is relayed as it arrives: at the first RCPT the
//! destination is planned and connected, MAIL and each RCPT are sent there
//! and its replies come back; the message content is streamed through in
//! bounded pieces, and the final dot is answered only with the
//! destination's own reply. Anything that goes wrong before that reply
//! leaves the destination without an end of data (the connection is
//! dropped) and the client with a 4xx, so the message stays queued
//! upstream. Replies come from `reply_map`; this module never writes a
//! reply literal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{debug, info};

use super::answer::{relayed, Answer};
use super::connection::{Connection, Framed, InputError};
use crate::metrics;
use crate::outbound::client::{refusal, Peer};
use crate::outbound::connect;
use crate::outbound::failure::Failure;
use crate::outbound::pool::Destination;
use crate::outbound::stage::Stage;
use crate::outbound::Context;
use crate::smtp::command::{
    parse_command, Body, Command, ForwardPath, MailParams, Mailbox, RcptParams, ReversePath,
};
use crate::smtp::data::{DataDecoder, DotStuffer};
use crate::smtp::reply::Reply;

/// Errors after which the session is closed (Postfix's
/// `smtpd_hard_error_limit`).
const MAX_ERRORS: u32 = 20;

/// A recipient the destination accepted (and we answered 250 for).
struct Accepted {
    rcpt: String,
}

/// How the message content goes to the destination.
enum Body2 {
    /// Nothing sent yet.
    NotStarted,
    /// BDAT chunks relayed as BDAT.
    Bdat,
    /// BDAT chunks converted to a DATA stream.
    Converted(DotStuffer),
    /// A BDAT chunk failed: the rest of the message is read and dropped.
    Failed,
}

/// The state of one mail transaction (from MAIL to the end of data).
struct Transaction {
    from: ReversePath,
    params: MailParams,
    started: Instant,
    /// The destination domain, fixed by the first recipient.
    domain: Option<String>,
    /// MAIL FROM was accepted by the destination.
    mail_sent: bool,
    /// The destination gave its final reply to the content, which ends
    /// its transaction; until then an abandoned transaction needs RSET.
    dest_done: bool,
    accepted: Vec<Accepted>,
    rcpt_count: usize,
    /// Once set, every further RCPT and the data get this answer.
    failed: Option<Failure>,
    body: Body2,
    /// Content octets so far (BDAT).
    size: u64,
    /// The destination address and TLS state this transaction went to,
    /// kept for the log after the connection is gone.
    relay: Option<(Peer, String)>,
}

impl Transaction {
    fn new(from: ReversePath, params: MailParams) -> Self {
        Transaction {
            from,
            params,
            started: Instant::now(),
            domain: None,
            mail_sent: false,
            dest_done: false,
            accepted: Vec::new(),
            rcpt_count: 0,
            failed: None,
            body: Body2::NotStarted,
            size: 0,
            relay: None,
        }
    }
}

/// A reply with the reason label it is counted under.
struct Outcome {
    reply: Reply,
    reason: &'static str,
}

impl Outcome {
    fn failed(f: &Failure) -> Outcome {
        Outcome {
            reply: Answer::Failed(f).reply(),
            reason: f.reason(),
        }
    }

    fn answer(a: Answer<'_>, reason: &'static str) -> Outcome {
        Outcome {
            reply: a.reply(),
            reason,
        }
    }

    /// The destination's own final reply.
    fn relayed(stage: Stage, reply: Reply) -> Outcome {
        Outcome {
            reply: relayed(stage, reply),
            reason: "none",
        }
    }
}

/// What the command loop does next.
enum Flow {
    Continue,
    Close,
}

pub struct Session<S> {
    conn: Connection<S>,
    ctx: Arc<Context>,
    id: String,
    client: SocketAddr,
    helo: Option<String>,
    txn: Option<Transaction>,
    dest: Option<Destination>,
    errors: u32,
    shutdown: watch::Receiver<bool>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub fn new(
        io: S,
        ctx: Arc<Context>,
        id: String,
        client: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Session {
            conn: Connection::new(io),
            ctx,
            id,
            client,
            helo: None,
            txn: None,
            dest: None,
            errors: 0,
            shutdown,
        }
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(self.ctx.timeouts.inbound_idle)
    }

    fn answer(&mut self, a: Answer<'_>) {
        let reply = a.reply();
        self.conn.queue(&reply);
    }

    /// Runs the session to its end. Never panics on client input.
    pub async fn run(mut self) {
        let hostname = self.ctx.config.server.hostname.0.clone();
        self.answer(Answer::Greeting {
            hostname: &hostname,
        });
        loop {
            if *self.shutdown.borrow() && self.txn.is_none() {
                self.answer(Answer::ShuttingDown);
                break;
            }
            let idle = self.idle();
            let framed = if self.txn.is_none() {
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    r = self.conn.next_line(idle) => r,
                    _ = shutdown.changed() => continue,
                }
            } else {
                self.conn.next_line(idle).await
            };
            let flow = match framed {
                Ok(Framed::Line(line)) => self.line(&line).await,
                Ok(Framed::TooLong) => {
                    self.answer(Answer::LineTooLong);
                    self.error()
                }
                Err(InputError::Timeout) => {
                    self.answer(Answer::IdleTimeout);
                    Flow::Close
                }
                Err(e) => {
                    debug!(session = %self.id, "input ended: {e}");
                    self.client_gone("waiting for a command");
                    return self.finish().await;
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        self.finish().await
    }

    async fn finish(mut self) {
        if let Some(dest) = self.dest.take() {
            if self.txn.is_none() {
                // Idle and ready for MAIL FROM: keep it for the next
                // session's transaction to the same domain.
                self.ctx.pool.put(dest).await;
            } else {
                dest.client.quit().await;
            }
        }
        let limit = self.idle();
        self.conn.close(limit).await;
    }

    fn error(&mut self) -> Flow {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.answer(Answer::TooManyErrors);
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    async fn line(&mut self, line: &[u8]) -> Flow {
        match parse_command(line) {
            Ok(cmd) => self.command(cmd).await,
            Err(e) => {
                self.answer(Answer::Command(&e));
                self.error()
            }
        }
    }

    async fn command(&mut self, cmd: Command) -> Flow {
        let hostname = self.ctx.config.server.hostname.0.clone();
        match cmd {
            Command::Ehlo { domain } => {
                self.reset().await;
                let client = self.client.ip().to_string();
                self.answer(Answer::Ehlo {
                    hostname: &hostname,
                    client: &client,
                    max_size: self.ctx.config.server.max_message_size,
                });
                self.helo = Some(domain);
            }
            Command::Helo { domain } => {
                self.reset().await;
                self.answer(Answer::Helo {
                    hostname: &hostname,
                });
                self.helo = Some(domain);
            }
            Command::Mail { from, params } => return self.mail(from, params),
            Command::Rcpt { to, params } => return self.rcpt(to, params).await,
            Command::Data => return self.data().await,
            Command::Bdat { size, last } => return self.bdat(size, last).await,
            Command::Rset => {
                self.reset().await;
                self.answer(Answer::Ok);
            }
            Command::Noop => self.answer(Answer::Ok),
            Command::Quit => {
                self.reset().await;
                self.answer(Answer::Bye {
                    hostname: &hostname,
                });
                return Flow::Close;
            }
            Command::Vrfy { .. } => self.answer(Answer::Vrfy),
            Command::Expn { .. } => self.answer(Answer::NotImplemented { command: "EXPN" }),
            Command::Help { .. } => self.answer(Answer::Help),
            Command::StartTls => {
                self.answer(Answer::NotImplemented {
                    command: "STARTTLS",
                });
                return self.error();
            }
            Command::Auth => {
                self.answer(Answer::NotImplemented { command: "AUTH" });
                return self.error();
            }
        }
        Flow::Continue
    }

    /// Ends the transaction, if any, and tells the destination to forget
    /// it unless the destination already ended it.
    async fn reset(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        if !txn.mail_sent || txn.dest_done {
            return;
        }
        if let Some(dest) = self.dest.as_mut() {
            match dest.client.rset().await {
                Ok(r) if r.is_positive() => {}
                _ => self.dest = None,
            }
        }
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) -> Flow {
        if self.helo.is_none() {
            self.answer(Answer::BadSequence {
                hint: "send HELO/EHLO first",
            });
            return self.error();
        }
        if self.txn.is_some() {
            self.answer(Answer::NestedMail);
            return self.error();
        }
        if params.body == Some(Body::BinaryMime) {
            self.answer(Answer::UnsupportedBody);
            return self.error();
        }
        let max = self.ctx.config.server.max_message_size;
        if params.size.is_some_and(|s| s > max) {
            self.answer(Answer::DeclaredTooBig { max });
            return Flow::Continue;
        }
        if matches!(&from, ReversePath::Mailbox(m) if m.is_utf8()) && !params.smtputf8 {
            self.answer(Answer::Smtputf8Address);
            return Flow::Continue;
        }
        self.txn = Some(Transaction::new(from, params));
        self.answer(Answer::MailOk);
        Flow::Continue
    }

    async fn rcpt(&mut self, to: ForwardPath, params: RcptParams) -> Flow {
        let Some(txn) = self.txn.as_mut() else {
            self.answer(Answer::NeedMailFirst);
            return self.error();
        };
        let mailbox = match &to {
            ForwardPath::Postmaster => {
                self.answer(Answer::NoPostmaster);
                return Flow::Continue;
            }
            ForwardPath::Mailbox(m) => m.clone(),
        };
        if mailbox.is_utf8() && !txn.params.smtputf8 {
            self.answer(Answer::Smtputf8Address);
            return Flow::Continue;
        }
        if txn.rcpt_count >= self.ctx.config.server.max_recipients {
            self.answer(Answer::TooManyRecipients);
            return Flow::Continue;
        }
        let domain = domain_of(&mailbox);
        match &txn.domain {
            Some(first) if *first != domain => {
                let first = first.clone();
                self.answer(Answer::OtherDomain { first: &first });
                self.log_outcome(
                    &mailbox.to_string(),
                    &Outcome::answer(Answer::OtherDomain { first: &first }, "other_domain"),
                );
                return Flow::Continue;
            }
            Some(_) => {}
            None => txn.domain = Some(domain.clone()),
        }
        txn.rcpt_count += 1;
        match self.relay_rcpt(&domain, &to, &params).await {
            Ok(reply) => self.conn.queue(&reply),
            Err(f) => {
                let outcome = Outcome::failed(&f);
                if let Some(txn) = self.txn.as_mut() {
                    // A lost connection ends the transaction; a refused
                    // recipient does not.
                    if txn.failed.is_none() && !matches!(f, Failure::Remote { .. }) {
                        txn.failed = Some(f);
                    }
                }
                self.conn.queue(&outcome.reply);
                self.log_outcome(&mailbox.to_string(), &outcome);
            }
        }
        Flow::Continue
    }

    /// Sends one recipient to the destination (connecting and sending MAIL
    /// first when needed). Ok: the destination's positive reply.
    async fn relay_rcpt(
        &mut self,
        domain: &str,
        to: &ForwardPath,
        params: &RcptParams,
    ) -> Result<Reply, Failure> {
        if let Some(f) = self.txn.as_ref().and_then(|t| t.failed.clone()) {
            return Err(f);
        }
        let mail_sent = self.txn.as_ref().is_some_and(|t| t.mail_sent);
        if !mail_sent {
            if let Err(f) = self.start_transaction(domain).await {
                // Whatever stopped MAIL FROM stops every recipient of this
                // transaction: answer them alike, without asking again.
                if let Some(txn) = self.txn.as_mut() {
                    txn.failed = Some(f.clone());
                }
                return Err(f);
            }
        }
        let dest = self.dest.as_mut().expect("a transaction has a destination");
        match dest.client.rcpt(to, params).await {
            Ok(reply) if reply.is_positive() => {
                let rcpt = match to {
                    ForwardPath::Mailbox(m) => m.to_string(),
                    ForwardPath::Postmaster => "Postmaster".into(),
                };
                if let Some(txn) = self.txn.as_mut() {
                    txn.accepted.push(Accepted { rcpt });
                }
                Ok(relayed(Stage::Rcpt, reply))
            }
            Ok(reply) => {
                let f = Failure::remote(dest.client.peer(), Stage::Rcpt, reply.clone());
                if reply.code == 421 {
                    // The destination is closing the connection.
                    self.dest = None;
                    if let Some(txn) = self.txn.as_mut() {
                        txn.failed = Some(f.clone());
                    }
                }
                Err(f)
            }
            Err(e) => {
                self.dest = None;
                Err(Failure::Outbound(e))
            }
        }
    }

    /// Connects (or reuses the open conversation with `domain`) and sends
    /// MAIL FROM.
    async fn start_transaction(&mut self, domain: &str) -> Result<(), Failure> {
        let (from, params) = {
            let txn = self.txn.as_ref().expect("in a transaction");
            (txn.from.clone(), txn.params.clone())
        };
        let mut reuse = self
            .dest
            .as_ref()
            .is_some_and(|d| d.domain == domain && self.ctx.pool.reusable(d));
        if !reuse {
            if let Some(old) = self.dest.take() {
                // Idle between transactions: another session may use it
                // (the pool says QUIT to one past its reuse limit).
                self.ctx.pool.put(old).await;
            }
            if let Some(cached) = self.ctx.pool.take(domain) {
                self.dest = Some(cached);
                reuse = true;
            }
        }
        for attempt in 0..2 {
            if self.dest.is_none() {
                match connect::connect(&self.ctx, &self.id, domain).await {
                    Ok(d) => self.dest = Some(d),
                    Err(f) => {
                        // The summary line names the host that failed.
                        if let (Failure::Outbound(e), Some(txn)) = (&f, self.txn.as_mut()) {
                            txn.relay = Some((e.peer().clone(), "none".to_owned()));
                        }
                        return Err(f);
                    }
                }
            }
            let dest = self.dest.as_mut().expect("just connected");
            let txn = self.txn.as_mut().expect("in a transaction");
            txn.relay = Some((
                dest.client.peer().clone(),
                dest.client.tls_state().to_string(),
            ));
            if let Some(mismatch) = refusal(&params, dest.client.capabilities()) {
                return Err(Failure::Mismatch {
                    peer: dest.client.peer().clone(),
                    mismatch,
                });
            }
            match dest.client.mail(&from, &params).await {
                Ok(reply) if reply.is_positive() => {
                    self.txn.as_mut().expect("in a transaction").mail_sent = true;
                    return Ok(());
                }
                // A reused connection the server is closing: connect anew.
                Ok(reply) if reply.code == 421 && reuse && attempt == 0 => self.dest = None,
                Ok(reply) => return Err(Failure::remote(dest.client.peer(), Stage::Mail, reply)),
                // A reused connection may have been closed by the server
                // while idle: connect once more.
                Err(_) if reuse && attempt == 0 => self.dest = None,
                Err(e) => {
                    self.dest = None;
                    return Err(Failure::Outbound(e));
                }
            }
        }
        unreachable!("the second attempt always returns")
    }

    async fn data(&mut self) -> Flow {
        let Some(txn) = self.txn.as_ref() else {
            self.answer(Answer::NeedMailFirst);
            return self.error();
        };
        if !matches!(txn.body, Body2::NotStarted) {
            self.answer(Answer::BadSequence {
                hint: "DATA after BDAT",
            });
            return self.error();
        }
        if txn.accepted.is_empty() {
            self.answer(Answer::NoValidRecipients);
            self.reset().await;
            return Flow::Continue;
        }
        if let Some(f) = txn.failed.clone() {
            self.end_transaction(Outcome::failed(&f)).await;
            return Flow::Continue;
        }
        let dest = self.dest.as_mut().expect("recipients were accepted");
        match dest.client.data().await {
            Ok(r) if r.code == 354 => {}
            Ok(r) => {
                let f = Failure::remote(dest.client.peer(), Stage::DataInit, r);
                self.end_transaction(Outcome::failed(&f)).await;
                return Flow::Continue;
            }
            Err(e) => {
                self.dest = None;
                self.end_transaction(Outcome::failed(&Failure::Outbound(e)))
                    .await;
                return Flow::Continue;
            }
        }
        self.answer(Answer::StartData);
        self.stream_data().await
    }

    /// Streams the DATA content to the destination and answers the final
    /// dot with the destination's reply.
    async fn stream_data(&mut self) -> Flow {
        let max = self.ctx.config.server.max_message_size;
        let idle = self.idle();
        let mut decoder = DataDecoder::new();
        let mut out = BytesMut::with_capacity(32 * 1024);
        let mut failure: Option<Failure> = None;
        loop {
            let progress = decoder.feed(self.conn.buffered(), &mut out);
            self.conn.consume(progress.consumed);
            let refused = decoder.violation().is_some() || decoder.content_len() > max;
            if refused || failure.is_some() {
                // Drop the destination without an end of data: it must
                // not keep a message we did not accept.
                self.dest = None;
                out.clear();
            } else if !out.is_empty() {
                let dest = self.dest.as_mut().expect("data goes to a destination");
                if let Err(e) = dest.client.send_content(&out).await {
                    self.dest = None;
                    failure = Some(Failure::Outbound(e));
                }
                out.clear();
            }
            if progress.done {
                break;
            }
            if let Err(e) = self.conn.fill(idle).await {
                debug!(session = %self.id, "input ended in DATA: {e}");
                self.dest = None;
                self.input_failed(&e, "receiving message content");
                return Flow::Close;
            }
        }
        let reply = if let Some(v) = decoder.violation() {
            Outcome::answer(Answer::Violation(v), "message_refused")
        } else if decoder.content_len() > max {
            Outcome::answer(Answer::MessageTooBig { max }, "message_refused")
        } else if let Some(f) = failure {
            Outcome::failed(&f)
        } else {
            self.final_reply(b".\r\n").await
        };
        self.end_transaction(reply).await;
        Flow::Continue
    }

    /// Sends what ends the content and maps the destination's answer.
    async fn final_reply(&mut self, tail: &[u8]) -> Outcome {
        let dest = self.dest.as_mut().expect("data goes to a destination");
        let result = dest.client.end_data(tail).await;
        if let (Ok(_), Some(txn)) = (&result, self.txn.as_mut()) {
            txn.dest_done = true;
        }
        match result {
            Ok(r) if r.is_positive() => Outcome::relayed(Stage::DataDone, r),
            Ok(r) => Outcome::failed(&Failure::remote(dest.client.peer(), Stage::DataDone, r)),
            Err(e) => {
                self.dest = None;
                Outcome::failed(&Failure::Outbound(e))
            }
        }
    }

    async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let problem = match self.txn.as_ref() {
            None => Some(Answer::NeedMailFirst.reply()),
            Some(t) if t.accepted.is_empty() => Some(Answer::NoValidRecipients.reply()),
            Some(t) if matches!(t.body, Body2::Failed) => Some(Answer::ChunkAfterFailure.reply()),
            Some(t) => t.failed.as_ref().map(|f| Answer::Failed(f).reply()),
        };
        if let Some(reply) = problem {
            // The chunk's octets follow the command whatever we answer.
            if self.discard(size).await.is_err() {
                return Flow::Close;
            }
            // Recipients accepted before the connection was lost learn
            // their fate here, once (a failed chunk logged them already).
            let first_failure = self
                .txn
                .as_ref()
                .filter(|t| !matches!(t.body, Body2::Failed))
                .and_then(|t| t.failed.clone());
            if let Some(f) = first_failure {
                self.log_all(&Outcome::failed(&f));
            }
            self.conn.queue(&reply);
            if last {
                self.reset().await;
            } else if let Some(txn) = self.txn.as_mut() {
                // Later chunks of this message are read and refused.
                txn.body = Body2::Failed;
            }
            return Flow::Continue;
        }
        if let Err(reply) = self.bdat_begin().await {
            if self.discard(size).await.is_err() {
                return Flow::Close;
            }
            self.end_transaction(reply).await;
            return Flow::Continue;
        }
        self.bdat_chunk(size, last).await
    }

    /// First chunk: choose BDAT or conversion to DATA.
    async fn bdat_begin(&mut self) -> Result<(), Outcome> {
        let txn = self.txn.as_mut().expect("in a transaction");
        if !matches!(txn.body, Body2::NotStarted) {
            return Ok(());
        }
        let dest = self.dest.as_mut().expect("recipients were accepted");
        if dest.client.capabilities().chunking {
            txn.body = Body2::Bdat;
            return Ok(());
        }
        match dest.client.data().await {
            Ok(r) if r.code == 354 => {
                txn.body = Body2::Converted(DotStuffer::new());
                Ok(())
            }
            Ok(r) => Err(Outcome::failed(&Failure::remote(
                dest.client.peer(),
                Stage::DataInit,
                r,
            ))),
            Err(e) => {
                self.dest = None;
                Err(Outcome::failed(&Failure::Outbound(e)))
            }
        }
    }

    /// Relays one chunk of `size` octets.
    async fn bdat_chunk(&mut self, size: u64, last: bool) -> Flow {
        let max = self.ctx.config.server.max_message_size;
        let idle = self.idle();
        let txn = self.txn.as_mut().expect("in a transaction");
        txn.size += size;
        let too_big = txn.size > max;
        let bdat_mode = matches!(txn.body, Body2::Bdat);
        let mut failure: Option<Failure> = None;
        if too_big {
            self.dest = None;
        } else if bdat_mode {
            let dest = self.dest.as_mut().expect("destination");
            if let Err(e) = dest.client.bdat_start(size, last).await {
                self.dest = None;
                failure = Some(Failure::Outbound(e));
            }
        }
        let mut remaining = size;
        let mut out = BytesMut::new();
        while remaining > 0 {
            if self.conn.buffered().is_empty() {
                if let Err(e) = self.conn.fill(idle).await {
                    debug!(session = %self.id, "input ended in BDAT: {e}");
                    self.dest = None;
                    self.input_failed(&e, "receiving a BDAT chunk");
                    return Flow::Close;
                }
            }
            let n = (self.conn.buffered().len() as u64).min(remaining) as usize;
            if failure.is_none() && !too_big {
                let piece = &self.conn.buffered()[..n];
                let txn = self.txn.as_mut().expect("in a transaction");
                let bytes: &[u8] = match &mut txn.body {
                    Body2::Converted(stuffer) => {
                        out.clear();
                        stuffer.encode(piece, &mut out);
                        &out
                    }
                    _ => piece,
                };
                let dest = self.dest.as_mut().expect("destination");
                if let Err(e) = dest.client.send_content(bytes).await {
                    self.dest = None;
                    failure = Some(Failure::Outbound(e));
                }
            }
            self.conn.consume(n);
            remaining -= n as u64;
        }
        let outcome = if too_big {
            Outcome::answer(Answer::MessageTooBig { max }, "message_refused")
        } else if let Some(f) = failure {
            Outcome::failed(&f)
        } else {
            self.bdat_reply(last).await
        };
        if last || !outcome.reply.is_positive() {
            if !last {
                // The client may still send the remaining chunks: read
                // and refuse them until LAST.
                if let Some(txn) = self.txn.as_mut() {
                    txn.body = Body2::Failed;
                }
                self.log_all(&outcome);
                self.conn.queue(&outcome.reply);
                return Flow::Continue;
            }
            self.end_transaction(outcome).await;
        } else {
            self.conn.queue(&outcome.reply);
        }
        Flow::Continue
    }

    async fn bdat_reply(&mut self, last: bool) -> Outcome {
        let txn = self.txn.as_mut().expect("in a transaction");
        match &mut txn.body {
            Body2::Converted(stuffer) => {
                if !last {
                    return Outcome::answer(Answer::ChunkOk { size: txn.size }, "none");
                }
                let mut tail = BytesMut::new();
                stuffer.finish(&mut tail);
                self.final_reply(&tail).await
            }
            _ => {
                let dest = self.dest.as_mut().expect("destination");
                let result = dest.client.bdat_reply().await;
                if last && result.is_ok() {
                    txn.dest_done = true;
                }
                match result {
                    Ok(r) if r.is_positive() => Outcome::relayed(Stage::Bdat, r),
                    Ok(r) => Outcome::failed(&Failure::remote(dest.client.peer(), Stage::Bdat, r)),
                    Err(e) => {
                        self.dest = None;
                        Outcome::failed(&Failure::Outbound(e))
                    }
                }
            }
        }
    }

    /// Reads and drops `size` octets of a chunk we refuse.
    async fn discard(&mut self, size: u64) -> Result<(), InputError> {
        let idle = self.idle();
        let mut remaining = size;
        while remaining > 0 {
            if self.conn.buffered().is_empty() {
                if let Err(e) = self.conn.fill(idle).await {
                    self.dest = None;
                    self.input_failed(&e, "receiving a BDAT chunk");
                    return Err(e);
                }
            }
            let n = (self.conn.buffered().len() as u64).min(remaining) as usize;
            self.conn.consume(n);
            remaining -= n as u64;
        }
        Ok(())
    }

    /// Answers the end of a transaction, logs every recipient's outcome and
    /// leaves the destination ready for the next one.
    async fn end_transaction(&mut self, outcome: Outcome) {
        self.log_all(&outcome);
        if let Some(txn) = &self.txn {
            metrics::global().transaction(outcome_word(&outcome.reply), txn.started.elapsed());
        }
        self.conn.queue(&outcome.reply);
        self.reset().await;
    }

    fn log_all(&self, outcome: &Outcome) {
        if let Some(txn) = &self.txn {
            for a in &txn.accepted {
                self.log_outcome(&a.rcpt, outcome);
            }
        }
    }

    /// Input stopped inside a transaction: a silent client is told why it
    /// is disconnected, and every accepted recipient stays with the client.
    fn input_failed(&mut self, e: &InputError, stage: &str) {
        if matches!(e, InputError::Timeout) {
            self.answer(Answer::IdleTimeout);
        }
        self.client_gone(stage);
    }

    /// The client vanished: every accepted recipient stays with it.
    fn client_gone(&mut self, stage: &str) {
        if let Some(txn) = self.txn.take() {
            let text = format!("client disconnected while {stage}; nothing delivered");
            for a in &txn.accepted {
                metrics::global().recipient("abandoned", "client_gone");
                info!(
                    session = %self.id,
                    client = %self.client.ip(),
                    from = %format!("<{}>", txn.from),
                    to = %format!("<{}>", a.rcpt),
                    status = "none",
                    "{text}"
                );
            }
        }
    }

    /// The per-recipient summary line.
    fn log_outcome(&self, rcpt: &str, outcome: &Outcome) {
        let Some(txn) = &self.txn else { return };
        let reply = &outcome.reply;
        let (relay, tls) = match &txn.relay {
            Some((peer, tls)) => (peer.to_string(), tls.clone()),
            None => ("none".to_owned(), "none".to_owned()),
        };
        let tls = format!("{tls}{}", connect::test_note(&self.ctx));
        let word = outcome_word(reply);
        metrics::global().recipient(word, outcome.reason);
        info!(
            session = %self.id,
            client = %self.client.ip(),
            from = %format!("<{}>", txn.from),
            to = %format!("<{rcpt}>"),
            relay = %relay,
            tls = %tls,
            delay = %format!("{:.2}", txn.started.elapsed().as_secs_f64()),
            status = %reply,
            "{word}"
        );
    }
}

/// delivered (2xx), deferred (4xx) or rejected (5xx).
fn outcome_word(reply: &Reply) -> &'static str {
    if reply.is_positive() {
        "delivered"
    } else if reply.is_transient() {
        "deferred"
    } else {
        "rejected"
    }
}

/// The destination domain of a recipient: lowercase, no trailing dot.
fn domain_of(m: &Mailbox) -> String {
    m.domain.trim_end_matches('.').to_lowercase()
}
