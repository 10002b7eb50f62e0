//! One inbound SMTP session (RFC 5321 server side): the command loop and
//! the commands that stand outside a transaction.
//!
//! A transaction (MAIL FROM to its final reply) is a `Transaction`,
//! which owns the destination conversation while it lasts; between
//! transactions the session keeps that conversation idle for its next
//! transaction to the same domain, and hands it to the connection cache
//! when it ends. Replies come from `answer`; this module never writes a
//! reply literal.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::debug;

use super::answer::Answer;
use super::connection::{Connection, Framed, InputError};
use super::env::Env;
use super::transaction::{Next, Transaction};
use crate::outbound::pool::Destination;
use crate::outbound::stage::Stage;
use crate::outbound::Context;
use crate::smtp::command::{parse_command, Body, Command, MailParams, ReversePath};

/// Errors after which the session is closed (Postfix's
/// `smtpd_hard_error_limit`).
const MAX_ERRORS: u32 = 20;

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
    txn: Option<Box<Transaction>>,
    /// The destination conversation kept between this session's
    /// transactions, ready for MAIL FROM.
    idle: Option<Destination>,
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
            idle: None,
            errors: 0,
            shutdown,
        }
    }

    fn env(&mut self) -> Env<'_, S> {
        Env::new(
            &mut self.conn,
            &self.ctx,
            &self.id,
            self.client,
            &mut self.idle,
            &mut self.errors,
        )
    }

    fn answer(&mut self, a: Answer<'_>) {
        self.conn.queue(&a.reply());
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
            if !self.conn.has_line() {
                // About to wait for the client, who may be waiting for
                // replies to commands we pipelined: give them first.
                // Boxed like a command (see below), and only when
                // something is owed: most waits have nothing to settle.
                if self.txn.as_ref().is_some_and(|t| t.owes()) {
                    Box::pin(self.settle()).await;
                }
                self.no_reply_left_behind();
            }
            let idle = Stage::InboundCommand.timeout(&self.ctx.timeouts);
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
                // Boxed: a command's future (relaying, connecting, the
                // content) is many KiB, and kept inline it would make every
                // idle session's task that big.
                Ok(Framed::Line(line)) => Box::pin(self.line(&line)).await,
                Ok(Framed::TooLong) => {
                    self.answer(Answer::LineTooLong);
                    self.errors += 1;
                    Flow::Continue
                }
                Err(InputError::Timeout) => {
                    self.answer(Answer::IdleTimeout);
                    self.gone(Stage::InboundCommand);
                    Flow::Close
                }
                Err(e) => {
                    debug!(session = %self.id, "input ended: {e}");
                    self.gone(Stage::InboundCommand);
                    Flow::Close
                }
            };
            if let Flow::Close = flow {
                break;
            }
            if self.errors >= MAX_ERRORS {
                self.answer(Answer::TooManyErrors);
                self.gone(Stage::InboundCommand);
                break;
            }
        }
        Box::pin(self.finish()).await
    }

    /// Reads the replies the destination owes for pipelined commands.
    async fn settle(&mut self) {
        if let Some(mut txn) = self.txn.take() {
            txn.settle(&mut self.env()).await;
            self.txn = Some(txn);
        }
    }

    /// Every reply the client waits for is known once the destination's
    /// owed replies are read. Should one not be (a bug), the client gets
    /// a 451 in its place rather than waiting for ever.
    fn no_reply_left_behind(&mut self) {
        if self.conn.holding() {
            let n = self.conn.abandon_slots(&Answer::LocalError.reply());
            if n > 0 {
                tracing::error!(session = %self.id, "{n} replies were still unknown before waiting for the client (bug); answered 451 4.3.0");
            }
        }
    }

    /// The client is gone (or being sent away) mid-transaction.
    fn gone(&mut self, stage: Stage) {
        if let Some(txn) = self.txn.take() {
            txn.client_gone(&self.env(), stage);
        }
    }

    async fn finish(mut self) {
        if let Some(d) = self.idle.take() {
            // Between transactions and quiet: the next session's
            // transaction to the same domain may use it.
            self.ctx.pool.put(d).await;
        }
        let limit = Stage::InboundCommand.timeout(&self.ctx.timeouts);
        self.conn.close(limit).await;
    }

    async fn line(&mut self, line: &[u8]) -> Flow {
        match parse_command(line) {
            Ok(cmd) => self.command(cmd).await,
            Err(e) => {
                self.answer(Answer::Command(&e));
                self.errors += 1;
                Flow::Continue
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
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => {
                let Some(t) = self.txn_or_refuse() else {
                    return Flow::Continue;
                };
                let next = t.rcpt(&mut self.env(), to, params).await;
                return self.after(next);
            }
            Command::Data => {
                let Some(t) = self.txn_or_refuse() else {
                    return Flow::Continue;
                };
                let next = t.data(&mut self.env()).await;
                return self.after(next);
            }
            Command::Bdat { size, last } => {
                let Some(t) = self.txn.take() else {
                    // The chunk's octets follow whatever the answer.
                    return self.bdat_without_mail(size).await;
                };
                let next = t.bdat(&mut self.env(), size, last).await;
                return self.after(next);
            }
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
            Command::StartTls => self.refuse(Answer::NotImplemented {
                command: "STARTTLS",
            }),
            Command::Auth => self.refuse(Answer::NotImplemented { command: "AUTH" }),
        }
        Flow::Continue
    }

    fn refuse(&mut self, a: Answer<'_>) {
        self.answer(a);
        self.errors += 1;
    }

    /// The transaction a command belongs to; without one the command is
    /// refused (503 need MAIL first).
    fn txn_or_refuse(&mut self) -> Option<Box<Transaction>> {
        let txn = self.txn.take();
        if txn.is_none() {
            self.refuse(Answer::NeedMailFirst);
        }
        txn
    }

    fn after(&mut self, next: Next) -> Flow {
        match next {
            Next::Keep(t) => {
                self.txn = Some(t);
                Flow::Continue
            }
            Next::Ended => Flow::Continue,
            Next::Close => Flow::Close,
        }
    }

    /// Ends the transaction, if any, and tells the destination to forget
    /// it.
    async fn reset(&mut self) {
        if let Some(txn) = self.txn.take() {
            txn.reset(&mut self.env()).await;
        }
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) {
        if self.helo.is_none() {
            return self.refuse(Answer::BadSequence {
                hint: "send HELO/EHLO first",
            });
        }
        if self.txn.is_some() {
            return self.refuse(Answer::NestedMail);
        }
        if params.body == Some(Body::BinaryMime) {
            return self.refuse(Answer::UnsupportedBody);
        }
        let max = self.ctx.config.server.max_message_size;
        if params.size.is_some_and(|s| s > max) {
            return self.answer(Answer::DeclaredTooBig { max });
        }
        if matches!(&from, ReversePath::Mailbox(m) if m.is_utf8()) && !params.smtputf8 {
            return self.answer(Answer::Smtputf8Address);
        }
        self.txn = Some(Box::new(Transaction::new(from, params)));
        self.answer(Answer::MailOk);
    }

    /// BDAT outside a transaction: its octets are read and dropped.
    async fn bdat_without_mail(&mut self, size: u64) -> Flow {
        let idle = Stage::InboundCommand.timeout(&self.ctx.timeouts);
        let sink = super::content::ChunkSink::Discard;
        if super::content::relay_chunk(&mut self.conn, size, sink, idle)
            .await
            .is_err()
        {
            return Flow::Close;
        }
        self.refuse(Answer::NeedMailFirst);
        Flow::Continue
    }
}
