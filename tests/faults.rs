//! A randomised fault-injection run (issue 6): 1,000 messages through a
//! real danegate [`Server`] on loopback to destinations that each misbehave
//! in one way (reset during DATA, reset instead of the final reply, stall
//! past `data_done`, 4xx to RCPT, DATA or the final dot, refuse the
//! greeting) or behave. A client retries every message that got anything
//! but 250 (as the legacy MTA's queue would) until each is delivered.
//!
//! The invariant checked at the end: every 250 the client got stands for
//! exactly one complete, byte-identical copy at a destination that said
//! 250, and every copy a destination acknowledged got its 250 to the
//! client. Copies a destination received completely but never
//! acknowledged (its final reply lost: reset or stall after the dot) are
//! the duplicates RFC 5321 §6.1 allows; they are counted and printed.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use danegate::server::Server;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

const MESSAGES: usize = 1000;
const CLIENTS: usize = 25;

/// What a destination answers to a complete message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// 250.
    Yes,
    /// Nothing: it resets or stalls after the dot (the lost final reply).
    Lost,
    /// 4xx: the destination did not take it.
    Refused,
}

/// How each destination behaves, and what it answers a complete message.
fn scripts() -> Vec<(DestScript, Ack)> {
    let base = DestScript {
        starttls: false,
        ..DestScript::default()
    };
    vec![
        (base.clone(), Ack::Yes),
        (base.clone(), Ack::Yes),
        (
            DestScript {
                close_during_data_after: Some(1500),
                ..base.clone()
            },
            Ack::Yes,
        ),
        (
            DestScript {
                end_of_data: EndOfData::Close,
                ..base.clone()
            },
            Ack::Lost,
        ),
        (
            DestScript {
                // Never opened: the final reply never comes.
                hold: Some(Gate::new()),
                ..base.clone()
            },
            Ack::Lost,
        ),
        (
            DestScript {
                rcpt_reply: "450 4.2.0 Mailbox busy".into(),
                ..base.clone()
            },
            Ack::Yes,
        ),
        (
            DestScript {
                data_reply: "451 4.3.0 Not now".into(),
                ..base.clone()
            },
            Ack::Yes,
        ),
        (
            DestScript {
                end_of_data: EndOfData::Reply("451 4.3.0 Try again later".into()),
                ..base.clone()
            },
            Ack::Refused,
        ),
        (
            DestScript {
                greeting: "421 4.3.2 Service not available".into(),
                ..base.clone()
            },
            Ack::Yes,
        ),
    ]
}

/// The content of message `id` (wire form, without the final dot): a
/// size between a few octets and about 30 KiB, so that many pass the reset
/// point of the destination that resets during DATA.
fn content(id: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(id as u64);
    let mut c = format!("Subject: message {id}\r\n\r\n").into_bytes();
    for _ in 0..rng.gen_range(0..500) {
        let n = rng.gen_range(0..60);
        c.extend((0..n).map(|_| rng.gen_range(b'a'..=b'z')));
        c.extend_from_slice(b"\r\n");
    }
    c
}

/// The message id in a content's subject line.
fn id_of(bytes: &[u8]) -> Option<usize> {
    let rest = bytes.strip_prefix(b"Subject: message ")?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Sends `line` (if any) and reads a reply: true when it starts with
/// `want`.
async fn say(c: &mut SmtpClient<TcpStream>, line: Option<&[u8]>, want: &str) -> bool {
    if let Some(l) = line {
        c.send(l).await;
    }
    matches!(c.reply_within(Duration::from_secs(10)).await, Ok(r) if r.starts_with(want))
}

/// One attempt to send message `id` to domain `d<dest>.test`; true when
/// the client got 250 for it. Any other reply, or a lost connection,
/// makes the client give up this attempt (and retry later).
async fn attempt(addr: SocketAddr, id: usize, dest: usize) -> bool {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return false;
    };
    let mut c = SmtpClient::new(tcp);
    let ok = say(&mut c, None, "220 ").await
        && say(&mut c, Some(b"EHLO legacy.test\r\n"), "250-").await
        && say(&mut c, Some(b"MAIL FROM:<sender@legacy.test>\r\n"), "250 ").await
        && say(
            &mut c,
            Some(format!("RCPT TO:<m{id}@d{dest}.test>\r\n").as_bytes()),
            "250 ",
        )
        .await
        && say(&mut c, Some(b"DATA\r\n"), "354 ").await;
    if !ok {
        return false;
    }
    // The final dot comes a moment after the content, as from a real
    // MTA writing a large message, so that a destination resetting during
    // DATA meets the content without its end.
    c.send(content(id)).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let delivered = say(&mut c, Some(b".\r\n"), "250 ").await;
    let _ = say(&mut c, Some(b"QUIT\r\n"), "221 ").await;
    delivered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_message_is_delivered_exactly_once() {
    let scripts = scripts();
    let mut dests = Vec::new();
    let mut cfg = ConfigBuilder::new()
        .timeout("data_done", 1)
        .timeout("inbound_idle", 30);
    for (i, (script, _)) in scripts.iter().enumerate() {
        let d = FakeDest::start(script.clone()).await;
        cfg = cfg.route(&format!("d{i}.test"), &d.route());
        dests.push(d);
    }
    let ctx = cfg.context(&Arc::new(TableResolver::new()));
    let server = Server::bind(ctx).await.expect("bind");
    let addr = server.local_addrs()[0];
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // Healthy destinations have weight 4, the others 1.
    let weights: Vec<usize> = scripts
        .iter()
        .enumerate()
        .map(|(i, _)| if i < 2 { 4 } else { 1 })
        .collect();
    let total: usize = weights.iter().sum();
    let queue = Arc::new(Mutex::new((0..MESSAGES).collect::<Vec<_>>()));
    // Per message: the destinations of the attempts the client got 250 for.
    let acked: Arc<Mutex<HashMap<usize, Vec<usize>>>> = Arc::default();
    let attempts = Arc::new(Mutex::new(0usize));
    let mut clients = JoinSet::new();
    for worker in 0..CLIENTS {
        let (queue, acked, attempts, weights) = (
            queue.clone(),
            acked.clone(),
            attempts.clone(),
            weights.clone(),
        );
        clients.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + worker as u64);
            loop {
                let Some(id) = queue.lock().unwrap().pop() else {
                    return;
                };
                loop {
                    let mut pick = rng.gen_range(0..total);
                    let mut dest = 0;
                    while pick >= weights[dest] {
                        pick -= weights[dest];
                        dest += 1;
                    }
                    *attempts.lock().unwrap() += 1;
                    if attempt(addr, id, dest).await {
                        acked.lock().unwrap().entry(id).or_default().push(dest);
                        break;
                    }
                }
            }
        });
    }
    let run = async {
        while let Some(r) = clients.join_next().await {
            r.expect("a client task panicked");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ended within 60 s");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stopped")
        .expect("the server did not panic");

    // What the destinations hold: per message id, complete copies at
    // destinations that acknowledge, and at those that never do.
    let mut acknowledged: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut lost: HashMap<usize, usize> = HashMap::new();
    let mut refused = 0;
    let mut incomplete = 0;
    for (i, d) in dests.iter().enumerate() {
        for conn in d.conns() {
            for m in &conn.messages {
                let (bytes, terminated) = m.data();
                if !terminated {
                    incomplete += 1;
                    continue;
                }
                let id = id_of(bytes).expect("a message of this run");
                assert_eq!(bytes, &content(id)[..], "message {id} altered at d{i}");
                match scripts[i].1 {
                    Ack::Yes => acknowledged.entry(id).or_default().push(i),
                    Ack::Lost => *lost.entry(id).or_default() += 1,
                    Ack::Refused => refused += 1,
                }
            }
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        MESSAGES,
        "every message was delivered in the end"
    );
    for id in 0..MESSAGES {
        let mut client = acked[&id].clone();
        let mut dest = acknowledged.get(&id).cloned().unwrap_or_default();
        client.sort();
        dest.sort();
        assert_eq!(
            client, dest,
            "message {id}: destinations of the client's 250s vs complete acknowledged copies"
        );
        assert_eq!(client.len(), 1, "message {id} acknowledged once");
    }
    let duplicates: usize = lost.values().sum();
    println!(
        "faults: {MESSAGES} messages, {} attempts; at the destinations: {MESSAGES} acknowledged \
         copies, {incomplete} incomplete copies (no end of data), {refused} complete copies \
         refused 4xx, {duplicates} complete copies whose final reply was lost (possible \
         duplicates, RFC 5321 section 6.1) for {} messages",
        attempts.lock().unwrap(),
        lost.len()
    );
}
