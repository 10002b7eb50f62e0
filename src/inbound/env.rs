//! What a transaction may use of its session while it handles a command:
//! the client's connection (for replies and content), the shared context,
//! the conversation the session keeps between transactions, and the error
//! count. The session lends it; the transaction never sees the session.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tracing::debug;

use super::answer::Answer;
use super::connection::{Connection, InputError};
use super::summary::Who;
use crate::outbound::client::Client;
use crate::outbound::connect;
use crate::outbound::pool::Destination;
use crate::outbound::stage::Stage;
use crate::outbound::transaction::Envelope;
use crate::outbound::Context;

/// What a transaction may use of its session while it handles a command.
pub struct Env<'a, S> {
    pub conn: &'a mut Connection<S>,
    pub ctx: &'a Context,
    pub id: &'a str,
    client: SocketAddr,
    idle: &'a mut Option<Destination>,
    errors: &'a mut u32,
}

impl<'a, S> Env<'a, S> {
    pub fn new(
        conn: &'a mut Connection<S>,
        ctx: &'a Context,
        id: &'a str,
        client: SocketAddr,
        idle: &'a mut Option<Destination>,
        errors: &'a mut u32,
    ) -> Self {
        Env {
            conn,
            ctx,
            id,
            client,
            idle,
            errors,
        }
    }
}

impl<S> Env<'_, S> {
    pub fn answer(&mut self, a: Answer<'_>) {
        self.conn.queue(&a.reply());
    }

    /// Answers a command that should not have come (it counts towards the
    /// error limit).
    pub fn refuse(&mut self, a: Answer<'_>) {
        self.answer(a);
        *self.errors += 1;
    }

    /// How long the client may stay silent.
    pub fn idle_limit(&self) -> Duration {
        Stage::InboundCommand.timeout(&self.ctx.timeouts)
    }

    /// Input stopped inside a transaction: a silent client is told why it
    /// is disconnected.
    pub fn input_failed(&mut self, e: &InputError) {
        debug!(session = %self.id, "input ended in a transaction: {e}");
        if matches!(e, InputError::Timeout) {
            self.answer(Answer::IdleTimeout);
        }
    }

    pub fn who(&self) -> Who<'_> {
        Who {
            session: self.id,
            client: self.client,
            note: connect::test_note(self.ctx),
        }
    }

    /// A quiet conversation for `domain` to reuse: this session's idle one
    /// when it goes there, else one from the cache (this session's idle
    /// one, going elsewhere, goes to the cache).
    pub async fn reuse(&mut self, domain: &str) -> Option<Client<TcpStream>> {
        if let Some(mut d) = self.idle.take() {
            if d.domain == domain && self.ctx.pool.reusable(&d.client) && d.client.is_clean().await
            {
                return Some(d.client);
            }
            self.ctx.pool.put(d).await;
        }
        self.ctx.pool.take(domain).await.map(|d| d.client)
    }

    /// Keeps a conversation the destination gave back for this session's
    /// next transaction (one kept before goes to the cache).
    pub fn keep_idle(&mut self, domain: &str, client: Client<TcpStream>) {
        let before = self.idle.replace(Destination {
            domain: domain.to_owned(),
            client,
        });
        if let Some(d) = before {
            let pool = self.ctx.pool.clone();
            tokio::spawn(async move { pool.put(d).await });
        }
    }

    /// Ends an abandoned envelope politely in the background (QUIT is
    /// allowed outside the content), bounded by the QUIT timeout.
    pub fn spawn_quit(&self, e: Envelope<TcpStream>) {
        tokio::spawn(e.quit());
    }
}
