//! Sendmail 8 as a third legacy MTA, run from Debian's .debs unpacked into
//! the lab cache (`integration/test-all --setup` fetches `sendmail-bin` and
//! `sendmail-cf`; installing Sendmail would remove Postfix). No daemon:
//! messages are queued from the command line (`-odq`) and delivered by
//! explicit foreground queue runs (`-q -v`), so each test decides when a
//! delivery attempt happens.
//!
//! `sendmail.cf` is built at test time with m4 from an .mc written here
//! (`mc`), with the package's cf macros. Everything goes to the smart host
//! (danegate) through the `relay` mailer; no DNS is used (`nocanonify`, a
//! bracketed smart host, a service switch with `hosts files` only).
//!
//! Two things the machine needs hidden from Sendmail, so every run happens
//! in private mount and UTS namespaces (`unshare`), nothing outside changes:
//! - the host name: Sendmail sleeps 60 s at every start when the node name
//!   (here `vm`) is unqualified ("My unqualified host name (vm) unknown;
//!   sleeping for retry"), so the namespace's node name is `HOSTNAME`;
//! - syslog: Sendmail logs only there and the machine has no syslogd. The
//!   lab binds its own datagram socket and mounts it as `/dev/log` (a copy of
//!   /dev with the socket and the few device nodes a run needs); the lines
//!   are written to `sendmail/maillog`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::util::{self, Lab};

/// The node name Sendmail sees (and its `$j`).
pub const HOSTNAME: &str = "sendmail.legacy.lab.test";

/// Device nodes bind-mounted into the namespace's /dev next to `log` (the
/// same list as in `NAMESPACE_SCRIPT`).
const DEVICES: [&str; 5] = ["null", "zero", "random", "urandom", "full"];

/// Runs `"$@"` with node name `$1` and the lab's /dev copy `$2` as /dev.
/// `unshare --mount` makes every mount private to the namespace.
const NAMESPACE_SCRIPT: &str = r#"set -e
hostname "$1"
d=$2
shift 2
for n in null zero random urandom full; do mount --bind "/dev/$n" "$d/$n"; done
mount --rbind "$d" /dev
exec "$@"
"#;

/// Root of the unpacked .debs: `$DANEGATE_LAB_SENDMAIL_ROOT`, else
/// `integration/.cache/sendmail/root` in the source tree.
pub fn sendmail_root() -> PathBuf {
    match std::env::var_os("DANEGATE_LAB_SENDMAIL_ROOT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/.cache/sendmail/root"),
    }
}

/// What goes into the .mc.
pub struct Mc {
    /// `SMART_HOST`, e.g. `[127.0.0.1]` or `relay:[127.0.0.1]`.
    pub smart_host: String,
    /// The port in `RELAY_MAILER_ARGS` and `ESMTP_MAILER_ARGS`
    /// (`TCP $h PORT`), as in the README.
    pub port: u16,
    /// Whether Sendmail adds the addresses of the machine's interfaces to
    /// its own names (class w), as a default install does. The relay tests
    /// turn it off (`DontProbeInterfaces`): danegate is at 127.0.0.1 here,
    /// standing in for a separate host.
    pub probe_interfaces: bool,
}

impl Mc {
    /// The README's Sendmail settings with `[ip]` of `smarthost`.
    pub fn readme(smarthost: SocketAddr) -> Mc {
        Mc {
            smart_host: format!("[{}]", smarthost.ip()),
            port: smarthost.port(),
            probe_interfaces: false,
        }
    }
}

pub struct Sendmail {
    pub dir: PathBuf,
    pub cf: PathBuf,
    bin: PathBuf,
    syslog: Option<Syslog>,
    runs: usize,
}

impl Sendmail {
    /// A Sendmail whose every remote delivery goes to `smarthost` (danegate),
    /// configured as the README says.
    pub fn new(lab: &Lab, smarthost: SocketAddr) -> Sendmail {
        Sendmail::with_mc(lab, "sendmail", &Mc::readme(smarthost))
    }

    /// A Sendmail in `lab/NAME/` built from `mc`.
    pub fn with_mc(lab: &Lab, name: &str, mc: &Mc) -> Sendmail {
        let root = sendmail_root();
        let bin = root.join("usr/libexec/sendmail/sendmail");
        let cf_dir = root.join("usr/share/sendmail/cf");
        if !bin.is_file() || !cf_dir.join("m4/cf.m4").is_file() {
            panic!(
                "Sendmail (sendmail-bin, sendmail-cf) not found under {}: {}",
                root.display(),
                util::SETUP_HINT
            );
        }
        for tool in ["m4", "unshare", "mount", "hostname"] {
            util::require_tool(tool);
        }
        let dir = lab.subdir(name);
        let dev = dir.join("dev");
        std::fs::create_dir_all(dir.join("queue")).expect("create sendmail queue");
        std::fs::create_dir_all(&dev).expect("create sendmail dev");
        for d in DEVICES {
            util::write_file(&dev.join(d), "");
        }
        util::write_file(&dir.join("service.switch"), "hosts files\naliases files\n");
        let mc_path = dir.join("sendmail.mc");
        util::write_file(&mc_path, mc_text(&dir, mc));
        let cf = dir.join("sendmail.cf");
        // m4 -D_CF_DIR_=.../cf/ .../cf/m4/cf.m4 sendmail.mc > sendmail.cf
        let text = util::run_ok(
            Command::new("m4")
                .arg(format!("-D_CF_DIR_={}/", cf_dir.display()))
                .arg(cf_dir.join("m4/cf.m4"))
                .arg(&mc_path),
        );
        util::write_file(&cf, text);
        let syslog = Syslog::start(&dev.join("log"), &dir.join("maillog"));
        Sendmail {
            dir,
            cf,
            bin,
            syslog: Some(syslog),
            runs: 0,
        }
    }

    /// `sendmail -C sendmail.cf ARGS`, inside the namespaces, in MTA mode
    /// (`-Am`: not the submit.cf of a default install).
    fn sendmail(&self, args: &[&str]) -> Command {
        let mut c = Command::new("unshare");
        c.args([
            "--mount",
            "--uts",
            "sh",
            "-c",
            NAMESPACE_SCRIPT,
            "sh",
            HOSTNAME,
        ])
        .arg(self.dir.join("dev"))
        .arg(&self.bin)
        .arg("-C")
        .arg(&self.cf)
        .arg("-Am")
        .args(args);
        c
    }

    /// Queues a message (`-odq`; LF line ends, a lone "." is content: `-oi`).
    /// Nothing is delivered until `queue_run`.
    pub fn submit(&self, from: &str, rcpts: &[&str], message: &[u8]) {
        let mut args = vec!["-odq", "-oi", "-f", from];
        args.extend_from_slice(rcpts);
        util::run_ok_stdin(&mut self.sendmail(&args), Some(message));
        self.sync_log();
    }

    /// `sendmail -q -v`: one queue run in the foreground. Returns its
    /// verbose transcript (the SMTP dialogue, both directions), also kept as
    /// `run-K.log` in the instance's dir.
    pub fn queue_run(&mut self) -> String {
        self.runs += 1;
        let out = util::run_output(&mut self.sendmail(&["-q", "-v"]), None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        util::write_file(&self.dir.join(format!("run-{}.log", self.runs)), &text);
        self.sync_log();
        assert!(
            out.status.success(),
            "sendmail -q -v failed ({}):\n{text}\nmaillog:\n{}",
            out.status,
            self.maillog()
        );
        text
    }

    /// `sendmail -bp`: the queue listing.
    pub fn queue_listing(&self) -> String {
        util::run_ok(&mut self.sendmail(&["-bp"]))
    }

    /// How many messages are queued (control files `qf*` in the queue).
    pub fn queue_count(&self) -> usize {
        std::fs::read_dir(self.dir.join("queue"))
            .expect("read sendmail queue")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("qf"))
            .count()
    }

    /// Address test mode: `/parse ADDR`, returning its last line, e.g.
    /// `mailer relay, host [127.0.0.1], user a@one.test`.
    pub fn parse(&self, addr: &str) -> String {
        let input = format!("/parse {addr}\n");
        let out = util::run_ok_stdin(&mut self.sendmail(&["-bt"]), Some(input.as_bytes()));
        out.lines()
            .rev()
            .find(|l| l.contains("mailer "))
            .unwrap_or_else(|| panic!("no mailer in sendmail -bt output:\n{out}"))
            .trim_start_matches("> ")
            .to_string()
    }

    /// Sendmail's syslog lines so far, without the `<priority>` prefix.
    pub fn maillog(&self) -> String {
        util::read_text(&self.dir.join("maillog"))
    }

    /// Maillog lines containing every needle.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        util::lines_with(&self.maillog(), needles)
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Returns once every line Sendmail has logged so far is in the maillog
    /// (call after the sendmail process has exited).
    fn sync_log(&self) {
        if let Some(s) = &self.syslog {
            s.sync();
        }
    }
}

/// The queue id a Sendmail log line is about
/// (`Nov 23 02:49:08 sendmail[23802]: 6AN2n8pe023802: to=...`).
pub fn queue_id(line: &str) -> String {
    line.split("]: ")
        .nth(1)
        .and_then(|rest| rest.split(": ").next())
        .unwrap_or_else(|| panic!("no queue id in {line:?}"))
        .to_string()
}

impl Drop for Sendmail {
    fn drop(&mut self) {
        // No daemon to stop; the syslog listener ends and its socket goes
        // (with the /dev copy) so a kept scratch dir holds only files.
        self.syslog.take();
        let _ = std::fs::remove_dir_all(self.dir.join("dev"));
    }
}

/// The .mc: the README's three lines, plus what keeps the lab to itself.
fn mc_text(dir: &Path, mc: &Mc) -> String {
    let d = dir.display();
    let mut s = format!(
        "divert(-1)\n\
         # Generated by danegate's integration lab (integration/lab/sendmail.rs).\n\
         divert(0)dnl\n\
         VERSIONID(`danegate lab')dnl\n\
         OSTYPE(`linux')dnl\n\
         define(`confDOMAIN_NAME', `{HOSTNAME}')dnl\n\
         define(`QUEUE_DIR', `{d}/queue')dnl\n\
         define(`confPID_FILE', `{d}/sendmail.pid')dnl\n\
         define(`ALIAS_FILE', `')dnl\n\
         define(`confSERVICE_SWITCH_FILE', `{d}/service.switch')dnl\n\
         define(`confTO_ICONNECT', `5s')dnl\n\
         define(`confTO_CONNECT', `5s')dnl\n\
         define(`confTO_INITIAL', `30s')dnl\n\
         define(`confTO_DATAFINAL', `30s')dnl\n\
         define(`confMIN_QUEUE_AGE', `0')dnl\n\
         FEATURE(`nocanonify')dnl\n"
    );
    if !mc.probe_interfaces {
        s.push_str("define(`confDONT_PROBE_INTERFACES', `True')dnl\n");
    }
    s.push_str(&format!(
        "define(`SMART_HOST', `{host}')dnl\n\
         define(`RELAY_MAILER_ARGS', `TCP $h {port}')dnl\n\
         define(`ESMTP_MAILER_ARGS', `TCP $h {port}')dnl\n\
         MAILER(`local')dnl\n\
         MAILER(`smtp')dnl\n",
        host = mc.smart_host,
        port = mc.port,
    ));
    s
}

/// A syslog receiver on a datagram socket: each message becomes a line of
/// `log`, its `<priority>` removed.
struct Syslog {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    /// Sync markers seen, see `sync`.
    synced: Arc<AtomicU64>,
    sent: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

/// A datagram the lab sends itself: not a log line.
const SYNC_MARK: &[u8] = b"danegate-lab-sync";

impl Syslog {
    fn start(socket: &Path, log: &Path) -> Syslog {
        let _ = std::fs::remove_file(socket);
        let sock = UnixDatagram::bind(socket)
            .unwrap_or_else(|e| panic!("bind syslog socket {}: {e}", socket.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("syslog socket timeout");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let synced = Arc::new(AtomicU64::new(0));
        let (stop2, synced2) = (stop.clone(), synced.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::SeqCst) {
                let Ok(n) = sock.recv(&mut buf) else {
                    continue;
                };
                let msg = &buf[..n];
                if msg == SYNC_MARK {
                    synced2.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let _ = file.write_all(&syslog_line(msg));
            }
        });
        Syslog {
            socket: socket.to_path_buf(),
            stop,
            synced,
            sent: AtomicU64::new(0),
            thread: Some(thread),
        }
    }

    /// Datagrams on one socket arrive in order: once our own marker has been
    /// read, so has everything sent before it.
    fn sync(&self) {
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let sock = UnixDatagram::unbound().expect("unbound datagram socket");
        sock.send_to(SYNC_MARK, &self.socket)
            .unwrap_or_else(|e| panic!("send to {}: {e}", self.socket.display()));
        util::wait_for("the lab's syslog listener to catch up", || {
            (self.synced.load(Ordering::SeqCst) >= n).then_some(())
        });
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `<22>Nov 23 02:47:02 sendmail[14438]: text` → `Nov 23 ... text\n`.
fn syslog_line(msg: &[u8]) -> Vec<u8> {
    let mut rest = msg;
    if rest.first() == Some(&b'<') {
        if let Some(end) = rest.iter().position(|&b| b == b'>') {
            rest = &rest[end + 1..];
        }
    }
    while rest.last() == Some(&b'\n') || rest.last() == Some(&0) {
        rest = &rest[..rest.len() - 1];
    }
    let mut line = rest.to_vec();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_line_drops_priority_and_ends_with_newline() {
        assert_eq!(
            syslog_line(b"<22>Nov 23 02:47:02 sendmail[1]: x: to=a@b, stat=queued"),
            b"Nov 23 02:47:02 sendmail[1]: x: to=a@b, stat=queued\n"
        );
        assert_eq!(syslog_line(b"no priority\n"), b"no priority\n");
    }

    #[test]
    fn queue_id_of_a_log_line() {
        assert_eq!(
            queue_id("Nov 23 02:49:08 sendmail[23802]: 6AN2n8pe023802: to=a@b, stat=queued"),
            "6AN2n8pe023802"
        );
    }

    #[test]
    fn mc_has_the_readme_lines() {
        let mc = mc_text(
            Path::new("/x"),
            &Mc::readme("127.0.0.1:10123".parse().unwrap()),
        );
        assert!(mc.contains("define(`SMART_HOST', `[127.0.0.1]')dnl\n"));
        assert!(mc.contains("define(`RELAY_MAILER_ARGS', `TCP $h 10123')dnl\n"));
        assert!(mc.contains("define(`ESMTP_MAILER_ARGS', `TCP $h 10123')dnl\n"));
        assert!(mc.contains("define(`confDONT_PROBE_INTERFACES', `True')dnl\n"));
        assert!(mc.contains("define(`QUEUE_DIR', `/x/queue')dnl\n"));
    }
}
