//! Mailed reports travel through danegate's own outbound path
//! ([`mail`]), so they are protected by DANE and MTA-STS like any other
//! mail where the domain has them (HTTPS: `live::post`).
//!
//! RFC 8460 §3 says a sender "MUST deliver reports despite any
//! TLS-related failures" (the report may be about exactly those) "and
//! SHOULD NOT include this SMTP session in the next report": a report is
//! delivered as in test mode (DANE verified where it works, the best
//! connection available where it does not, every shortfall logged) and
//! its session is not recorded.

use std::sync::Arc;

use bytes::BytesMut;

use crate::outbound::connect::connect;
use crate::outbound::stage::Verdict;
use crate::outbound::transaction::DataAnswer;
use crate::outbound::Context;
use crate::policy::Mode;
use crate::smtp::command::{ForwardPath, MailParams, Mailbox, RcptParams, ReversePath};
use crate::smtp::data::DotStuffer;
use crate::tlsrpt::Discard;

/// A Context for report mail: the relay's, in test mode, recording
/// nothing.
fn report_context(ctx: &Context) -> Context {
    let mut config = (*ctx.config).clone();
    config.policy.mode = Mode::Test;
    Context {
        tlsrpt: Arc::new(Discard),
        ..Context::with_sts(config, ctx.resolver.clone(), ctx.sts.clone())
    }
}

fn mailbox(address: &str) -> Result<Mailbox, String> {
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(Mailbox {
            local: local.to_owned(),
            domain: domain.to_owned(),
        }),
        _ => Err(format!("{address:?} is not an address")),
    }
}

/// Mails `message` (CRLF lines) from `from` to `to` through the outbound
/// path of `ctx`. Ok: the destination's reply to the end of data.
pub async fn mail(ctx: &Context, from: &str, to: &str, message: &[u8]) -> Result<String, String> {
    let rcpt = mailbox(to)?;
    let sender = mailbox(from)?;
    let ctx = report_context(ctx);
    let dest = connect(&ctx, "tlsrpt", &rcpt.domain.to_ascii_lowercase())
        .await
        .map_err(|f| f.reply().to_string())?;
    let mut env = dest
        .client
        .start(&ReversePath::Mailbox(sender), &MailParams::default());
    env.rcpt(&ForwardPath::Mailbox(rcpt), &RcptParams::default());
    env.data();
    for _ in 0..2 {
        let a = env.next_reply().await.map_err(|e| e.to_string())?;
        if a.verdict != Verdict::Positive {
            env.quit().await;
            return Err(format!("{} said: {}", dest.domain, a.reply));
        }
    }
    let mut content = match env.data_reply().await.map_err(|e| e.to_string())? {
        DataAnswer::GoAhead(c) => c,
        DataAnswer::Refused(env, reply) => {
            env.quit().await;
            return Err(format!("{} said: {reply}", dest.domain));
        }
    };
    let mut stuffer = DotStuffer::new();
    let mut body = BytesMut::with_capacity(message.len() + 64);
    stuffer.encode(message, &mut body);
    let mut tail = BytesMut::new();
    stuffer.finish(&mut tail);
    content.send(&body).await.map_err(|e| e.to_string())?;
    let done = content.finish(&tail).await.map_err(|e| e.to_string())?;
    if let Some(client) = done.client {
        client.quit().await;
    }
    match done.verdict {
        Verdict::Positive => Ok(done.reply.to_string()),
        _ => Err(format!("{} said: {}", dest.domain, done.reply)),
    }
}
