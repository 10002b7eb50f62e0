//! The check report as an operator reads it: one block per host and
//! address, then the warnings, the problems and the verdict.

use std::fmt::Write as _;

use super::report::{peer_label, AddressCheck, CertReport, CheckReport, HostCheck};
use crate::ops::certs::short_record;

impl CheckReport {
    /// The report as an operator reads it.
    pub fn text(&self) -> String {
        let mut out = format!("check {}: DNSSEC {}\n", self.domain, self.dnssec.detail);
        if let Some(r) = &self.resolver {
            let _ = writeln!(out, "  resolver self-test (danegate doctor): {}", r.verdict);
        }
        if let Some(mx) = &self.mx {
            let _ = writeln!(out, "  next hops from {} ({})", mx.source, mx.security);
        }
        if let Some(sts) = &self.mta_sts {
            let _ = writeln!(out, "  MTA-STS: {}", sts.summary);
            if let Some(p) = &sts.policy {
                let _ = writeln!(
                    out,
                    "    policy id {} ({}, fetched {}, age {} s, expires {})",
                    p.id, p.source, p.fetched_at, p.age_seconds, p.expires_at
                );
            }
            if let Some(e) = &sts.fetch_error {
                let _ = writeln!(out, "    fetch failed: {e}");
            }
        }
        for h in &self.hosts {
            h.text(&mut out);
        }
        for s in &self.skipped {
            let _ = writeln!(out, "  skipped {}: {}", s.name, s.reason);
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  cannot deliver: {e}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "WARNING {w}");
        }
        for p in &self.problems {
            let _ = writeln!(out, "PROBLEM {p}");
        }
        let summary = match self.verdict {
            "ok" => "every address of every MX host verified".to_owned(),
            "no-dane" => {
                "no DANE: no MX host of the domain is protected by DANE (nor by MTA-STS)".to_owned()
            }
            "failed" => format!("{} problem(s)", self.problems.len()),
            _ => "the domain could not be checked".to_owned(),
        };
        let _ = writeln!(out, "verdict: {} ({summary})", self.verdict);
        out
    }
}

impl HostCheck {
    fn text(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  host {} port {} preference {}: {}",
            self.name, self.port, self.preference, self.requirement
        );
        if self.mta_sts != "none" {
            let _ = writeln!(
                out,
                "    MTA-STS: {} (mechanism: {})",
                self.mta_sts, self.mechanism
            );
        }
        if self.address_security == "mixed" {
            // Each address with its own security and, where it differs
            // from the host's, requirement.
            let each: Vec<String> = self
                .addresses
                .iter()
                .map(|a| match a.requirement == self.requirement {
                    true => format!("{} ({})", a.address, a.security),
                    false => format!("{} ({}: {})", a.address, a.security, a.requirement),
                })
                .collect();
            let _ = writeln!(out, "    addresses: {}", each.join(", "));
        } else {
            let addresses: Vec<&str> = self.addresses.iter().map(|a| a.address.as_str()).collect();
            let _ = writeln!(
                out,
                "    addresses ({}): {}",
                self.address_security,
                addresses.join(" ")
            );
        }
        if let Some(c) = &self.cname {
            let sec = if c.secure { "secure" } else { "insecure" };
            let _ = writeln!(out, "    CNAME to {} ({sec})", c.target);
        }
        match &self.tlsa_name {
            Some(name) => {
                let _ = writeln!(out, "    TLSA at {name} (secure): {}", self.tlsa_status);
                for t in &self.tlsa {
                    let how = match (&t.unusable_reason, t.used) {
                        (Some(r), _) => format!("unusable: {r}"),
                        (None, true) => "usable".to_owned(),
                        (None, false) => "usable, not used (digest agility)".to_owned(),
                    };
                    let _ = writeln!(out, "      {} {how}", t.record);
                }
            }
            None => {
                let _ = writeln!(out, "    TLSA: {}", self.tlsa_status);
            }
        }
        for a in &self.addresses {
            a.text(&self.name, self.port, out);
        }
    }
}

impl AddressCheck {
    fn text(&self, host: &str, port: u16, out: &mut String) {
        let peer = peer_label(host, &self.address, port);
        let starttls = match self.starttls {
            Some(true) => "STARTTLS offered",
            Some(false) => "STARTTLS NOT offered",
            None => "STARTTLS unknown",
        };
        let verdict = if self.ok { "ok" } else { "FAILED" };
        if !self.connected {
            let e = self.error.as_deref().unwrap_or("not connected");
            let _ = writeln!(out, "    {peer}: {verdict}: {e}");
            return;
        }
        match (&self.tls, &self.error) {
            (Some(tls), _) => {
                let _ = writeln!(
                    out,
                    "    {peer}: {verdict}: {starttls}; {} TLS, {} with cipher {}",
                    tls.authentication, tls.protocol, tls.cipher
                );
                if let Some(why) = &tls.primary_engine_failure {
                    let _ = writeln!(
                        out,
                        "      needs the legacy TLS engine (OpenSSL): rustls: {why}"
                    );
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "    {peer}: {verdict}: {starttls}; {e}");
            }
            (None, None) => {
                let _ = writeln!(out, "    {peer}: {verdict}: {starttls}");
            }
        }
        for c in &self.chain {
            cert_text(c, "      ", out);
        }
        if let Some(d) = &self.dane {
            match (&d.matched, &d.failure) {
                (Some(m), _) => {
                    let _ = writeln!(out, "      DANE: matched {}", m.text);
                }
                (None, Some(f)) => {
                    let _ = writeln!(out, "      DANE: no match: {f}");
                }
                (None, None) => {}
            }
        }
        if let Some(w) = &self.webpki {
            let verdict = if w.valid { "valid" } else { "NOT valid" };
            let _ = writeln!(
                out,
                "      MTA-STS certificate check: {verdict}: {}",
                w.detail
            );
        }
        for p in &self.key_probes {
            let same = if p.same_as_default {
                " (the same certificate)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "      {}-only handshake: {}: {}{same}",
                p.algorithm, p.outcome, p.detail
            );
        }
    }
}

fn cert_text(c: &CertReport, indent: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "{indent}depth {}: {}; key {}; valid {} to {} ({} days left)",
        c.depth, c.subject, c.key_algorithm, c.not_before, c.not_after, c.expires_in_days
    );
    if !c.dns_names.is_empty() {
        let _ = writeln!(out, "{indent}  DNS names: {}", c.dns_names.join(" "));
    }
    let _ = writeln!(out, "{indent}  SPKI SHA-256 {}", c.spki_sha256);
    for r in &c.tlsa_matches {
        let _ = writeln!(out, "{indent}  matches TLSA {}", short_record(r, 16));
    }
}
