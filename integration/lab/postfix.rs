//! Private Postfix instances: a *receiver* (the destination MX: STARTTLS
//! with a self-signed certificate, virtual mailboxes in maildirs, chosen
//! recipients rejected) and a *legacy* MTA (relays everything to a
//! relayhost, danegate, over plain SMTP, with retry timers of 1-2 s).
//!
//! Each instance has its own config, queue and data directories and its own
//! maillog under the test's scratch dir, listens only on its own 127.x
//! address, and is stopped when dropped. It does not touch /etc/postfix
//! beyond reading the package's meta files.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::client::{self, Reply};
use crate::util::{self, Lab};

/// Who the instance plays.
pub enum Role {
    /// The destination: final delivery for `domains`, into maildirs.
    Receiver,
    /// The legacy MTA: everything not local goes to `relayhost` in plain
    /// SMTP, e.g. `[127.0.0.1]:10101`.
    Legacy { relayhost: String },
    /// A Postfix DANE relay, the reference danegate is compared with:
    /// `smtp_tls_security_level = dane`, `smtp_dns_support_level = dnssec`,
    /// its smtp(8) chrooted in the queue directory with a `resolv.conf`
    /// naming `resolver` (a validating resolver on port 53) with
    /// `options trust-ad`, connecting from `bind` so that receivers can
    /// tell its connections from danegate's. (Used by the DNS lab.)
    #[allow(dead_code)]
    DaneRelay {
        resolver: std::net::IpAddr,
        bind: std::net::IpAddr,
    },
}

pub struct Options {
    /// Short name used in paths and as syslog_name (`lab-NAME`).
    pub name: String,
    pub hostname: String,
    /// Where its smtpd listens.
    pub smtpd: SocketAddr,
    pub role: Role,
    /// Domains whose mail this instance delivers itself (virtual mailboxes).
    pub domains: Vec<String>,
    /// Addresses with a mailbox; any other address in `domains` is rejected
    /// at RCPT with `550 5.1.1 ... User unknown in virtual mailbox table`.
    pub mailboxes: Vec<String>,
    /// Extra RCPT rejections, `(address, "550 5.7.1 text")`, through a
    /// `check_recipient_access` table.
    pub rejects: Vec<(String, String)>,
}

pub struct Postfix {
    pub opts: Options,
    pub dir: PathBuf,
    pub conf: PathBuf,
    mail: PathBuf,
    /// More smtpd listeners, each with its `-o name=value` overrides.
    extra_smtpd: Vec<(SocketAddr, Vec<String>)>,
    running: bool,
}

/// The legacy MTA's own mail domain: senders live here, and bounces are
/// delivered here (readable as maildirs).
pub const LEGACY_DOMAIN: &str = "legacy.lab.test";

impl Postfix {
    /// A receiver for `domains` with the given mailboxes, started.
    pub fn receiver(lab: &Lab, smtpd: SocketAddr, domains: &[&str], mailboxes: &[&str]) -> Postfix {
        let mut p = Postfix::create(
            lab,
            Options {
                name: "receiver".into(),
                hostname: "mx.example.test".into(),
                smtpd,
                role: Role::Receiver,
                domains: domains.iter().map(|s| s.to_string()).collect(),
                mailboxes: mailboxes.iter().map(|s| s.to_string()).collect(),
                rejects: Vec::new(),
            },
        );
        p.start();
        p
    }

    /// A legacy MTA relaying to `relayhost`, started. Its senders are
    /// `NAME@legacy.lab.test`; `sender@legacy.lab.test` has a mailbox.
    pub fn legacy(lab: &Lab, smtpd: SocketAddr, relayhost: &str) -> Postfix {
        let mut p = Postfix::create(
            lab,
            Options {
                name: "legacy".into(),
                hostname: format!("mta.{LEGACY_DOMAIN}"),
                smtpd,
                role: Role::Legacy {
                    relayhost: relayhost.to_string(),
                },
                domains: vec![LEGACY_DOMAIN.into()],
                mailboxes: vec![format!("sender@{LEGACY_DOMAIN}")],
                rejects: Vec::new(),
            },
        );
        p.start();
        p
    }

    /// Writes the instance's files without starting it.
    pub fn create(lab: &Lab, opts: Options) -> Postfix {
        util::require_tool("postfix");
        util::require_tool("postqueue");
        let dir = lab.subdir(&opts.name);
        let conf = dir.join("conf");
        let mail = dir.join("mail");
        for d in [&conf, &mail, &dir.join("queue"), &dir.join("data")] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        // master locks files in data_directory as user postfix; virtual(8)
        // delivers as the static uid below.
        util::chown_r("postfix", &dir.join("data"));
        util::chown_r("nobody:nogroup", &mail);

        let mut vmailbox = String::new();
        for m in &opts.mailboxes {
            let (local, domain) = m.split_once('@').expect("mailbox address has @");
            writeln!(vmailbox, "{m} {domain}/{local}/").unwrap();
        }
        util::write_file(&conf.join("vmailbox"), vmailbox);
        let mut access = String::new();
        for (addr, action) in &opts.rejects {
            writeln!(access, "{addr} {action}").unwrap();
        }
        util::write_file(&conf.join("recipient_access"), access);

        if matches!(opts.role, Role::Receiver) {
            let names = vec![opts.hostname.clone()];
            let ck = rcgen::generate_simple_self_signed(names).expect("rcgen certificate");
            util::write_file(&conf.join("key.pem"), ck.key_pair.serialize_pem());
            util::write_file(&conf.join("cert.pem"), ck.cert.pem());
        }

        if let Role::DaneRelay { resolver, .. } = &opts.role {
            // The chrooted smtp(8) resolves through `resolver` and trusts
            // its AD bit (glibc drops AD without trust-ad).
            let etc = dir.join("queue/etc");
            std::fs::create_dir_all(&etc)
                .unwrap_or_else(|e| panic!("create {}: {e}", etc.display()));
            util::write_file(
                &etc.join("resolv.conf"),
                format!("nameserver {resolver}\noptions trust-ad edns0\n"),
            );
            for f in [
                "services",
                "hosts",
                "nsswitch.conf",
                "host.conf",
                "localtime",
            ] {
                let _ = std::fs::copy(Path::new("/etc").join(f), etc.join(f));
            }
        }
        let p = Postfix {
            opts,
            dir,
            conf,
            mail,
            extra_smtpd: Vec::new(),
            running: false,
        };
        util::write_file(&p.conf.join("main.cf"), p.main_cf());
        util::write_file(&p.conf.join("master.cf"), p.master_cf());
        util::backdate(&p.conf.join("main.cf"));
        util::backdate(&p.conf.join("master.cf"));
        p
    }

    fn main_cf(&self) -> String {
        let d = self.dir.display();
        let c = self.conf.display();
        let o = &self.opts;
        let mut s = format!(
            "# Generated by danegate's integration lab (integration/lab/postfix.rs).\n\
             compatibility_level = 3.6\n\
             config_directory = {c}\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\n\
             syslog_name = lab-{name}\n\
             myhostname = {host}\n\
             mydomain = lab.test\n\
             myorigin = $myhostname\n\
             mydestination =\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             alias_maps =\n\
             alias_database =\n\
             biff = no\n\
             append_dot_mydomain = no\n\
             virtual_mailbox_domains = {domains}\n\
             virtual_mailbox_maps = texthash:{c}/vmailbox\n\
             virtual_mailbox_base = {m}\n\
             virtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\n\
             smtpd_recipient_restrictions = check_recipient_access texthash:{c}/recipient_access, permit_mynetworks, reject_unauth_destination\n",
            name = o.name,
            host = o.hostname,
            domains = o.domains.join(", "),
            m = self.mail.display(),
        );
        match &o.role {
            Role::Receiver => {
                let _ = write!(
                    s,
                    "smtpd_tls_security_level = may\n\
                     smtpd_tls_chain_files = {c}/key.pem, {c}/cert.pem\n\
                     smtpd_tls_received_header = yes\n\
                     smtpd_tls_loglevel = 1\n"
                );
            }
            Role::Legacy { relayhost } => {
                let _ = write!(
                    s,
                    "relayhost = {relayhost}\n\
                     smtp_tls_security_level = none\n\
                     queue_run_delay = 1s\n\
                     minimal_backoff_time = 1s\n\
                     maximal_backoff_time = 2s\n"
                );
            }
            Role::DaneRelay { bind, .. } => {
                let _ = write!(
                    s,
                    "smtp_dns_support_level = dnssec\n\
                     smtp_tls_security_level = dane\n\
                     smtp_tls_loglevel = 1\n\
                     smtp_tls_session_cache_database =\n\
                     smtp_bind_address = {bind}\n\
                     queue_run_delay = 1s\n\
                     minimal_backoff_time = 1s\n\
                     maximal_backoff_time = 2s\n"
                );
            }
        }
        s
    }

    /// Adds an smtpd listener on `addr` with `-o name=value` overrides
    /// (e.g. its own TLS settings) to a created, stopped instance. (Used
    /// by the DNS lab.)
    #[allow(dead_code)]
    pub fn add_smtpd(&mut self, addr: SocketAddr, overrides: &[String]) {
        assert!(!self.running, "{} is running", self.opts.name);
        assert!(
            overrides.iter().all(|o| !o.contains(char::is_whitespace)),
            "master.cf -o values cannot hold white space: {overrides:?}"
        );
        self.extra_smtpd.push((addr, overrides.to_vec()));
        util::write_file(&self.conf.join("master.cf"), self.master_cf());
        util::backdate(&self.conf.join("master.cf"));
    }

    /// Every address an smtpd of this instance listens on.
    fn listeners(&self) -> Vec<SocketAddr> {
        std::iter::once(self.opts.smtpd)
            .chain(self.extra_smtpd.iter().map(|(a, _)| *a))
            .collect()
    }

    fn master_cf(&self) -> String {
        // No chroot anywhere: the instance lives in a temp dir.
        let services = [
            "pickup    unix  n - n 60    1 pickup",
            "cleanup   unix  n - n -     0 cleanup",
            "qmgr      unix  n - n 300   1 qmgr",
            "tlsmgr    unix  - - n 1000? 1 tlsmgr",
            "rewrite   unix  - - n -     - trivial-rewrite",
            "bounce    unix  - - n -     0 bounce",
            "defer     unix  - - n -     0 bounce",
            "trace     unix  - - n -     0 bounce",
            "verify    unix  - - n -     1 verify",
            "flush     unix  n - n 1000? 0 flush",
            "proxymap  unix  - - n -     - proxymap",
            "proxywrite unix - - n -     1 proxymap",
            "smtp      unix  - - n -     - smtp",
            "relay     unix  - - n -     - smtp",
            "showq     unix  n - n -     - showq",
            "error     unix  - - n -     - error",
            "retry     unix  - - n -     - error",
            "discard   unix  - - n -     - discard",
            "local     unix  - n n -     - local",
            "virtual   unix  - n n -     - virtual",
            "lmtp      unix  - - n -     - lmtp",
            "anvil     unix  - - n -     1 anvil",
            "scache    unix  - - n -     1 scache",
            "postlog   unix-dgram n - n - 1 postlogd",
        ];
        let mut s = String::from(
            "# Generated by danegate's integration lab (integration/lab/postfix.rs).\n",
        );
        let _ = writeln!(s, "{} inet n - n - - smtpd", self.opts.smtpd);
        for (addr, overrides) in &self.extra_smtpd {
            let _ = write!(s, "{addr} inet n - n - - smtpd");
            for o in overrides {
                let _ = write!(s, "\n  -o {o}");
            }
            s.push('\n');
        }
        // A DANE relay's smtp(8) runs chrooted, where its resolv.conf is.
        let chroot = matches!(self.opts.role, Role::DaneRelay { .. });
        for line in services {
            match line.split_whitespace().next() {
                Some("smtp" | "relay") if chroot => {
                    s.push_str(&line.replacen("- - n", "- - y", 1));
                }
                _ => s.push_str(line),
            }
            s.push('\n');
        }
        s
    }

    /// Adds settings to main.cf of an instance not yet started.
    pub fn append_main_cf(&self, lines: &[&str]) {
        let path = self.conf.join("main.cf");
        let mut text = util::read_text(&path);
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        util::write_file(&path, text);
        util::backdate(&path);
    }

    /// A receiver like [`receiver`](Self::receiver) with extra main.cf
    /// settings.
    pub fn receiver_with(
        lab: &Lab,
        smtpd: SocketAddr,
        domains: &[&str],
        mailboxes: &[&str],
        extra: &[&str],
    ) -> Postfix {
        let mut p = Postfix::create(
            lab,
            Options {
                name: "receiver".into(),
                hostname: "mx.example.test".into(),
                smtpd,
                role: Role::Receiver,
                domains: domains.iter().map(|s| s.to_string()).collect(),
                mailboxes: mailboxes.iter().map(|s| s.to_string()).collect(),
                rejects: Vec::new(),
            },
        );
        p.append_main_cf(extra);
        p.start();
        p
    }

    fn postfix(&self) -> Command {
        let mut c = Command::new("postfix");
        c.arg("-c").arg(&self.conf);
        c
    }

    pub fn start(&mut self) {
        assert!(!self.running, "{} already running", self.opts.name);
        for addr in self.listeners() {
            util::assert_free(addr);
        }
        let out = util::run_output(self.postfix().arg("start"), None);
        if !out.status.success() {
            panic!(
                "postfix {} failed to start ({}): {}{}\nmaillog:\n{}",
                self.opts.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                util::tail(&self.maillog(), 30)
            );
        }
        self.running = true;
        for addr in self.listeners() {
            util::wait_listening(addr, &format!("postfix {}", self.opts.name));
        }
    }

    /// Stops the instance and waits until its port is free.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        util::run_ok(self.postfix().arg("stop"));
        for addr in self.listeners() {
            util::wait_free(addr, &format!("postfix {}", self.opts.name));
        }
    }

    pub fn maillog(&self) -> String {
        util::read_text(&self.dir.join("maillog"))
    }

    /// Waits for a maillog line containing every needle; returns it.
    #[track_caller]
    pub fn wait_log(&self, needles: &[&str]) -> String {
        util::wait_for(
            &format!("postfix {} maillog line with {needles:?}", self.opts.name),
            || {
                util::lines_with(&self.maillog(), needles)
                    .first()
                    .map(|l| l.to_string())
            },
        )
    }

    /// Every delivery-status line (`status=...`) logged for `rcpt`.
    pub fn statuses(&self, rcpt: &str) -> Vec<String> {
        let to = format!("to=<{rcpt}>");
        util::lines_with(&self.maillog(), &[&to, "status="])
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Waits for a `status=STATUS` line for `rcpt`.
    #[track_caller]
    pub fn wait_status(&self, rcpt: &str, status: &str) -> String {
        let to = format!("to=<{rcpt}>");
        let st = format!("status={status}");
        util::wait_for(
            &format!("postfix {} to log {st} for <{rcpt}>", self.opts.name),
            || {
                util::lines_with(&self.maillog(), &[&to, &st])
                    .first()
                    .map(|l| l.to_string())
            },
        )
    }

    /// Submits a message over SMTP to this instance's smtpd; asserts every
    /// reply up to DATA is positive and returns the reply to the final dot.
    pub fn submit(&self, from: &str, rcpts: &[&str], message: &[u8]) -> Reply {
        client::submit(self.opts.smtpd, "lab-client.lab.test", from, rcpts, message)
    }

    /// The maildir of `addr` under this instance's virtual_mailbox_base.
    pub fn maildir(&self, addr: &str) -> PathBuf {
        let (local, domain) = addr.split_once('@').expect("address has @");
        self.mail.join(domain).join(local)
    }

    /// Delivered messages of `addr`, oldest first by file name.
    pub fn messages(&self, addr: &str) -> Vec<Vec<u8>> {
        maildir_messages(&self.maildir(addr))
    }

    /// Waits until `addr` holds at least `n` messages; returns them all.
    #[track_caller]
    pub fn wait_messages(&self, addr: &str, n: usize) -> Vec<Vec<u8>> {
        util::wait_for(&format!("{n} message(s) delivered to {addr}"), || {
            let m = self.messages(addr);
            (m.len() >= n).then_some(m)
        })
    }

    /// The queue as `postqueue -j` prints it: one JSON object per message.
    pub fn queue(&self) -> Vec<String> {
        let out = util::run_ok(
            Command::new("postqueue")
                .arg("-c")
                .arg(&self.conf)
                .arg("-j"),
        );
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    /// `postqueue -f`: attempt delivery of all queued mail now.
    pub fn flush(&self) {
        util::run_ok(
            Command::new("postqueue")
                .arg("-c")
                .arg(&self.conf)
                .arg("-f"),
        );
    }

    #[track_caller]
    pub fn wait_queue_empty(&self) {
        util::wait_for(
            &format!("postfix {} queue to empty", self.opts.name),
            || self.queue().is_empty().then_some(()),
        );
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        // Never panic here: this also runs while a failed test unwinds.
        let _ = self.postfix().arg("stop").output();
        let pid_file = self.dir.join("queue/pid/master.pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let pid = pid.trim();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            // Only our own master, still alive after `postfix stop`.
            if !pid.is_empty() && comm.trim() == "master" {
                std::thread::sleep(Duration::from_millis(500));
                let _ = Command::new("kill").args(["-KILL", pid]).output();
            }
        }
    }
}

/// Files of a maildir (`new/` and `cur/`), sorted by name (delivery time).
pub fn maildir_messages(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())))
        .collect()
}
