//! The DNS lab: a private DNSSEC hierarchy on loopback, generated and
//! started fresh at test time under a temp dir.
//!
//! ```text
//!   danegate / kdig ──▶ unbound 127.0.53.53:53 (validating, anchored at the lab root)
//!                       unbound 127.0.53.54:53 (iterator only: never sets AD)
//!                          │ root-hints
//!                          ▼
//!   knotd 127.0.53.1 "."  ──▶  knotd 127.0.53.2 "test."  ──▶  knotd 127.0.53.3 (zones below test.)
//!                                                      └──▶  127.0.53.99 (nothing: dead.test)
//! ```
//!
//! [`DnsLab::start`] writes every config, generates keys (keymgr, ldns) and
//! certificates, writes the zones with their DS records, then runs the
//! daemons under `run.sh` (a generated shell script that stops them when its
//! standard input closes, i.e. when the lab is dropped or the test process
//! ends, however it ends). Every wait is bounded. A lab dropped while a
//! test panics, or with `DANEGATE_LAB_KEEP` set, keeps its directory and
//! prints where it is; `sh DIR/run.sh` starts it again for a look.
//!
//! The zones are in `zones.rs`, the expected classification of each domain
//! in `cases.rs`, the query tool in `dig.rs`; this module re-exports what
//! tests need, so `use crate::lab::*` is enough. It does not run danegate.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::cases::{Case, Host, Lookup, Mx, Requirement, Sec, Tlsa, CASES, ZOO};
pub use crate::dig::{Answer, Ask, Record};
pub use crate::zones::{Denial, HostCert, Issuer, Server, Signing, Zone, DEAD_NS, ZONES};

// The command, file and wait plumbing is the Postfix lab's (`util.rs`).
pub use crate::util::{
    read_text, require_tool, run_ok, run_ok_stdin, run_output, wait_for, write_file,
};

use crate::dig;
use crate::zones::{self, Certs, Keys};

/// The validating unbound: DNSSEC on, anchored at the lab root.
pub const VALIDATING: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 53), 53));

/// The non-validating unbound (`module-config: "iterator"`): it passes
/// signatures through but never sets AD, like a resolver that does not
/// validate; danegate's enforce mode must refuse to start behind it.
pub const NON_VALIDATING: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 54), 53));

/// A running DNS lab. Dropping it stops every daemon.
pub struct DnsLab {
    dir: PathBuf,
    certs: Certs,
    keys: Keys,
    supervisor: Option<Supervisor>,
}

/// `run.sh` and the pipe whose closing stops it.
struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
}

static SHARED: OnceLock<Result<DnsLab, String>> = OnceLock::new();

impl DnsLab {
    /// Generates and starts a lab of its own; it stops when dropped. Panics
    /// (keeping the directory) when a daemon does not come up.
    pub fn start() -> DnsLab {
        for addr in
            Server::ALL
                .iter()
                .map(|s| s.addr())
                .chain([VALIDATING, NON_VALIDATING, DEAD_NS])
        {
            assert_free(addr);
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("danegate-dnslab-{}-{nanos:09}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        eprintln!("dnslab: scratch dir {}", dir.display());
        if std::env::var_os("DANEGATE_LAB_KEEP").is_some() {
            write_file(&dir.join("KEEP"), "DANEGATE_LAB_KEEP was set\n");
        }
        let certs = zones::make_certs(&dir.join("certs"));
        // From here on a panic drops `lab`, which keeps the directory.
        let mut lab = DnsLab {
            dir,
            certs,
            keys: Keys::default(),
            supervisor: None,
        };
        lab.generate();
        lab.supervise();
        lab.wait_ready();
        lab
    }

    /// The lab shared by every test of this binary: started by the first
    /// caller, stopped when the process exits (`run.sh` sees its standard
    /// input close). The guard keeps the directory when its test panics.
    /// If the start failed, every later caller fails with the same reason.
    pub fn shared() -> SharedLab {
        let started = SHARED.get_or_init(|| {
            std::panic::catch_unwind(DnsLab::start).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string())
            })
        });
        match started {
            Ok(lab) => SharedLab { lab },
            Err(why) => panic!("the shared DNS lab failed to start: {why}"),
        }
    }

    /// The lab's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The validating resolver ([`VALIDATING`]).
    pub fn validating(&self) -> SocketAddr {
        VALIDATING
    }

    /// The non-validating resolver ([`NON_VALIDATING`]).
    pub fn non_validating(&self) -> SocketAddr {
        NON_VALIDATING
    }

    /// The trust anchor as one DNSKEY line (`. 3600 IN DNSKEY 257 3 13 ...`,
    /// the root's KSK; its ZSK is deliberately not anchored, as with the
    /// IANA root).
    pub fn anchor_dnskey_file(&self) -> PathBuf {
        self.dir.join("anchors/root.dnskey")
    }

    /// The trust anchor as one DS line (`. 3600 IN DS tag 13 2 ...`); the
    /// validating unbound uses this one.
    pub fn anchor_ds_file(&self) -> PathBuf {
        self.dir.join("anchors/root.ds")
    }

    /// The trust anchor in BIND's syntax (`trust-anchors { . static-key
    /// 257 3 13 "..."; };`), for `delv -a FILE +root=.`.
    pub fn anchor_bind_file(&self) -> PathBuf {
        self.dir.join("anchors/root.bind")
    }

    /// The root KSK's DNSKEY record, as in [`Self::anchor_dnskey_file`].
    pub fn root_dnskey(&self) -> String {
        anchor_line(&self.keys.root_dnskey, "DNSKEY")
    }

    /// The root KSK's DS record, as in [`Self::anchor_ds_file`].
    pub fn root_ds(&self) -> String {
        anchor_line(&self.keys.root_ds, "DS")
    }

    /// The key tags of `zone`'s DNSKEYs (no trailing dot): keymgr's list
    /// for zones knotd signs, the key file names for pre-signed zones.
    pub fn key_tags(&self, zone: &str) -> Vec<u16> {
        let fqdn = format!("{zone}.");
        let z = ZONES
            .iter()
            .find(|z| z.name == fqdn)
            .unwrap_or_else(|| panic!("no lab zone {zone}"));
        if let Signing::Presigned(..) | Signing::Unsigned = z.signing {
            let prefix = format!("K{fqdn}+");
            return fs::read_dir(self.dir.join("ldns-keys"))
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter_map(|n| {
                            let rest = n.strip_prefix(&prefix)?.strip_suffix(".key")?;
                            rest.split('+').nth(1)?.parse().ok()
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        let conf = self.dir.join(z.server.dir_name()).join("knot.conf");
        let out = run_ok(
            Command::new(require_tool("keymgr"))
                .arg("-c")
                .arg(conf)
                .args([fqdn.as_str(), "list"]),
        );
        out.lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect()
    }

    /// The key tag the parent's DS for `zone` names.
    pub fn ds_key_tag(&self, zone: &str) -> u16 {
        let ds = self
            .keys
            .ds
            .get(&format!("{zone}."))
            .unwrap_or_else(|| panic!("no DS for {zone}"));
        ds.split_whitespace()
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no key tag in {ds}"))
    }

    /// The certificate and key made for `host` (a name of `zones::CERTS`,
    /// or "ca" for the lab CA): what a receiver at its address presents.
    pub fn cert(&self, host: &str) -> &HostCert {
        if host == "ca" {
            return &self.certs.ca;
        }
        self.certs
            .hosts
            .get(host)
            .unwrap_or_else(|| panic!("the lab makes no certificate for {host}"))
    }

    /// Asks the validating resolver, with the DO bit.
    pub fn resolve(&self, name: &str, rtype: &str) -> Answer {
        dig::query(VALIDATING, name, rtype, Ask::RESOLVER)
    }

    /// Asks the non-validating resolver, with the DO bit.
    pub fn resolve_unvalidated(&self, name: &str, rtype: &str) -> Answer {
        dig::query(NON_VALIDATING, name, rtype, Ask::RESOLVER)
    }

    /// Marks the directory to be kept and says where it is and what is in it.
    pub fn keep(&self, why: &str) {
        let marker = self.dir.join("KEEP");
        if !marker.exists() {
            let _ = fs::write(&marker, format!("{why}\n"));
        }
        eprintln!(
            "dnslab: kept {} ({why}); logs: {}/*.out, */knotd.log, unbound*/unbound.log; \
             restart with `sh {}/run.sh` (see integration/dnslab/README.md)",
            self.dir.display(),
            self.dir.display(),
            self.dir.display()
        );
    }

    fn generate(&mut self) {
        for s in Server::ALL {
            let d = self.dir.join(s.dir_name());
            fs::create_dir_all(d.join("zones"))
                .unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
            write_file(&d.join("knot.conf"), zones::knot_conf(s, &d));
        }
        self.keys = zones::make_keys(&self.dir);
        for z in ZONES {
            let zdir = self.dir.join(z.server.dir_name()).join("zones");
            let file = zdir.join(zones::zone_file_name(z));
            let text = zones::zone_text(z, &self.keys, &self.certs);
            if matches!(z.signing, Signing::Presigned(..)) {
                let unsigned = zdir.join(format!("{}unsigned", z.name));
                write_file(&unsigned, text);
                zones::presign(&self.dir, z, &unsigned, &file);
            } else {
                write_file(&file, text);
            }
        }
        let anchors = self.dir.join("anchors");
        fs::create_dir_all(&anchors)
            .unwrap_or_else(|e| panic!("create {}: {e}", anchors.display()));
        write_file(
            &self.anchor_dnskey_file(),
            format!("{}\n", self.root_dnskey()),
        );
        write_file(&self.anchor_ds_file(), format!("{}\n", self.root_ds()));
        write_file(
            &self.anchor_bind_file(),
            bind_anchor(&self.keys.root_dnskey),
        );
        for (name, addr, validate) in [
            ("unbound", VALIDATING, true),
            ("unbound-novalidate", NON_VALIDATING, false),
        ] {
            let d = self.dir.join(name);
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
            write_file(&d.join("root.hints"), root_hints());
            let anchor = validate.then(|| self.anchor_ds_file());
            write_file(
                &d.join("unbound.conf"),
                unbound_conf(&d, addr, anchor.as_deref()),
            );
        }
        write_file(&self.dir.join("run.sh"), self.run_sh());
    }

    fn run_sh(&self) -> String {
        let knotd = require_tool("knotd");
        let unbound = require_tool("unbound");
        let mut starts = String::new();
        for s in Server::ALL {
            starts.push_str(&format!(
                "start {name} {knotd} -c \"$lab/{name}/knot.conf\"\n",
                name = s.dir_name(),
                knotd = knotd.display()
            ));
        }
        for name in ["unbound", "unbound-novalidate"] {
            starts.push_str(&format!(
                "start {name} {unbound} -d -c \"$lab/{name}/unbound.conf\"\n",
                unbound = unbound.display()
            ));
        }
        format!(
            "#!/bin/sh\n\
             # Generated by danegate's DNS lab (integration/dnslab/lab.rs).\n\
             # Runs the lab's daemons until standard input ends (Enter, Ctrl-D, or the\n\
             # test process that started it exiting), then stops them. By hand:\n\
             #   sh {dir}/run.sh\n\
             #   kdig @{v} +dnssec secure.test MX    (in another shell)\n\
             # With DNSLAB_CLEANUP=1 (the tests set it) it then removes this directory,\n\
             # unless the file KEEP exists in it.\n\
             set -u\n\
             lab=$(cd \"$(dirname \"$0\")\" && pwd) || exit 1\n\
             pids=\n\
             start() {{\n\
             \x20   name=$1; shift\n\
             \x20   \"$@\" >\"$lab/$name.out\" 2>&1 </dev/null &\n\
             \x20   pids=\"$pids $!\"\n\
             \x20   echo $! >\"$lab/$name.pid\"\n\
             \x20   echo \"run.sh: started $name (pid $!)\"\n\
             }}\n\
             {starts}\
             echo \"run.sh: running; press Enter or Ctrl-D to stop\"\n\
             read -r _ || true\n\
             echo \"run.sh: stopping$pids\"\n\
             kill -TERM $pids 2>/dev/null\n\
             ( sleep 10 && echo 'run.sh: killing' && kill -KILL $pids 2>/dev/null ) &\n\
             watchdog=$!\n\
             wait $pids\n\
             kill $watchdog 2>/dev/null\n\
             echo \"run.sh: stopped\"\n\
             if [ \"${{DNSLAB_CLEANUP:-}}\" = 1 ] && [ ! -e \"$lab/KEEP\" ]; then\n\
             \x20   cd / && rm -rf \"$lab\"\n\
             fi\n",
            dir = self.dir.display(),
            v = VALIDATING.ip(),
        )
    }

    fn supervise(&mut self) {
        let log = self.dir.join("run.out");
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        let mut child = Command::new("sh")
            .arg(self.dir.join("run.sh"))
            .env("DNSLAB_CLEANUP", "1")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}/run.sh: {e}", self.dir.display()));
        let stdin = child.stdin.take();
        self.supervisor = Some(Supervisor { child, stdin });
    }

    fn wait_ready(&self) {
        let knotc = require_tool("knotc");
        for s in Server::ALL {
            let conf = self.dir.join(s.dir_name()).join("knot.conf");
            wait_for(
                &format!("knotd {} ({}) to run", s.dir_name(), s.addr()),
                || {
                    self.check_running();
                    let out = run_output(
                        Command::new(&knotc).arg("-c").arg(&conf).arg("status"),
                        None,
                    );
                    out.status.success().then_some(())
                },
            );
        }
        for z in ZONES {
            wait_for(
                &format!(
                    "{} to serve {} ({:?})",
                    z.server.dir_name(),
                    z.name,
                    z.signing
                ),
                || {
                    self.check_running();
                    let a = dig::query(z.server.addr(), z.name, "SOA", Ask::AUTHORITATIVE);
                    let signed = z.signing != Signing::Unsigned;
                    (a.rcode == "NOERROR" && a.aa && a.signed() == signed).then_some(())
                },
            );
        }
        wait_for(
            "the validating unbound to answer the root SOA with AD",
            || {
                self.check_running();
                let a = self.resolve(".", "SOA");
                (a.rcode == "NOERROR" && a.ad).then_some(())
            },
        );
        wait_for("the non-validating unbound to answer the root SOA", || {
            self.check_running();
            let a = self.resolve_unvalidated(".", "SOA");
            (a.rcode == "NOERROR").then_some(())
        });
    }

    /// Panics, with its output, when a daemon has exited: waiting for it
    /// to answer would only time out.
    fn check_running(&self) {
        for name in DAEMONS {
            let pid_file = self.dir.join(format!("{name}.pid"));
            let pid = read_text(&pid_file).trim().to_string();
            if pid.is_empty() {
                continue; // run.sh has not started it yet
            }
            // Field 3 of /proc/PID/stat is the state; Z: exited, not reaped.
            let stat = read_text(Path::new(&format!("/proc/{pid}/stat")));
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            if matches!(state, None | Some('Z') | Some('X')) {
                panic!(
                    "{name} (pid {pid}) exited; its output ({}/{name}.out):\n{}\nrun.sh:\n{}",
                    self.dir.display(),
                    read_text(&self.dir.join(format!("{name}.out"))),
                    read_text(&self.dir.join("run.out"))
                );
            }
        }
    }
}

/// The daemons run.sh starts, by the names of their directories.
const DAEMONS: [&str; 5] = [
    "knot-root",
    "knot-tld",
    "knot-leaf",
    "unbound",
    "unbound-novalidate",
];

impl Drop for DnsLab {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || self.dir.join("KEEP").exists();
        if std::thread::panicking() {
            self.keep("a test panicked");
        }
        let Some(mut sup) = self.supervisor.take() else {
            if !keep {
                let _ = fs::remove_dir_all(&self.dir);
            }
            return;
        };
        // Closing the pipe ends `read` in run.sh, which stops the daemons
        // and removes the directory unless KEEP exists.
        drop(sup.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match sup.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    eprintln!("dnslab: run.sh did not stop within 20 s; killing it");
                    let _ = sup.child.kill();
                    let _ = sup.child.wait();
                    break;
                }
            }
        }
    }
}

/// A test's handle on the shared lab ([`DnsLab::shared`]). Dropped while its
/// test panics, it marks the lab's directory to be kept.
pub struct SharedLab {
    lab: &'static DnsLab,
}

impl Deref for SharedLab {
    type Target = DnsLab;
    fn deref(&self) -> &DnsLab {
        self.lab
    }
}

impl Drop for SharedLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.lab.keep("a test using the shared lab panicked");
        }
    }
}

/// `NAME. TYPE rdata` → `NAME. 3600 IN TYPE rdata` (the TTL and class that
/// trust-anchor parsers such as hickory's require).
fn anchor_line(record: &str, rtype: &str) -> String {
    let (owner, rdata) = record
        .split_once(&format!(" {rtype} "))
        .unwrap_or_else(|| panic!("not a {rtype} record: {record}"));
    format!("{owner} 3600 IN {rtype} {rdata}")
}

/// `. DNSKEY 257 3 13 KEY` → BIND's `trust-anchors` statement.
fn bind_anchor(dnskey: &str) -> String {
    let f: Vec<&str> = dnskey.split_whitespace().collect();
    let [owner, "DNSKEY", flags, proto, alg, key @ ..] = f.as_slice() else {
        panic!("not a DNSKEY record: {dnskey}");
    };
    format!(
        "trust-anchors {{ {owner} static-key {flags} {proto} {alg} \"{}\"; }};\n",
        key.concat()
    )
}

fn root_hints() -> String {
    let root = Server::Root;
    format!(
        "; Generated by danegate's DNS lab (integration/dnslab/lab.rs): the lab root only.\n\
         . 3600000 NS {ns}\n{ns} 3600000 A {ip}\n",
        ns = root.ns_name(),
        ip = root.addr().ip()
    )
}

fn unbound_conf(dir: &Path, addr: SocketAddr, anchor: Option<&Path>) -> String {
    let d = dir.display();
    let dnssec = match anchor {
        Some(a) => format!(
            "    module-config: \"validator iterator\"\n    trust-anchor-file: \"{}\"\n    \
             val-log-level: 2\n    # no RFC 8145 _ta-XXXX queries in the lab's logs\n    \
             trust-anchor-signaling: no\n    \
             # bogus answers are cached this long (default 60 s)\n    \
             val-bogus-ttl: 5\n",
            a.display()
        ),
        None => "    # iterator only: signatures pass through, AD is never set\n    \
                 module-config: \"iterator\"\n"
            .to_string(),
    };
    format!(
        "# Generated by danegate's DNS lab (integration/dnslab/lab.rs).\n\
         server:\n    interface: {ip}\n    port: {port}\n    do-ip6: no\n    \
         do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    \
         pidfile: \"{d}/unbound.pid\"\n    use-syslog: no\n    logfile: \"{d}/unbound.log\"\n    \
         log-time-ascii: yes\n    verbosity: 1\n    log-servfail: yes\n    ede: yes\n    \
         access-control: 127.0.0.0/8 allow\n    \
         # the lab's servers are on 127.0.53.x\n    do-not-query-localhost: no\n    \
         # the only root is the lab's: nothing leaves loopback\n    root-hints: \"{d}/root.hints\"\n    \
         # test. is one of unbound's built-in empty zones (RFC 6761); the lab uses it\n    \
         local-zone: \"test.\" nodefault\n    \
         # a dead server must turn into SERVFAIL within seconds (~2 s)\n    infra-cache-max-rtt: 1000\n    \
         # answer every query, however long it took (default: drop after 1.9 s)\n    \
         discard-timeout: 0\n\
         {dnssec}\n\
         remote-control:\n    control-enable: no\n",
        ip = addr.ip(),
        port = addr.port(),
    )
}

/// Waits (up to 10 s) until `addr` is free for UDP and TCP: the shared lab
/// of a test process that just ended stops a moment after it; a leftover
/// daemon that stays would otherwise answer in place of this lab's.
fn assert_free(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let busy = match UdpSocket::bind(addr) {
            Err(e) => Some(("udp", e)),
            Ok(_) => TcpListener::bind(addr).err().map(|e| ("tcp", e)),
        };
        let Some((proto, e)) = busy else {
            return;
        };
        if Instant::now() >= deadline {
            panic!(
                "lab address {addr}/{proto} is busy ({e}): a leftover daemon from an earlier run?"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
