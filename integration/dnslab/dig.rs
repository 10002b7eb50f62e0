//! One DNS question to one server with `kdig`, and its answer in a form
//! tests can assert on: the RCODE, the AD flag, the extended DNS error and
//! the records of each section. The lab's yardstick for "what a validating
//! resolver says": independent of danegate and of hickory.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::lab::{require_tool, run_output};

/// One resource record as kdig prints it: owner, TTL, class, type, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Fully qualified, lower case, with the trailing dot.
    pub name: String,
    pub ttl: u32,
    /// `MX`, `A`, `TLSA`, `RRSIG`, ...
    pub rtype: String,
    /// The record data as kdig prints it, fields joined by single spaces.
    pub data: String,
}

/// The answer to one question.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`...; `TIMEOUT` when
    /// kdig got no answer at all.
    pub rcode: String,
    /// The AD (authenticated data) flag.
    pub ad: bool,
    /// The AA (authoritative answer) flag.
    pub aa: bool,
    /// The extended DNS error kdig printed, e.g. `7 (Signature Expired): '...'`.
    pub ede: Option<String>,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    /// How long kdig took.
    pub elapsed: Duration,
    /// kdig's whole output, for failure messages.
    pub text: String,
}

impl Answer {
    /// The data of the answer records of type `rtype` (RRSIGs excluded
    /// unless asked for), sorted, so tests compare sets.
    pub fn data(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether the answer section holds an RRSIG (the server sent DNSSEC data).
    pub fn signed(&self) -> bool {
        self.answer.iter().any(|r| r.rtype == "RRSIG")
    }
}

/// How a query is asked.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Set the DO bit (`+dnssec`).
    pub dnssec: bool,
    /// Ask for recursion (`+rec`); authoritative servers are asked without.
    pub recurse: bool,
    /// Seconds kdig waits for the answer (`+timeout`), no retries.
    pub timeout_secs: u32,
}

impl Ask {
    /// A question to a resolver with the DO bit, as danegate asks in
    /// trust-ad mode.
    pub const RESOLVER: Ask = Ask {
        dnssec: true,
        recurse: true,
        timeout_secs: 10,
    };
    /// A question to an authoritative server, answered from its zones.
    pub const AUTHORITATIVE: Ask = Ask {
        dnssec: true,
        recurse: false,
        timeout_secs: 1,
    };
}

/// Asks `server` for `name`/`rtype` with kdig.
pub fn query(server: SocketAddr, name: &str, rtype: &str, ask: Ask) -> Answer {
    let kdig = require_tool("kdig");
    let mut cmd = Command::new(kdig);
    cmd.arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg(format!("+timeout={}", ask.timeout_secs))
        .arg("+retry=0")
        .arg(if ask.dnssec { "+dnssec" } else { "+nodnssec" })
        .arg(if ask.recurse { "+rec" } else { "+norec" })
        // names as DNS holds them (A-labels), not decoded for display
        .arg("+noidn")
        .arg(name)
        .arg(rtype);
    let start = Instant::now();
    let out = run_output(&mut cmd, None);
    let elapsed = start.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut a = parse(&text);
    a.elapsed = elapsed;
    a
}

/// Parses kdig's default (text) output.
pub fn parse(text: &str) -> Answer {
    let mut a = Answer {
        rcode: "TIMEOUT".to_string(),
        ad: false,
        aa: false,
        ede: None,
        answer: Vec::new(),
        authority: Vec::new(),
        elapsed: Duration::ZERO,
        text: text.to_string(),
    };
    #[derive(PartialEq)]
    enum Section {
        Other,
        Answer,
        Authority,
    }
    let mut section = Section::Other;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.split("status: ").nth(1) {
            a.rcode = rest.split(';').next().unwrap_or("").trim().to_string();
        } else if let Some(rest) = line.strip_prefix(";; Flags: ") {
            let flags = rest.split(';').next().unwrap_or("");
            a.ad = flags.split_whitespace().any(|f| f == "ad");
            a.aa = flags.split_whitespace().any(|f| f == "aa");
        } else if let Some(rest) = line.strip_prefix(";; EDE: ") {
            a.ede = Some(rest.to_string());
        } else if line.starts_with(";; ANSWER SECTION") {
            section = Section::Answer;
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = Section::Authority;
        } else if line.is_empty() || line.ends_with("SECTION:") {
            // A blank line ends a section; so does the next section's title.
            section = Section::Other;
        } else if line.starts_with(';') {
            continue;
        } else if section != Section::Other {
            if let Some(r) = parse_record(line) {
                match section {
                    Section::Answer => a.answer.push(r),
                    Section::Authority => a.authority.push(r),
                    Section::Other => {}
                }
            }
        }
    }
    a
}

fn parse_record(line: &str) -> Option<Record> {
    let mut f = line.split_whitespace();
    let name = f.next()?.to_ascii_lowercase();
    let ttl = f.next()?.parse().ok()?;
    let _class = f.next()?;
    let rtype = f.next()?.to_string();
    let data = f.collect::<Vec<_>>().join(" ");
    Some(Record {
        name,
        ttl,
        rtype,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kdig_output() {
        let text = "\
;; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 4242
;; Flags: qr rd ra ad; QUERY: 1; ANSWER: 2; AUTHORITY: 0; ADDITIONAL: 1

;; EDNS PSEUDOSECTION:
;; Version: 0; flags: do; UDP size: 1232 B; ext-rcode: NOERROR

;; QUESTION SECTION:
;; secure.test.        \t\tIN\tMX

;; ANSWER SECTION:
secure.test.        \t300\tIN\tMX\t10 mx1.secure.test.
secure.test.        \t300\tIN\tRRSIG\tMX 13 2 300 20261207000000 20261123000000 123 secure.test. [omitted]

;; Received 200 B
;; Time 2026-11-23 02:00:00 UTC
;; From 127.0.53.53@53(UDP) in 0.4 ms
";
        let a = parse(text);
        assert_eq!(a.rcode, "NOERROR");
        assert!(a.ad);
        assert!(!a.aa);
        assert_eq!(a.data("MX"), ["10 mx1.secure.test."]);
        assert!(a.signed());
        assert!(a.authority.is_empty());
    }

    #[test]
    fn no_answer_is_a_timeout() {
        let a = parse(";; WARNING: failed to query server 127.0.53.99@53(UDP)\n");
        assert_eq!(a.rcode, "TIMEOUT");
        assert!(!a.ad);
    }
}
