//! Every octet written reaches the destination before danegate waits for
//! its reply, over a transport that holds written bytes until it is
//! flushed. TLS is such a transport: tokio-rustls accepts plaintext into
//! rustls's buffer and returns once the socket would block, so the last
//! records of a write can stay buffered ("it does not guarantee the final
//! data to be sent"). A conversation that then waited for the reply to the
//! end of data would wait for ever, and so would the destination: the
//! benchmark met this with 10 MB messages through a full socket.
//!
//! [`Holding`] makes that case certain instead of rare: it passes on
//! written bytes only when 4 KiB have gathered or on flush.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use common::bounded;
use danegate::config::Timeouts;
use danegate::outbound::client::{Client, Hello, TlsMode};
use danegate::outbound::error::Peer;
use danegate::outbound::stage::Verdict;
use danegate::outbound::transaction::DataAnswer;
use danegate::smtp::command::{parse_command, Command};
use danegate::tls::config::opportunistic_config;
use danegate::tls::stream::Connector;
use danegate::tls_version::TlsVersion;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::io::{DuplexStream, ReadBuf};
use tokio::sync::oneshot;

/// Bytes written are held until 4 KiB have gathered (then passed on) or
/// until flush.
struct Holding {
    inner: DuplexStream,
    held: Vec<u8>,
}

const HOLD: usize = 4096;

impl Holding {
    /// Passes held bytes on until fewer than `keep` remain.
    fn drain(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<std::io::Result<()>> {
        while self.held.len() > keep {
            match Pin::new(&mut self.inner).poll_write(cx, &self.held) {
                Poll::Ready(Ok(n)) => {
                    self.held.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Holding {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() >= HOLD {
            std::task::ready!(this.drain(cx, HOLD - 1))?;
        }
        let n = buf.len().min(HOLD - this.held.len());
        this.held.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.drain(cx, 0))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.drain(cx, 0))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Holding {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

/// A destination offering PIPELINING and CHUNKING; sends back the
/// content of the first message (DATA: as received, up to the final dot;
/// BDAT: the chunks joined).
async fn destination(io: DuplexStream, got: oneshot::Sender<Vec<u8>>) {
    let mut io = BufReader::new(io);
    let mut content = Vec::new();
    let mut got = Some(got);
    io.write_all(b"220 dest.test ESMTP\r\n").await.unwrap();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.unwrap() == 0 {
            return;
        }
        let reply: &[u8] = match parse_command(line.trim_end().as_bytes()) {
            Ok(Command::Ehlo { .. }) => b"250-dest.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
            Ok(Command::Mail { .. }) => b"250 2.1.0 Ok\r\n",
            Ok(Command::Rcpt { .. }) => b"250 2.1.5 Ok\r\n",
            Ok(Command::Data) => {
                io.write_all(b"354 go ahead\r\n").await.unwrap();
                while !content.ends_with(b"\r\n.\r\n") {
                    let mut l = Vec::new();
                    if io.read_until(b'\n', &mut l).await.unwrap() == 0 {
                        return;
                    }
                    content.extend_from_slice(&l);
                }
                content.truncate(content.len() - 3);
                b"250 2.0.0 queued\r\n"
            }
            Ok(Command::Bdat { size, last }) => {
                let mut chunk = vec![0; size as usize];
                io.read_exact(&mut chunk).await.unwrap();
                content.extend_from_slice(&chunk);
                if last {
                    b"250 2.0.0 queued\r\n"
                } else {
                    b"250 2.0.0 chunk stored\r\n"
                }
            }
            Ok(Command::Quit) => {
                io.write_all(b"221 2.0.0 bye\r\n").await.unwrap();
                return;
            }
            _ => b"502 5.5.2 not here\r\n",
        };
        io.write_all(reply).await.unwrap();
        if reply.starts_with(b"250 2.0.0 queued") {
            if let Some(tx) = got.take() {
                let _ = tx.send(std::mem::take(&mut content));
            }
        }
    }
}

/// A conversation with [`destination`] over [`Holding`], ready for MAIL.
async fn open() -> (Client<Holding>, oneshot::Receiver<Vec<u8>>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (tx, rx) = oneshot::channel();
    tokio::spawn(destination(theirs, tx));
    let hello = Hello {
        hostname: "relay.test".to_owned(),
        tls_config: Connector::primary(opportunistic_config(TlsVersion::Tls1_2)),
        sni: None,
        tls: TlsMode::Off,
        timeouts: Arc::new(Timeouts::default()),
    };
    let peer = Peer {
        host: "dest.test".to_owned(),
        addr: "127.0.0.1:25".parse().unwrap(),
    };
    let holding = Holding {
        inner: ours,
        held: Vec::new(),
    };
    let client = bounded("the greeting and EHLO", Client::open(holding, peer, &hello))
        .await
        .expect("a conversation");
    (client, rx)
}

fn envelope(client: Client<Holding>) -> danegate::outbound::transaction::Envelope<Holding> {
    let Ok(Command::Mail { from, params }) = parse_command(b"MAIL FROM:<a@legacy.test>") else {
        unreachable!()
    };
    let Ok(Command::Rcpt { to, params: rp }) = parse_command(b"RCPT TO:<b@dest.test>") else {
        unreachable!()
    };
    let mut env = client.start(&from, &params);
    env.rcpt(&to, &rp);
    env
}

#[tokio::test]
async fn the_end_of_data_is_flushed_before_its_reply_is_awaited() {
    let (client, got) = open().await;
    let mut env = envelope(client);
    env.data();
    for _ in 0..2 {
        assert_eq!(
            bounded("the replies to MAIL and RCPT", env.next_reply())
                .await
                .unwrap()
                .verdict,
            Verdict::Positive
        );
    }
    let DataAnswer::GoAhead(mut content) = bounded("the reply to DATA", env.data_reply())
        .await
        .unwrap()
    else {
        panic!("DATA refused")
    };
    // More than one hold's worth, then a small tail: the tail stays held
    // unless the wire flushes it.
    let body = [b"x".repeat(70), b"\r\n".to_vec()].concat().repeat(100);
    content.send(&body).await.unwrap();
    let finished = bounded(
        "the reply to the final dot (bytes held back?)",
        content.finish(b"tail\r\n.\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(finished.reply.to_string(), "250 2.0.0 queued");
    assert_eq!(got.await.unwrap(), [body, b"tail\r\n".to_vec()].concat());
}

#[tokio::test]
async fn bdat_last_is_flushed_before_its_reply_is_awaited() {
    let (client, got) = open().await;
    let mut chunks = envelope(client).chunks();
    let first = b"y".repeat(5000);
    chunks.begin(first.len() as u64, false);
    chunks.send(&first).await.unwrap();
    chunks.begin(5, true);
    chunks.send(b"last!").await.unwrap();
    let finished = bounded(
        "the reply to BDAT LAST (bytes held back?)",
        chunks.finish_all(),
    )
    .await
    .unwrap();
    assert_eq!(finished.reply.to_string(), "250 2.0.0 queued");
    assert_eq!(got.await.unwrap(), [first, b"last!".to_vec()].concat());
}
