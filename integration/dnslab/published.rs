//! `danegate tlsa published` against two authoritative knotd instances
//! serving the same signed zone, the rollover check of a "current + next"
//! key rollover: the next key's TLSA record is on one server only, so the
//! check must fail and name the other server's addresses; once the record
//! is on both, it passes.
//!
//! ```text
//!   danegate tlsa published ──NS, A, AAAA (insecure resolver)──▶ knotd ns1 127.0.54.1:53
//!                           ──TLSA, RD=0, DO=1, each address──▶  knotd ns1 127.0.54.1:53
//!                                                               knotd ns2 127.0.54.2:53, [::1]:53
//! ```
//!
//! Both servers serve `published.test.` (`NS ns1`, `NS ns2`; `ns2` has an
//! AAAA record, `::1`, so an IPv6 address is asked too), each signing it
//! with keys of its own (knotd's automatic key management; no DS anywhere:
//! `published` asks what is served, it validates nothing). The NS set and
//! the name servers' addresses come from danegate's configured name server,
//! which is ns1 itself: an authoritative server answers those questions
//! from its zone, and `published` needs no DNSSEC for them.
//!
//! This module starts its own two servers (not the shared lab: other
//! addresses, `127.0.54.x` and `[::1]:53`), under a scratch directory kept
//! when a test fails. It needs root, knotd, knotc, kdig and openssl.
//!
//! It also holds the lab test of `danegate tlsa verify --dns` (published
//! records, which must be secure), against the shared lab's zones.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::dig::{self, Ask};
use crate::gate::{self, Anchor, Dns, BIN};
use crate::lab::{
    read_text, require_tool, run_ok, run_ok_stdin, run_output, wait_for, write_file, DnsLab,
    VALIDATING,
};

const ZONE: &str = "published.test.";
const MX: &str = "mx.published.test";
const TLSA_NAME: &str = "_25._tcp.mx.published.test";
const NS1: Ipv4Addr = Ipv4Addr::new(127, 0, 54, 1);
const NS2: Ipv4Addr = Ipv4Addr::new(127, 0, 54, 2);
const NS2_V6: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// One of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    One,
    Two,
}

impl Ns {
    fn name(self) -> &'static str {
        match self {
            Ns::One => "ns1",
            Ns::Two => "ns2",
        }
    }

    fn addrs(self) -> Vec<IpAddr> {
        match self {
            Ns::One => vec![IpAddr::V4(NS1)],
            Ns::Two => vec![IpAddr::V4(NS2), IpAddr::V6(NS2_V6)],
        }
    }
}

/// The key material of the rollover: the current certificate (its record
/// is on both servers) and the next key (no certificate yet).
struct Rollover {
    current_cert: PathBuf,
    next_key: PathBuf,
    /// SHA-256 of each SubjectPublicKeyInfo, by openssl: TLSA `3 1 1` data.
    current_digest: String,
    next_digest: String,
}

/// The two knotd instances, stopped when dropped (closing the supervisor's
/// standard input). A panicking test keeps the directory.
struct TwoServers {
    dir: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    keys: Rollover,
}

impl TwoServers {
    fn start() -> TwoServers {
        for addr in Ns::One.addrs().into_iter().chain(Ns::Two.addrs()) {
            assert_free(SocketAddr::new(addr, 53));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "danegate-published-{}-{nanos:09}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        eprintln!("published: scratch dir {}", dir.display());
        let keys = make_keys(&dir);
        for ns in [Ns::One, Ns::Two] {
            let d = dir.join(ns.name());
            fs::create_dir_all(d.join("zones")).unwrap();
            write_file(&d.join("knot.conf"), knot_conf(ns, &d));
            // ns1 already serves the next key's record; ns2 does not.
            let next = (ns == Ns::One).then_some(keys.next_digest.as_str());
            write_file(
                &d.join("zones").join(format!("{ZONE}zone")),
                zone_text(1, &keys.current_digest, next),
            );
        }
        write_file(&dir.join("run.sh"), run_sh());
        let log = fs::File::create(dir.join("run.out")).unwrap();
        let mut child = Command::new("sh")
            .arg(dir.join("run.sh"))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}/run.sh: {e}", dir.display()));
        let stdin = child.stdin.take();
        let servers = TwoServers {
            dir,
            child,
            stdin,
            keys,
        };
        for ns in [Ns::One, Ns::Two] {
            servers.wait_serving(ns, if ns == Ns::One { 2 } else { 1 });
        }
        servers
    }

    /// Waits until every address of `ns` answers the TLSA question with
    /// authority, `count` records and a signature.
    fn wait_serving(&self, ns: Ns, count: usize) {
        for addr in ns.addrs() {
            wait_for(
                &format!(
                    "{} ({addr}) to serve {count} signed TLSA records",
                    ns.name()
                ),
                || {
                    self.check_running();
                    let a = dig::query(
                        SocketAddr::new(addr, 53),
                        TLSA_NAME,
                        "TLSA",
                        Ask::AUTHORITATIVE,
                    );
                    (a.rcode == "NOERROR" && a.aa && a.signed() && a.data("TLSA").len() == count)
                        .then_some(())
                },
            );
        }
    }

    /// Rewrites ns2's zone with the next key's record too (serial 2) and
    /// reloads it: the operator catching up.
    fn publish_next_on_ns2(&self) {
        let d = self.dir.join(Ns::Two.name());
        write_file(
            &d.join("zones").join(format!("{ZONE}zone")),
            zone_text(2, &self.keys.current_digest, Some(&self.keys.next_digest)),
        );
        run_ok(
            Command::new(require_tool("knotc"))
                .arg("-c")
                .arg(d.join("knot.conf"))
                .args(["zone-reload", ZONE]),
        );
        self.wait_serving(Ns::Two, 2);
    }

    /// Runs `danegate tlsa published` for `mx.published.test` with
    /// `args` (`--cert FILE` or `--key FILE`).
    fn published(&self, what: &str, file: &Path) -> Output {
        let config = self.dir.join("danegate.toml");
        write_file(
            &config,
            format!(
                "# Generated by integration/dnslab/published.rs: ns1 answers the NS and address questions.\n\
                 [dns]\nnameservers = [\"{NS1}:53\"]\ntimeout = 5\n"
            ),
        );
        let out = run_output(
            Command::new(BIN)
                .args(["tlsa", "published", "--name", MX, what])
                .arg(file)
                .arg("--config")
                .arg(&config),
            None,
        );
        eprintln!(
            "danegate tlsa published {what} {}: {}\n{}{}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Panics with its output when run.sh or a knotd has exited.
    fn check_running(&self) {
        for ns in [Ns::One, Ns::Two] {
            let pid = read_text(&self.dir.join(format!("{}.pid", ns.name())));
            let pid = pid.trim();
            if pid.is_empty() {
                continue;
            }
            let stat = read_text(Path::new(&format!("/proc/{pid}/stat")));
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            if matches!(state, None | Some('Z') | Some('X')) {
                panic!(
                    "knotd {} exited:\n{}\n{}",
                    ns.name(),
                    read_text(&self.dir.join(format!("{}.out", ns.name()))),
                    read_text(&self.dir.join(ns.name()).join("knotd.log"))
                );
            }
        }
    }
}

impl Drop for TwoServers {
    fn drop(&mut self) {
        let keep = std::thread::panicking();
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if keep {
            eprintln!(
                "published: kept {} (knotd logs: ns1/knotd.log, ns2/knotd.log)",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn make_keys(dir: &Path) -> Rollover {
    let current_key = rcgen::KeyPair::generate().expect("current key");
    let current = rcgen::CertificateParams::new(vec![MX.to_string()])
        .expect("params")
        .self_signed(&current_key)
        .expect("current certificate");
    let next_key = rcgen::KeyPair::generate().expect("next key");
    let keys = Rollover {
        current_cert: dir.join("current.cert.pem"),
        next_key: dir.join("next.key.pem"),
        current_digest: sha256_hex(&current_key.public_key_der()),
        next_digest: sha256_hex(&next_key.public_key_der()),
    };
    write_file(&keys.current_cert, current.pem());
    write_file(&keys.next_key, next_key.serialize_pem());
    keys
}

/// SHA-256 by `openssl dgst`, independent of danegate.
fn sha256_hex(data: &[u8]) -> String {
    let out = run_ok_stdin(
        Command::new(require_tool("openssl")).args(["dgst", "-sha256", "-r"]),
        Some(data),
    );
    out.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn zone_text(serial: u32, current: &str, next: Option<&str>) -> String {
    let mut s = format!(
        "; Generated by integration/dnslab/published.rs\n\
         $ORIGIN {ZONE}\n$TTL 300\n\
         @ SOA ns1 hostmaster {serial} 3600 600 86400 300\n\
         @ NS ns1\n@ NS ns2\n\
         ns1 A {NS1}\nns2 A {NS2}\nns2 AAAA {NS2_V6}\n\
         mx A 127.0.54.25\n\
         _25._tcp.mx 3600 TLSA 3 1 1 {current}\n"
    );
    if let Some(next) = next {
        s.push_str(&format!("_25._tcp.mx 3600 TLSA 3 1 1 {next}\n"));
    }
    s
}

fn knot_conf(ns: Ns, dir: &Path) -> String {
    let d = dir.display();
    let listen: Vec<String> = ns.addrs().iter().map(|a| format!("{a}@53")).collect();
    format!(
        "# Generated by integration/dnslab/published.rs.\n\
         server:\n    rundir: \"{d}\"\n    listen: [ {listen} ]\n\n\
         database:\n    storage: \"{d}\"\n    kasp-db: \"{d}/keys\"\n    \
         journal-db: \"{d}/journal\"\n    timer-db: \"{d}/timers\"\n\n\
         log:\n  - target: \"{d}/knotd.log\"\n    any: info\n\n\
         policy:\n  - id: auto\n    algorithm: ecdsap256sha256\n    \
         single-type-signing: on\n    rrsig-lifetime: 7d\n    rrsig-refresh: 1d\n\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    \
         zonefile-sync: -1\n    journal-content: none\n\n\
         zone:\n  - domain: \"{ZONE}\"\n    file: \"{ZONE}zone\"\n    \
         dnssec-signing: on\n    dnssec-policy: auto\n",
        listen = listen.join(", "),
    )
}

fn run_sh() -> String {
    let knotd = require_tool("knotd");
    format!(
        "#!/bin/sh\n\
         # Generated by integration/dnslab/published.rs: runs both knotd until\n\
         # standard input ends, then stops them.\n\
         lab=$(cd \"$(dirname \"$0\")\" && pwd) || exit 1\n\
         pids=\n\
         for ns in ns1 ns2; do\n\
         \x20   {knotd} -c \"$lab/$ns/knot.conf\" >\"$lab/$ns.out\" 2>&1 </dev/null &\n\
         \x20   pids=\"$pids $!\"\n\
         \x20   echo $! >\"$lab/$ns.pid\"\n\
         done\n\
         read -r _ || true\n\
         kill -TERM $pids 2>/dev/null\n\
         ( sleep 10 && kill -KILL $pids 2>/dev/null ) &\n\
         watchdog=$!\n\
         wait $pids\n\
         kill $watchdog 2>/dev/null\n",
        knotd = knotd.display()
    )
}

/// Fails when something already listens on `addr` (a leftover server
/// would answer in place of ours).
fn assert_free(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = UdpSocket::bind(addr) {
        if Instant::now() >= deadline {
            panic!("{addr}/udp is busy ({e}): a leftover name server?");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn published_checks_every_authoritative_address() {
    let servers = TwoServers::start();
    let keys = &servers.keys;

    // The current certificate's record is on both servers: all three
    // addresses serve it, each with its TTL and RRSIG expiry.
    let out = servers.published("--cert", &keys.current_cert);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!(
            "{TLSA_NAME}: zone published.test, name servers ns1.published.test, ns2.published.test\n"
        )),
        "{text}"
    );
    let short = &keys.current_digest[..8];
    for addr in [
        "ns1.published.test 127.0.54.1",
        "ns2.published.test 127.0.54.2",
        "ns2.published.test ::1",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("ok       {addr}: ")))
            .unwrap_or_else(|| panic!("no ok line for {addr}:\n{text}"));
        assert!(
            line.contains(&format!(": 3 1 1 {short}… TTL 3600, RRSIG expires ")),
            "{line}"
        );
        // knotd signs for 7 days (rrsig-lifetime).
        assert!(
            line.ends_with("(in 6 days)") || line.ends_with("(in 7 days)"),
            "{line}"
        );
    }
    assert!(
        text.ends_with("served by all 3 name server addresses\n"),
        "{text}"
    );

    // The next key's record is on ns1 only: the check fails and names both
    // addresses of ns2.
    let out = servers.published("--key", &keys.next_key);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "ok       ns1.published.test 127.0.54.1: 3 1 1 {}… TTL 3600",
            &keys.next_digest[..8]
        )),
        "{text}"
    );
    for addr in ["ns2.published.test 127.0.54.2", "ns2.published.test ::1"] {
        assert!(
            text.contains(&format!(
                "MISSING  {addr}: 1 TLSA record, which does not match\n"
            )),
            "{addr}:\n{text}"
        );
    }
    assert!(
        text.ends_with(
            "FAILED: not served by 2 of 3 name server addresses: ns2.published.test 127.0.54.2, ns2.published.test ::1\n"
        ),
        "{text}"
    );

    // ns2 catches up: now the rollover may proceed.
    servers.publish_next_on_ns2();
    let out = servers.published("--key", &keys.next_key);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.ends_with("served by all 3 name server addresses\n"),
        "{text}"
    );
}

/// `tlsa verify --dns`: the lab's published records, looked up through
/// danegate's validating resolver, judged against the lab's certificates.
#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn verify_dns_uses_secure_published_records_only() {
    let lab = DnsLab::shared();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let config = gate::write_config(&lab, "tlsa-verify", &dns.toml(&lab));
    let verify = |host: &str, cert: &str| {
        let out = run_output(
            Command::new(BIN)
                .args(["tlsa", "verify", "--dns", "--name", host, "--chain"])
                .arg(&lab.cert(cert).chain_pem)
                .arg("--config")
                .arg(&config),
            None,
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    // 3 1 1 of mx1's own key; 2 0 1 of the lab CA, which issued mx2's.
    let (code, text) = verify("mx1.secure.test", "mx1.secure.test");
    assert_eq!(code, Some(0), "{text}");
    let spki = &lab.cert("mx1.secure.test").spki_sha256;
    assert_eq!(
        text,
        format!("match: DANE-EE 3 1 1 {}… at depth 0\n", &spki[..8])
    );
    let (code, text) = verify("mx2.secure.test", "mx2.secure.test");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("match: DANE-TA 2 0 1 "), "{text}");
    // Another host's certificate does not match.
    let (code, text) = verify("mx1.secure.test", "mx-target.secure.test");
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        text,
        "fail: no TLSA record of _25._tcp.mx1.secure.test matches the certificate chain\n"
    );
    // Records that no sender would use: insecure, bogus.
    let (code, text) = verify("mx.unsigned.test", "mx.unsigned.test");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not DNSSEC-secure"), "{text}");
    let (code, text) = verify("mx.bogus.test", "mx.bogus.test");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("TLSA lookup for _25._tcp.mx.bogus.test failed"),
        "{text}"
    );
}
