//! The running binary as an operator meets it: metrics scraped over HTTP
//! after real deliveries, and SIGHUP reloading the configuration file
//! without disturbing a session in flight (and refusing a bad file).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DestScript, FakeDest, SmtpClient};
use tokio::net::TcpStream;

const MAX: u64 = 52_428_800;
const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A danegate process with its log collected.
struct Gate {
    child: Child,
    log: Arc<Mutex<String>>,
    listen: SocketAddr,
    config: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config_text(listen: SocketAddr, metrics: Option<SocketAddr>, route: &str) -> String {
    // DNS points at a closed port: danegate starts (DNS "does not
    // answer") and routes need no DNS.
    let mut text = format!(
        "[server]\nlisten = [\"{listen}\"]\nhostname = \"relay.example.net\"\n\
         [dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = 1\n\
         [routes]\n\"example.test\" = \"{route}\"\n"
    );
    if let Some(m) = metrics {
        text += &format!("[metrics]\nlisten = \"{m}\"\n");
    }
    text
}

/// `text` with `[state] dir` in the test's own directory, so that no
/// test touches /var/lib/danegate or another test's database.
fn with_state(text: &str, dir: &std::path::Path) -> String {
    format!(
        "{text}\n[state]\ndir = {:?}\n",
        dir.join("state").display().to_string()
    )
}

impl Gate {
    fn start(name: &str, text: &str, listen: SocketAddr) -> Gate {
        let dir = std::env::temp_dir().join(format!(
            "danegate-ops-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("danegate.toml");
        std::fs::write(&config, with_state(text, &dir)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_danegate"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start danegate");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&strip_ansi(&line));
                l.push('\n');
            }
        });
        let gate = Gate {
            child,
            log,
            listen,
            config,
            _dir: TempDir(dir),
        };
        gate.wait_log(&format!("listening on {listen}"));
        gate
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                start.elapsed() < WAIT,
                "no log line with {needle:?} within {WAIT:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    async fn client(&self) -> SmtpClient<TcpStream> {
        let s = TcpStream::connect(self.listen).await.unwrap();
        let mut c = SmtpClient::new(s);
        c.hello(MAX).await;
        c
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One GET of the metrics endpoint.
fn scrape(addr: SocketAddr) -> String {
    let mut s = StdStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("Content-Type: application/openmetrics-text"),
        "{body}"
    );
    body
}

async fn send_message(c: &mut SmtpClient<TcpStream>, rcpt: &str, want_rcpt: &str) {
    c.cmd("MAIL FROM:<sender@legacy.test>", "250 2.1.0 Ok")
        .await;
    c.cmd(&format!("RCPT TO:<{rcpt}>"), want_rcpt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_deliveries_refusals_and_tls() {
    let dest = FakeDest::start(DestScript::default().rcpt(
        "nobody@example.test",
        "550 5.1.1 <nobody@example.test>: unknown",
    ))
    .await;
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gate = Gate::start(
        "metrics",
        &config_text(listen, Some(metrics), &dest.route()),
        listen,
    );
    gate.wait_log(&format!("metrics on http://{metrics}/metrics"));

    let mut c = gate.client().await;
    send_message(&mut c, "user@example.test", "250 2.1.5 Ok").await;
    c.cmd(
        "RCPT TO:<nobody@example.test>",
        &format!(
            "550 5.1.1 {} said: <nobody@example.test>: unknown",
            dest.peer()
        ),
    )
    .await;
    c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>").await;
    c.send("Subject: metrics\r\n\r\nhello\r\n.\r\n").await;
    c.expect("250 2.0.0 Ok: queued as Q1").await;
    c.cmd("QUIT", "221 2.0.0 relay.example.net closing connection")
        .await;

    let body = tokio::task::spawn_blocking(move || scrape(metrics))
        .await
        .unwrap();
    for line in [
        "danegate_connections_total{result=\"accepted\"} 1",
        "danegate_transactions_total{outcome=\"delivered\"} 1",
        "danegate_recipients_total{outcome=\"delivered\",reason=\"none\"} 1",
        "danegate_recipients_total{outcome=\"rejected\",reason=\"remote_5xx\"} 1",
        "danegate_tls_connections_total{state=\"untrusted\"} 1",
        "danegate_dane_results_total{result=\"not_applicable\"} 1",
        "danegate_relay_seconds_count 1",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "no line {line:?} in:\n{body}"
        );
    }
    assert!(
        body.contains("# TYPE danegate_sessions_active gauge"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_routes_keeps_sessions_in_flight_and_refuses_a_bad_file() {
    let a = FakeDest::start(DestScript::default()).await;
    let b = FakeDest::start(DestScript::default()).await;
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gate = Gate::start("reload", &config_text(listen, None, &a.route()), listen);

    // A session in flight, already relaying to A.
    let mut first = gate.client().await;
    send_message(&mut first, "one@example.test", "250 2.1.5 Ok").await;

    // The route changes to B.
    let dir = gate.config.parent().unwrap().to_owned();
    std::fs::write(
        &gate.config,
        with_state(&config_text(listen, None, &b.route()), &dir),
    )
    .unwrap();
    gate.hangup();
    gate.wait_log(&format!(
        "configuration reloaded from {}",
        gate.config.display()
    ));

    // The session in flight finishes with A.
    first
        .cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    first.send("Subject: one\r\n\r\nfirst\r\n.\r\n").await;
    first.expect("250 2.0.0 Ok: queued as Q1").await;

    // A new session goes to B.
    let mut second = gate.client().await;
    send_message(&mut second, "two@example.test", "250 2.1.5 Ok").await;
    second
        .cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    second.send("Subject: two\r\n\r\nsecond\r\n.\r\n").await;
    second.expect("250 2.0.0 Ok: queued as Q1").await;
    let to_a = a.conns();
    let to_b = b.conns();
    assert_eq!(to_a.len(), 1, "{to_a:#?}");
    assert_eq!(to_b.len(), 1, "{to_b:#?}");
    assert!(to_a[0].messages[0].complete());
    assert!(to_b[0].messages[0].complete());

    // A bad file is refused and B stays the route.
    std::fs::write(&gate.config, "[server]\nbogus = 1\n").unwrap();
    gate.hangup();
    let log = gate.wait_log("configuration reload refused, the running configuration stays");
    assert!(
        log.contains("line 2, key `server.bogus`: unknown field `bogus`"),
        "{log}"
    );
    let mut third = gate.client().await;
    send_message(&mut third, "three@example.test", "250 2.1.5 Ok").await;
    third
        .cmd("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    third.send("Subject: three\r\n\r\nthird\r\n.\r\n").await;
    third.expect("250 2.0.0 Ok: queued as Q2").await;
    assert_eq!(a.conns().len(), 1);
}
