//! The report of `danegate check`: the JSON object whose field names are
//! stable (see the module documentation of [`crate::ops::check`]), and
//! the verdict drawn from it. The text form is in `text.rs`.

use std::net::IpAddr;

use serde::Serialize;

use crate::ops::certs::hex;
use crate::ops::doctor::{Report as DoctorReport, Status};
use crate::ops::resolve::{CnameReport, MxReport, SkippedReport};
use crate::tls::dane::DaneMatch;
use crate::tls::{Engine, TlsState};

/// What the DNSSEC probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Dnssec {
    pub validated: bool,
    pub detail: String,
}

/// The resolver self-test (`danegate doctor`) as the check ran it.
#[derive(Debug, Clone, Serialize)]
pub struct ResolverCheck {
    /// `ok`, `warn` or `fail`.
    pub verdict: &'static str,
    /// Each warning and failure: `check server: detail`.
    pub findings: Vec<String>,
}

/// The whole report (the JSON object; see the module documentation).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub domain: String,
    pub verdict: &'static str,
    pub ok: bool,
    pub dnssec: Dnssec,
    pub resolver: Option<ResolverCheck>,
    pub mx: Option<MxReport>,
    pub error: Option<String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub skipped: Vec<SkippedReport>,
    /// The domain's MTA-STS policy, or why none applies; null when no
    /// plan was made.
    pub mta_sts: Option<super::sts::StsReport>,
    pub hosts: Vec<HostCheck>,
}

#[derive(Debug, Serialize)]
pub struct HostCheck {
    pub name: String,
    pub port: u16,
    pub preference: u16,
    pub address_security: String,
    pub cname: Option<CnameReport>,
    pub requirement: String,
    pub dane: bool,
    /// What protects mail to this host: "dane", "mta-sts", "none",
    /// "refused".
    pub mechanism: &'static str,
    /// What the MTA-STS policy says about this host (as `resolve`).
    pub mta_sts: String,
    pub ok: bool,
    pub tlsa_status: &'static str,
    pub tlsa_name: Option<String>,
    pub tlsa: Vec<TlsaReport>,
    pub problems: Vec<String>,
    pub addresses: Vec<AddressCheck>,
}

#[derive(Debug, Serialize)]
pub struct TlsaReport {
    pub record: String,
    pub usable: bool,
    pub used: bool,
    pub unusable_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AddressCheck {
    pub address: String,
    pub family: &'static str,
    /// The security of the A or AAAA RRset it came from.
    pub security: String,
    /// What a sender requires of a connection to it (as `resolve` says
    /// it): DANE applies to addresses from secure RRsets.
    pub requirement: String,
    pub ok: bool,
    pub connected: bool,
    pub starttls: Option<bool>,
    pub error: Option<String>,
    pub tls: Option<TlsReport>,
    pub chain: Vec<CertReport>,
    pub dane: Option<DaneReport>,
    /// The certificate judged as MTA-STS judges it, where a policy names
    /// the host and DANE does not apply; null otherwise.
    pub webpki: Option<super::sts::WebPkiReport>,
    pub key_probes: Vec<KeyProbe>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TlsReport {
    pub protocol: String,
    pub cipher: String,
    pub sni: Option<String>,
    pub authentication: &'static str,
    /// `rustls`, or `legacy` (OpenSSL).
    pub engine: &'static str,
    /// Why rustls could not, when the address needed the legacy engine.
    pub primary_engine_failure: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub depth: usize,
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub key_algorithm: String,
    pub not_before: String,
    pub not_after: String,
    pub expires_in_days: i64,
    pub spki_sha256: String,
    pub cert_sha256: String,
    pub tlsa_matches: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DaneReport {
    pub verified: bool,
    pub matched: Option<MatchReport>,
    pub failure: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MatchReport {
    pub usage: u8,
    pub selector: u8,
    pub mtype: u8,
    pub data: String,
    pub depth: usize,
    pub from_dns: bool,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct KeyProbe {
    pub algorithm: &'static str,
    pub outcome: &'static str,
    pub detail: String,
    pub same_as_default: bool,
    pub leaf: Option<CertReport>,
}

impl CheckReport {
    pub(super) fn new(domain: &str, dnssec: Dnssec) -> CheckReport {
        CheckReport {
            domain: domain.to_owned(),
            verdict: "error",
            ok: false,
            dnssec,
            resolver: None,
            mx: None,
            error: None,
            problems: Vec::new(),
            warnings: Vec::new(),
            skipped: Vec::new(),
            mta_sts: None,
            hosts: Vec::new(),
        }
    }

    /// A report for a domain that could not be looked at (DNS could not be
    /// set up).
    pub fn unchecked(domain: &str, dnssec: Dnssec, error: String) -> CheckReport {
        let mut r = CheckReport::new(domain, dnssec);
        r.problems.push(error.clone());
        r.error = Some(error);
        r
    }

    /// Records the resolver self-test: its failures are problems (the
    /// answers the check judged by cannot be trusted), its warnings
    /// warnings. Called before [`Self::finish`] decides the verdict.
    pub(super) fn resolver_findings(&mut self, doctor: DoctorReport) {
        let mut findings = Vec::new();
        for c in &doctor.checks {
            let server = c
                .server
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let line = format!("{}{server}: {}", c.check, c.detail);
            match c.status {
                Status::Fail => self.problems.push(format!("resolver self-test: {line}")),
                Status::Warn => self.warnings.push(format!("resolver self-test: {line}")),
                Status::Ok | Status::Skip => continue,
            }
            findings.push(line);
        }
        self.resolver = Some(ResolverCheck {
            verdict: match doctor.verdict {
                Status::Ok | Status::Skip => "ok",
                Status::Warn => "warn",
                Status::Fail => "fail",
            },
            findings,
        });
        if self.verdict == "ok" && !self.problems.is_empty() {
            self.verdict = "failed";
            self.ok = false;
        }
    }

    /// Collects the hosts' problems and warnings and decides the verdict.
    pub(super) fn finish(mut self) -> CheckReport {
        for h in &self.hosts {
            for p in &h.problems {
                self.problems.push(format!("{}: {p}", h.name));
            }
            for a in &h.addresses {
                let peer = peer_label(&h.name, &a.address, h.port);
                for p in &a.problems {
                    self.problems.push(format!("{peer}: {p}"));
                }
                for w in &a.warnings {
                    self.warnings.push(format!("{peer}: {w}"));
                }
            }
        }
        self.verdict = if self.error.is_some() || !self.dnssec.validated || self.hosts.is_empty() {
            "error"
        } else if !self
            .hosts
            .iter()
            .any(|h| h.dane || h.mechanism == "mta-sts")
        {
            "no-dane"
        } else if self.problems.is_empty() {
            "ok"
        } else {
            "failed"
        };
        self.ok = self.verdict == "ok";
        self
    }
}

/// `host[address]:port`, as `outbound::Peer` writes it.
pub(super) fn peer_label(host: &str, address: &str, port: u16) -> String {
    format!("{host}[{address}]:{port}")
}

impl TlsReport {
    /// The `tls` object of an address, for a connection in `state`.
    pub(super) fn of(
        state: &TlsState,
        sni: Option<String>,
        primary_engine_failure: Option<String>,
    ) -> TlsReport {
        let (protocol, cipher) = state
            .protocol_and_cipher()
            .map(|(p, c)| (p.to_owned(), c.to_owned()))
            .unwrap_or_default();
        let engine = match state.session().map(|s| s.engine) {
            Some(Engine::Legacy) => "legacy",
            _ => "rustls",
        };
        TlsReport {
            protocol,
            cipher,
            sni,
            authentication: state.label(),
            engine,
            primary_engine_failure,
        }
    }
}

impl MatchReport {
    /// The `dane.matched` object of an address.
    pub(super) fn of(m: &DaneMatch) -> MatchReport {
        MatchReport {
            usage: m.usage,
            selector: m.selector,
            mtype: m.mtype,
            data: hex(&m.data),
            depth: m.depth,
            from_dns: m.from_dns,
            text: m.to_string(),
        }
    }
}

impl AddressCheck {
    /// An address not (yet) checked.
    pub(super) fn new(ip: IpAddr) -> AddressCheck {
        AddressCheck {
            address: ip.to_string(),
            family: if ip.is_ipv4() { "ipv4" } else { "ipv6" },
            security: String::new(),
            requirement: String::new(),
            ok: false,
            connected: false,
            starttls: None,
            error: None,
            tls: None,
            chain: Vec::new(),
            dane: None,
            webpki: None,
            key_probes: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(dane: bool, problems: Vec<String>, ok: bool) -> HostCheck {
        HostCheck {
            name: "mx.example".into(),
            port: 25,
            preference: 10,
            address_security: "secure".into(),
            cname: None,
            requirement: String::new(),
            dane,
            mechanism: if dane { "dane" } else { "none" },
            mta_sts: "none".into(),
            ok,
            tlsa_status: "usable",
            tlsa_name: None,
            tlsa: Vec::new(),
            problems,
            addresses: vec![AddressCheck {
                address: "192.0.2.1".into(),
                family: "ipv4",
                security: "secure".into(),
                requirement: "DANE required".into(),
                ok,
                connected: true,
                starttls: Some(true),
                error: None,
                tls: None,
                chain: Vec::new(),
                dane: None,
                webpki: None,
                key_probes: Vec::new(),
                problems: if ok { vec![] } else { vec!["broken".into()] },
                warnings: vec!["soon".into()],
            }],
        }
    }

    fn validated() -> Dnssec {
        Dnssec {
            validated: true,
            detail: "validated".into(),
        }
    }

    #[test]
    fn verdicts() {
        let finish = |hosts: Vec<HostCheck>, dnssec: Dnssec| {
            let mut r = CheckReport::new("example", dnssec);
            r.hosts = hosts;
            r.finish()
        };
        let ok = finish(vec![host(true, vec![], true)], validated());
        assert_eq!((ok.verdict, ok.ok), ("ok", true));
        assert_eq!(ok.warnings, ["mx.example[192.0.2.1]:25: soon"]);
        let failed = finish(vec![host(true, vec![], false)], validated());
        assert_eq!((failed.verdict, failed.ok), ("failed", false));
        assert_eq!(failed.problems, ["mx.example[192.0.2.1]:25: broken"]);
        let no_dane = finish(
            vec![host(false, vec!["no DANE: x".into()], true)],
            validated(),
        );
        assert_eq!(no_dane.verdict, "no-dane");
        assert_eq!(no_dane.problems, ["mx.example: no DANE: x"]);
        let mixed = finish(
            vec![
                host(true, vec![], true),
                host(false, vec!["no DANE: x".into()], true),
            ],
            validated(),
        );
        assert_eq!(mixed.verdict, "failed");
        let broken_dns = finish(
            vec![host(true, vec![], true)],
            Dnssec {
                validated: false,
                detail: "x".into(),
            },
        );
        assert_eq!(broken_dns.verdict, "error");
        let unchecked = CheckReport::unchecked("example", validated(), "no resolver".into());
        assert_eq!(unchecked.finish().verdict, "error");
        // A host protected by MTA-STS counts as authenticated: ok without
        // DANE, failed when its certificate does not verify.
        let mut sts = host(false, vec![], true);
        sts.mechanism = "mta-sts";
        assert_eq!(finish(vec![sts], validated()).verdict, "ok");
        let mut sts_broken = host(false, vec![], false);
        sts_broken.mechanism = "mta-sts";
        assert_eq!(finish(vec![sts_broken], validated()).verdict, "failed");
    }

    #[test]
    fn resolver_self_test_findings() {
        use crate::ops::doctor::Check;
        let check = |name, status, detail: &str| Check {
            check: name,
            server: Some("127.0.0.1:53".into()),
            status,
            detail: detail.into(),
        };
        let doctor = |checks: Vec<Check>, verdict| DoctorReport {
            verdict,
            mode: "trust-ad",
            nameservers: vec!["127.0.0.1:53".into()],
            checks,
        };
        let mut r = CheckReport::new("example", validated());
        r.hosts = vec![host(true, vec![], true)];
        let mut r = r.finish();
        r.resolver_findings(doctor(
            vec![
                check("udp", Status::Ok, "answered"),
                check("local-validator", Status::Warn, "a forwarder"),
            ],
            Status::Warn,
        ));
        assert_eq!((r.verdict, r.ok), ("ok", true));
        assert_eq!(r.resolver.as_ref().map(|x| x.verdict), Some("warn"));
        assert!(r
            .warnings
            .contains(&"resolver self-test: local-validator 127.0.0.1:53: a forwarder".to_owned()));
        r.resolver_findings(doctor(
            vec![check("validates", Status::Fail, "does not validate")],
            Status::Fail,
        ));
        assert_eq!((r.verdict, r.ok), ("failed", false));
        assert_eq!(
            r.problems,
            ["resolver self-test: validates 127.0.0.1:53: does not validate"]
        );
    }
}
