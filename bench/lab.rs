//! The benchmark's fixtures (run by `bench/run`, not by hand): the DNS lab
//! of `integration/dnslab/` (knotd-signed zones, the validating unbound on
//! 127.0.53.53:53) and a TLS receiver for `secure.test` on 127.0.25.1:25
//! that presents `mx1.secure.test`'s certificate (the one its `3 1 1` TLSA
//! record names), offers STARTTLS, accepts every message with 250 and
//! counts them.
//!
//! It offers PIPELINING and CHUNKING, as real receivers (Postfix) do, and
//! takes messages by DATA or by pipelined BDAT chunks.
//!
//! With a third argument, a list of round-trip times in milliseconds
//! (`0,10,50,100`), it also sets up a destination at each RTT (`rtt.rs`):
//! the domain `rttR.secure.test` in DNS, its MX host's address a delay
//! proxy (`delay.rs`) in front of the receiver.
//!
//! It writes `KEY=value` lines (lab dir, anchors, certificate, the RTT
//! domains) to the file named by its first argument, prints `READY`, and
//! runs until its standard input closes. The counters are served on the
//! control address (second argument, default 127.0.26.3:8025): each
//! connection gets one line
//! `messages=N tls_messages=N bytes=N connections=N tls_handshakes=N
//! proxy_chunks=N proxy_late_us=N proxy_late_max_us=N` (the last three:
//! chunks the delay proxies wrote, how late in total, the latest one).

#![forbid(unsafe_code)]
#![allow(dead_code)]

#[path = "alarm.rs"]
mod alarm;
#[path = "delay.rs"]
mod delay;
#[path = "rtt.rs"]
mod rtt;

#[path = "../integration/dnslab/cases.rs"]
mod cases;
#[path = "../integration/dnslab/dig.rs"]
mod dig;
#[path = "../integration/dnslab/interop_cases.rs"]
#[allow(dead_code)]
mod interop_cases;
#[path = "../integration/dnslab/interop_pki.rs"]
mod interop_pki;
#[path = "../integration/dnslab/lab.rs"]
#[allow(unused_imports)]
mod lab;
#[path = "../integration/lab/util.rs"]
mod util;
#[path = "../integration/dnslab/zones.rs"]
mod zones;

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    tls_messages: AtomicU64,
    bytes: AtomicU64,
    connections: AtomicU64,
    tls_handshakes: AtomicU64,
}

const SINK: &str = "127.0.25.1:25";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let env_file = args
        .get(1)
        .expect("usage: benchlab ENV_FILE [CONTROL_ADDR [RTT_MS,...]]")
        .clone();
    let control: SocketAddr = args
        .get(2)
        .map(|s| s.as_str())
        .unwrap_or("127.0.26.3:8025")
        .parse()
        .expect("control address");
    let dests = rtt::destinations(args.get(3).map(|s| s.as_str()).unwrap_or(""))
        .unwrap_or_else(|e| panic!("benchlab: {e}"));

    let lab = lab::DnsLab::start();
    let cert = lab.cert("mx1.secure.test");
    rtt::publish(&lab, &dests, &cert.spki_sha256);
    let rtt_list: Vec<String> = dests
        .iter()
        .map(|d| format!("{}:{}:{}", d.rtt.as_millis(), d.domain, d.addr.ip()))
        .collect();
    let env = format!(
        "LAB_DIR={}\nANCHOR_DS={}\nANCHOR_DNSKEY={}\nMX1_CHAIN={}\nMX1_KEY={}\nMX1_SPKI={}\nRTT_DESTINATIONS=\"{}\"\n",
        lab.dir().display(),
        lab.anchor_ds_file().display(),
        lab.anchor_dnskey_file().display(),
        cert.chain_pem.display(),
        cert.key_pem.display(),
        cert.spki_sha256,
        rtt_list.join(" "),
    );
    std::fs::write(&env_file, env).expect("write env file");

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.chain_pem)
        .expect("read chain")
        .collect::<Result<_, _>>()
        .expect("parse chain");
    let key = PrivateKeyDer::from_pem_file(&cert.key_pem).expect("read key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let counters = Arc::new(Counters::default());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // The receiver queues as many connections as danegate does (1024):
        // with the standard library's 128, smtp-source's 200 sessions
        // overflow it and the ceiling measures SYN retransmissions.
        let sink = tokio::net::TcpSocket::new_v4().expect("socket");
        sink.set_reuseaddr(true).expect("SO_REUSEADDR");
        sink.bind(SINK.parse().expect("sink address"))
            .expect("bind sink 127.0.25.1:25");
        let sink = sink.listen(1024).expect("listen on the sink");
        let ctl = TcpListener::bind(control).await.expect("bind control");
        rtt::start_proxies(&dests, SINK.parse().expect("sink address")).await;
        let c = counters.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = ctl.accept().await {
                let late = &delay::LATENESS;
                let line = format!(
                    "messages={} tls_messages={} bytes={} connections={} tls_handshakes={} \
                     proxy_chunks={} proxy_late_us={} proxy_late_max_us={}\n",
                    c.messages.load(Relaxed),
                    c.tls_messages.load(Relaxed),
                    c.bytes.load(Relaxed),
                    c.connections.load(Relaxed),
                    c.tls_handshakes.load(Relaxed),
                    late.chunks.load(Relaxed),
                    late.late_us.load(Relaxed),
                    late.max_us.load(Relaxed),
                );
                let _ = s.write_all(line.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        let c = counters.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = sink.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                c.connections.fetch_add(1, Relaxed);
                tokio::spawn(session(s, acceptor.clone(), c.clone()));
            }
        });
        println!("READY");
        // Hold until standard input closes.
        tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        })
        .await
        .ok();
    });
    drop(lab);
}

enum Next {
    Quit,
    StartTls,
}

async fn session(s: TcpStream, acceptor: TlsAcceptor, c: Arc<Counters>) {
    let mut r = BufReader::with_capacity(64 * 1024, s);
    if r.get_mut()
        .write_all(b"220 mx1.secure.test ESMTP bench sink\r\n")
        .await
        .is_err()
    {
        return;
    }
    match dialog(&mut r, false, &c).await {
        Some(Next::StartTls) => {}
        _ => return,
    }
    let Ok(tls) = acceptor.accept(r.into_inner()).await else {
        return;
    };
    c.tls_handshakes.fetch_add(1, Relaxed);
    let mut r = BufReader::with_capacity(64 * 1024, tls);
    let _ = dialog(&mut r, true, &c).await;
}

async fn dialog<S>(r: &mut BufReader<S>, tls: bool, c: &Counters) -> Option<Next>
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
    BufReader<S>: AsyncBufRead,
{
    let mut line = Vec::with_capacity(1024);
    // Bytes of the BDAT chunks of the message so far.
    let mut chunked = 0u64;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        let verb: String = line
            .iter()
            .take(4)
            .map(|b| b.to_ascii_uppercase() as char)
            .collect();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if tls => b"250-mx1.secure.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 SIZE 104857600\r\n",
            "EHLO" => b"250-mx1.secure.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-SIZE 104857600\r\n250 STARTTLS\r\n",
            "HELO" => b"250 mx1.secure.test\r\n",
            "STAR" if !tls => {
                r.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await.ok()?;
                r.get_mut().flush().await.ok()?;
                return Some(Next::StartTls);
            }
            "MAIL" | "RCPT" | "NOOP" => b"250 2.0.0 ok\r\n",
            "RSET" => {
                chunked = 0;
                b"250 2.0.0 ok\r\n"
            }
            "QUIT" => {
                let _ = r.get_mut().write_all(b"221 2.0.0 bye\r\n").await;
                let _ = r.get_mut().flush().await;
                let _ = r.get_mut().shutdown().await;
                return Some(Next::Quit);
            }
            "DATA" => {
                r.get_mut().write_all(b"354 go on\r\n").await.ok()?;
                r.get_mut().flush().await.ok()?;
                let mut bytes = 0u64;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await.ok()? == 0 {
                        return None;
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    bytes += line.len() as u64;
                }
                c.messages.fetch_add(1, Relaxed);
                if tls {
                    c.tls_messages.fetch_add(1, Relaxed);
                }
                c.bytes.fetch_add(bytes, Relaxed);
                b"250 2.0.0 queued\r\n"
            }
            "BDAT" => match bdat(r, &line, &mut chunked).await? {
                Some(true) => {
                    c.messages.fetch_add(1, Relaxed);
                    if tls {
                        c.tls_messages.fetch_add(1, Relaxed);
                    }
                    c.bytes.fetch_add(std::mem::take(&mut chunked), Relaxed);
                    b"250 2.0.0 queued\r\n"
                }
                Some(false) => b"250 2.0.0 chunk received\r\n",
                None => b"501 5.5.4 syntax: BDAT size [LAST]\r\n",
            },
            _ => b"502 5.5.2 not implemented\r\n",
        };
        r.get_mut().write_all(reply).await.ok()?;
        if r.buffer().is_empty() {
            r.get_mut().flush().await.ok()?;
        }
    }
}

/// Largest BDAT chunk the receiver takes (its SIZE).
const MAX_CHUNK: u64 = 104_857_600;

/// Reads the chunk a `BDAT size [LAST]` line announces (RFC 3030), adding
/// its size to `chunked`: `Some(true)` for the last chunk, `Some(false)`
/// for another, `None` for a bad line (nothing read); the outer `None` is
/// a lost connection.
async fn bdat<S>(r: &mut BufReader<S>, line: &[u8], chunked: &mut u64) -> Option<Option<bool>>
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_ascii_whitespace().skip(1);
    let size = words.next().and_then(|w| w.parse::<u64>().ok());
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Some(None),
    };
    let Some(size) = size.filter(|n| *n <= MAX_CHUNK && words.next().is_none()) else {
        return Some(None);
    };
    let got = tokio::io::copy(&mut (&mut *r).take(size), &mut tokio::io::sink())
        .await
        .ok()?;
    if got != size {
        return None;
    }
    *chunked += size;
    Some(Some(last))
}
