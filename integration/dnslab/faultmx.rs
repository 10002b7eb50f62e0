//! The fault run's destination MX: an SMTP receiver on loopback that offers
//! STARTTLS with a certificate the test can swap (a key rollover), takes a
//! transaction only over TLS, and misbehaves on command, at random, in one
//! of the ways of [`Fault`]: resets or stalls before, during and after
//! DATA, temporary failures, a TLS handshake that never completes.
//!
//! It keeps a message (counts each of its recipients as delivered) exactly
//! when it answers the final dot with 250, as a real MTA commits a message
//! before it says 250. A fault after the dot that withholds the 250 drops
//! the message, so the run's invariant can be exact: every recipient
//! delivered once, never twice (RFC 5321 §6.1's duplicates need a receiver
//! that keeps a message whose 250 was lost; this one never does).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

/// One way to misbehave. The first four are chosen per connection (when
/// it is accepted), the others per transaction (at MAIL FROM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Accepts the connection, never greets.
    GreetingStall,
    /// Accepts the connection and resets it at once.
    GreetingReset,
    /// Greets, never answers EHLO.
    EhloStall,
    /// Says 220 to STARTTLS, then never answers the ClientHello.
    HandshakeStall,
    /// Never answers MAIL FROM.
    MailStall,
    /// Resets the connection when RCPT TO arrives (before DATA).
    RcptReset,
    /// Never answers RCPT TO.
    RcptStall,
    /// 451 to the transaction's first RCPT TO.
    RcptTempfail,
    /// Never answers DATA.
    DataStall,
    /// Resets the connection in the middle of the message content.
    DataReset,
    /// Reads the whole message, never answers the final dot; the message
    /// is dropped when the client gives up.
    DotStall,
    /// 451 to the final dot; the message is dropped.
    DotTempfail,
    /// 250 to the final dot (the message is kept), then resets the
    /// connection when the next command arrives.
    AfterDataReset,
}

impl Fault {
    pub const CONNECTION: [Fault; 4] = [
        Fault::GreetingStall,
        Fault::GreetingReset,
        Fault::EhloStall,
        Fault::HandshakeStall,
    ];
    pub const TRANSACTION: [Fault; 9] = [
        Fault::MailStall,
        Fault::RcptReset,
        Fault::RcptStall,
        Fault::RcptTempfail,
        Fault::DataStall,
        Fault::DataReset,
        Fault::DotStall,
        Fault::DotTempfail,
        Fault::AfterDataReset,
    ];
}

/// A message the receiver kept: its Message-ID, recipients, and whether
/// its content was what `Check` expected.
#[derive(Debug, Clone)]
pub struct Kept {
    pub message_id: String,
    pub rcpts: Vec<String>,
    pub content_ok: bool,
    /// Which certificate (`set_certificate`'s label) the TLS session used.
    pub certificate: String,
    /// When the receiver said 250.
    pub at: Instant,
}

/// Judges a kept message: `(message_id, content) -> as expected?`.
pub type Check = fn(&str, &[u8]) -> bool;

struct State {
    tls: Arc<ServerConfig>,
    certificate: String,
    /// A second certificate, presented when the client's SNI is this
    /// name: (name, configuration). The MTA-STS host name of the fault
    /// run, whose certificate comes from the lab's MTA-STS CA.
    by_sni: Option<(String, Arc<ServerConfig>)>,
    /// Chance that a connection, and (independently) a transaction, gets a
    /// fault.
    rate: f64,
    rng: StdRng,
    injected: BTreeMap<Fault, u64>,
    kept: Vec<Kept>,
    /// MAIL FROM before STARTTLS: never expected from danegate.
    plaintext_mail: u64,
    connections: u64,
    handshakes: u64,
}

struct Shared {
    state: Mutex<State>,
    check: Check,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Draws a fault from `among` with the current rate.
    fn draw(&self, among: &[Fault]) -> Option<Fault> {
        let mut s = self.lock();
        let rate = s.rate.min(1.0);
        if rate <= 0.0 || !s.rng.gen_bool(rate) {
            return None;
        }
        let f = among[s.rng.gen_range(0..among.len())];
        *s.injected.entry(f).or_default() += 1;
        Some(f)
    }
}

/// What the test reads at the end.
#[derive(Debug, Clone)]
pub struct Report {
    pub injected: BTreeMap<Fault, u64>,
    pub kept: Vec<Kept>,
    pub plaintext_mail: u64,
    pub connections: u64,
    pub handshakes: u64,
}

pub struct FaultMx {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// How long a stalling receiver waits for the client to give up before it
/// closes the connection itself (far beyond danegate's timeouts in the run).
const STALL_LIMIT: Duration = Duration::from_secs(60);

impl FaultMx {
    /// Listens on `addr` with the certificate in `chain_pem`/`key_pem`
    /// (labelled `label`); faults off until [`FaultMx::set_rate`].
    pub fn start(
        addr: SocketAddr,
        label: &str,
        chain_pem: &Path,
        key_pem: &Path,
        seed: u64,
        check: Check,
    ) -> FaultMx {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                tls: tls_config(chain_pem, key_pem),
                certificate: label.to_string(),
                by_sni: None,
                rate: 0.0,
                rng: StdRng::seed_from_u64(seed),
                injected: BTreeMap::new(),
                kept: Vec::new(),
                plaintext_mail: 0,
                connections: 0,
                handshakes: 0,
            }),
            check,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("receiver runtime");
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind the fault receiver to {addr}: {e}"));
        let s = shared.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                s.lock().connections += 1;
                tokio::spawn(session(stream, s.clone()));
            }
        });
        FaultMx {
            shared,
            runtime: Some(runtime),
        }
    }

    /// The chance of a fault per connection and per transaction (0: none).
    pub fn set_rate(&self, rate: f64) {
        self.shared.lock().rate = rate;
    }

    /// Presents another certificate from the next STARTTLS on.
    pub fn set_certificate(&self, label: &str, chain_pem: &Path, key_pem: &Path) {
        let tls = tls_config(chain_pem, key_pem);
        let mut s = self.shared.lock();
        s.tls = tls;
        s.certificate = label.to_string();
    }

    /// Presents `chain_pem`/`key_pem` (labelled with the name) to clients
    /// that ask for `sni`; the other certificate to everyone else.
    pub fn set_sni_certificate(&self, sni: &str, chain_pem: &Path, key_pem: &Path) {
        self.shared.lock().by_sni = Some((sni.to_string(), tls_config(chain_pem, key_pem)));
    }

    pub fn report(&self) -> Report {
        let s = self.shared.lock();
        Report {
            injected: s.injected.clone(),
            kept: s.kept.clone(),
            plaintext_mail: s.plaintext_mail,
            connections: s.connections,
            handshakes: s.handshakes,
        }
    }

    /// How many recipients have been delivered so far.
    pub fn delivered(&self) -> usize {
        self.shared.lock().kept.iter().map(|k| k.rcpts.len()).sum()
    }
}

impl Drop for FaultMx {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn tls_config(chain_pem: &Path, key_pem: &Path) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain_pem)
        .unwrap_or_else(|e| panic!("read {}: {e}", chain_pem.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("parse {}: {e}", chain_pem.display()));
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .unwrap_or_else(|e| panic!("read {}: {e}", key_pem.display()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    Arc::new(config)
}

/// Resets the connection (RST, not FIN) by closing with a zero linger.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Reads and discards until the client closes (or [`STALL_LIMIT`]).
async fn stall<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(STALL_LIMIT, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let fault = shared.draw(&Fault::CONNECTION);
    let mut stream = stream;
    match fault {
        Some(Fault::GreetingReset) => return reset(&stream),
        Some(Fault::GreetingStall) => return stall(&mut stream).await,
        _ => {}
    }
    let mut r = BufReader::new(stream);
    if r.get_mut()
        .write_all(b"220 mx.faults.test ESMTP fault receiver\r\n")
        .await
        .is_err()
    {
        return;
    }
    match dialog(&mut r, &shared, None, fault).await {
        Some(Next::StartTls) => {}
        Some(Next::Reset) => return reset(r.get_ref()),
        _ => return,
    }
    let mut stream = r.into_inner();
    if fault == Some(Fault::HandshakeStall) {
        return stall(&mut stream).await;
    }
    let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), stream).await else {
        return;
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    let (tls, label) = {
        let s = shared.lock();
        match &s.by_sni {
            Some((name, config)) if sni.as_deref() == Some(name.as_str()) => {
                (config.clone(), name.clone())
            }
            _ => (s.tls.clone(), s.certificate.clone()),
        }
    };
    let Ok(tls) = start.into_stream(tls).await else {
        return;
    };
    shared.lock().handshakes += 1;
    let mut r = BufReader::new(tls);
    if let Some(Next::Reset) = dialog(&mut r, &shared, Some(&label), None).await {
        reset(r.get_ref().get_ref().0);
    }
}

enum Next {
    StartTls,
    Quit,
    Reset,
}

/// One transaction in progress.
struct Txn {
    fault: Option<Fault>,
    rcpts: Vec<String>,
    rcpt_commands: usize,
}

/// The SMTP dialog before STARTTLS (`tls` None) or after it (`tls` names
/// the certificate), with the connection's `fault`. Returns what to do
/// with the connection; None when the client left or a stall ended.
async fn dialog<S>(
    r: &mut BufReader<S>,
    shared: &Shared,
    tls: Option<&str>,
    fault: Option<Fault>,
) -> Option<Next>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = Vec::with_capacity(512);
    let mut txn: Option<Txn> = None;
    let mut reset_next = false;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        if reset_next {
            return Some(Next::Reset);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = text
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" if fault == Some(Fault::EhloStall) => {
                stall(r).await;
                return None;
            }
            "EHLO" if tls.is_some() => {
                "250-mx.faults.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 104857600\r\n".into()
            }
            "EHLO" => {
                "250-mx.faults.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 104857600\r\n250 STARTTLS\r\n".into()
            }
            "STARTTLS" if tls.is_none() => {
                r.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n").await.ok()?;
                r.get_mut().flush().await.ok()?;
                return Some(Next::StartTls);
            }
            "MAIL" if tls.is_none() => {
                shared.lock().plaintext_mail += 1;
                "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
            }
            "MAIL" => {
                let fault = shared.draw(&Fault::TRANSACTION);
                if fault == Some(Fault::MailStall) {
                    stall(r).await;
                    return None;
                }
                txn = Some(Txn {
                    fault,
                    rcpts: Vec::new(),
                    rcpt_commands: 0,
                });
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" => match txn.as_mut() {
                None => "503 5.5.1 Error: need MAIL command\r\n".into(),
                Some(t) => {
                    t.rcpt_commands += 1;
                    match t.fault {
                        Some(Fault::RcptReset) => return Some(Next::Reset),
                        Some(Fault::RcptStall) => {
                            stall(r).await;
                            return None;
                        }
                        Some(Fault::RcptTempfail) if t.rcpt_commands == 1 => {
                            "451 4.3.0 Temporary failure (fault injected)\r\n".into()
                        }
                        _ => {
                            let addr = text
                                .split_once('<')
                                .and_then(|(_, rest)| rest.split_once('>'))
                                .map(|(a, _)| a.to_string())
                                .unwrap_or_default();
                            t.rcpts.push(addr);
                            "250 2.1.5 Ok\r\n".into()
                        }
                    }
                }
            },
            "DATA" => match txn.take() {
                Some(t) if t.fault == Some(Fault::DataStall) => {
                    stall(r).await;
                    return None;
                }
                Some(t) if !t.rcpts.is_empty() => {
                    r.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.ok()?;
                    r.get_mut().flush().await.ok()?;
                    let content = read_content(r, t.fault == Some(Fault::DataReset)).await?;
                    let Some(content) = content else {
                        return Some(Next::Reset);
                    };
                    match t.fault {
                        Some(Fault::DotStall) => {
                            stall(r).await;
                            return None;
                        }
                        Some(Fault::DotTempfail) => {
                            "451 4.3.0 Temporary failure after the data (fault injected)\r\n".into()
                        }
                        _ => {
                            let message_id = header(&content, "message-id").unwrap_or_default();
                            let content_ok = (shared.check)(&message_id, &content);
                            let queued = {
                                let mut s = shared.lock();
                                s.kept.push(Kept {
                                    message_id,
                                    rcpts: t.rcpts,
                                    content_ok,
                                    certificate: tls.unwrap_or("").to_string(),
                                    at: Instant::now(),
                                });
                                s.kept.len()
                            };
                            reset_next = t.fault == Some(Fault::AfterDataReset);
                            format!("250 2.0.0 Ok: queued as F{queued}\r\n")
                        }
                    }
                }
                _ => "554 5.5.1 Error: no valid recipients\r\n".into(),
            },
            "RSET" => {
                txn = None;
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                let _ = r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                let _ = r.get_mut().shutdown().await;
                return Some(Next::Quit);
            }
            _ => "502 5.5.2 Error: command not recognized\r\n".into(),
        };
        r.get_mut().write_all(reply.as_bytes()).await.ok()?;
        r.get_mut().flush().await.ok()?;
    }
}

/// Reads the message content up to the final dot, undoing dot-stuffing.
/// `Ok(None)`: `cut` asked to stop in the middle (after 2 lines) for a
/// reset. None: the client left.
async fn read_content<S>(r: &mut BufReader<S>, cut: bool) -> Option<Option<Vec<u8>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut content = Vec::new();
    let mut line = Vec::with_capacity(1024);
    let mut lines = 0;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        lines += 1;
        if cut && lines > 2 {
            return Some(None);
        }
        if line == b".\r\n" {
            return Some(Some(content));
        }
        let l = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        content.extend_from_slice(l);
    }
}

/// The first header `name` (lower case) of `content`, unfolded and trimmed.
pub fn header(content: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(content);
    let head = text.split("\r\n\r\n").next()?;
    let mut found: Option<String> = None;
    for l in head.split("\r\n") {
        if let Some(v) = found.as_mut() {
            if l.starts_with([' ', '\t']) {
                v.push_str(l.trim());
                continue;
            }
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_string());
            }
        }
    }
    found
}
