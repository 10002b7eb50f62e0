//! Plumbing shared by every lab component: the per-test temp dir (kept and
//! named when a test fails), bounded waits, locating required tools, running
//! commands, and reading files while daemons write them.
//!
//! Nothing here knows about Postfix, Exim or danegate.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for any single wait in the lab. A broken run fails after this
/// instead of hanging.
pub const WAIT: Duration = Duration::from_secs(60);

/// What a test prints when it fails because the lab is not installed.
pub const SETUP_HINT: &str = "install the lab with `integration/test-all --setup` (as root)";

/// One test's scratch directory. Removed when the test passes; kept, and its
/// path printed, when the test panics, so every component's log can be read.
///
/// Declare it first in a test so it is dropped last: components stop (their
/// own guards) before the directory is judged.
pub struct Lab {
    pub dir: PathBuf,
    pub name: String,
}

impl Lab {
    pub fn new(name: &str) -> Lab {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "danegate-lab-{name}-{}-{nanos:09}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        eprintln!("lab {name}: scratch dir {}", dir.display());
        Lab {
            dir,
            name: name.to_string(),
        }
    }

    /// A fresh sub-directory of the scratch dir.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        d
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("DANEGATE_LAB_KEEP").is_some() {
            eprintln!(
                "lab {}: kept scratch dir with every component's config and log: {}",
                self.name,
                self.dir.display()
            );
            // The dir is gone with the machine in CI: show each log's end.
            for log in find_logs(&self.dir) {
                let text = strip_ansi(&read_text(&log));
                eprintln!(
                    "---- {} (last 40 lines) ----\n{}",
                    log.display(),
                    tail(&text, 40)
                );
            }
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn find_logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(OsStr::to_str).unwrap_or("");
        if p.is_dir() && !matches!(name, "queue" | "spool" | "mail") {
            out.extend(find_logs(&p));
        } else if name.ends_with("log") || name.ends_with(".log") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Polls `probe` until it returns `Some`, or panics after `WAIT` naming what
/// was awaited and the last state `probe` reported through `last`.
#[track_caller]
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    wait_for_within(WAIT, what, &mut probe)
}

#[track_caller]
pub fn wait_for_within<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The path of a required executable. A missing tool fails the test: the
/// lab's tests never skip.
#[track_caller]
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("required tool `{name}` not found: {SETUP_HINT}");
}

/// Runs a command to completion (bounded by `WAIT`), returning its output.
/// Panics when it cannot start or runs too long; the exit status is the
/// caller's to judge.
pub fn run_output(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {desc}: {e}"));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(bytes)
            .unwrap_or_else(|e| panic!("write stdin of {desc}: {e}"));
    }
    // Read the pipes on threads so a chatty child cannot block on a full pipe
    // while we poll for its exit.
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out_pipe, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err_pipe, &mut v);
        v
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{desc} still running after {WAIT:?}: killed");
            }
            Err(e) => panic!("wait for {desc}: {e}"),
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Runs a command that must succeed; returns its stdout as text.
pub fn run_ok(cmd: &mut Command) -> String {
    run_ok_stdin(cmd, None)
}

pub fn run_ok_stdin(cmd: &mut Command, stdin: Option<&[u8]>) -> String {
    let desc = format!("{cmd:?}");
    let out = run_output(cmd, stdin);
    if !out.status.success() {
        panic!(
            "{desc} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file's text, or "" while it does not exist yet (logs appear lazily).
pub fn read_text(path: &Path) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `chown -R owner path`, with a user name as the lab's daemons know them.
pub fn chown_r(owner: &str, path: &Path) {
    run_ok(Command::new("chown").arg("-R").arg(owner).arg(path));
}

/// Sets a file's mtime into the past. Postfix delays its start by ~2 s when
/// main.cf was written in the last two seconds.
pub fn backdate(path: &Path) {
    run_ok(Command::new("touch").args(["-d", "-1 min"]).arg(path));
}

/// Panics unless `addr` can be bound now: a leftover daemon from an earlier
/// run would otherwise answer in place of this test's component.
#[track_caller]
pub fn assert_free(addr: SocketAddr) {
    if let Err(e) = TcpListener::bind(addr) {
        panic!("lab address {addr} is busy ({e}): a leftover daemon from an earlier run?");
    }
}

/// Waits until `addr` accepts TCP connections.
#[track_caller]
pub fn wait_listening(addr: SocketAddr, what: &str) {
    wait_for(&format!("{what} to listen on {addr}"), || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    });
}

/// Waits until nothing listens on `addr` any more (a stopped daemon's port).
#[track_caller]
pub fn wait_free(addr: SocketAddr, what: &str) {
    wait_for(&format!("{what} to release {addr}"), || {
        TcpListener::bind(addr).ok().map(|_| ())
    });
}

/// Strips ANSI colour escapes, in case a logger colours its output even
/// when it writes to a file.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
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

/// The lines of `log` that contain every one of `needles`.
pub fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Text for a panic message: the tail of a log, so failures show context.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_ansi_removes_colour_codes() {
        assert_eq!(
            strip_ansi(
                "\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[3mrecipient\u{1b}[0m=<a@b>"
            ),
            "2024  INFO recipient=<a@b>"
        );
    }

    #[test]
    fn lines_with_needs_every_needle() {
        let log = "a to=<x> status=sent\na to=<y> status=sent\nb to=<x> status=deferred\n";
        assert_eq!(lines_with(log, &["to=<x>", "status="]).len(), 2);
        assert_eq!(
            lines_with(log, &["to=<x>", "status=sent"]),
            vec!["a to=<x> status=sent"]
        );
    }
}
