//! `danegate resolve`: a plan as an operator reads it (text) or a
//! monitoring system parses it (JSON), with every DNS lookup it took
//! (`ops::lookups`) and the recipient domain in both forms when it is
//! internationalised.

use std::process::ExitCode;

use serde::Serialize;
use tracing::error;

use crate::config::Config;
use crate::dns::Probe;
use crate::dns::Security;
use crate::ops::lookups::{LookupReport, Recorder};
use crate::outbound::failure::Failure;
use crate::outbound::plan::{Host, Plan, PlanError, Planner, Skipped, Source};
use crate::policy::{Requirement, TlsaStatus};
use crate::tls::tlsa;

/// `danegate resolve DOMAIN [--json]`: plans `domain` with the
/// configured resolver and prints the plan. Exit status 1 when the domain
/// cannot be planned.
pub fn run(domain: &str, config: Config, json: bool) -> ExitCode {
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    let domain = domain.trim_end_matches('.').to_lowercase();
    rt.block_on(async move {
        let built = match crate::dns::build(&config.dns).await {
            Ok(b) => b,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let dnssec = match crate::dns::probe(&built).await {
            Probe::Validated => format!("validated (trust anchors: {})", built.anchors),
            Probe::NotValidated(e) | Probe::Unreachable(e) => format!("NOT WORKING: {e}"),
        };
        // The state database when no danegate holds it (else a cache in
        // memory): a cached policy shows as cached, others are fetched.
        let (store, _) = crate::state::Store::open_or_memory(&config.state.dir);
        let planner = Planner {
            sts: crate::sts::from_config(&config, built.resolver.clone(), store).ok(),
            ..Planner::for_config(&config)
        };
        let recorder = Recorder::new(built.resolver.as_ref());
        let plan = planner.plan(&recorder, &config, &domain).await;
        let ok = plan.is_ok();
        let names = crate::dns::idn::parse(&domain).ok();
        let level = config
            .policy
            .level_for(names.as_ref().map_or(domain.as_str(), |n| n.ascii.as_str()))
            .to_string();
        let mut report = PlanReport::new(&domain, level, dnssec, plan);
        report.lookups = recorder.lookups();
        super::print_report(&report, json, PlanReport::text, ok)
    })
}

#[derive(Debug, Serialize)]
pub struct PlanReport {
    /// As asked (lowercased).
    pub domain: String,
    /// In A-labels (what DNS was asked) and in U-labels; both equal the
    /// domain unless it is internationalised; absent when it is not a
    /// valid domain name.
    pub ascii: Option<String>,
    pub unicode: Option<String>,
    pub policy: String,
    /// Whether DNSSEC validation works (the start-up probe).
    pub dnssec: String,
    pub mx: Option<MxReport>,
    pub hosts: Vec<HostReport>,
    pub skipped: Vec<SkippedReport>,
    /// The MTA-STS policy applied to the hosts (mode, id, cached or
    /// fetched, patterns) or why none is; null when there is no plan.
    pub mta_sts: Option<String>,
    /// Set when the domain cannot be delivered to: the reply the legacy
    /// MTA would get.
    pub error: Option<String>,
    /// Every DNS lookup made, in order, with its outcome and security.
    pub lookups: Vec<LookupReport>,
}

#[derive(Debug, Serialize)]
pub struct MxReport {
    pub source: &'static str,
    pub security: String,
}

#[derive(Debug, Serialize)]
pub struct HostReport {
    pub name: String,
    pub port: u16,
    pub preference: u16,
    /// In the order they are tried.
    pub addresses: Vec<AddressReport>,
    pub cname: Option<CnameReport>,
    pub tlsa_status: &'static str,
    pub tlsa_base: Option<String>,
    pub tlsa: Vec<TlsaReport>,
    pub requirement: String,
    /// What the MTA-STS policy says about this host: "none", "ignored
    /// (DANE applies)", or the mode and whether the host is allowed.
    pub mta_sts: String,
}

/// One address: the security of the RRset it came from, and what a
/// connection to it must achieve (DANE applies to secure addresses).
#[derive(Debug, Serialize)]
pub struct AddressReport {
    pub address: String,
    pub security: String,
    pub requirement: String,
}

impl HostReport {
    /// `addresses (secure): a b` when every address has the host's
    /// security and requirement; else each address with its own.
    fn addresses_text(&self) -> String {
        let first = self.addresses.first().map(|a| a.security.as_str());
        let uniform = self
            .addresses
            .iter()
            .all(|a| Some(a.security.as_str()) == first && a.requirement == self.requirement);
        let list: Vec<String> = self
            .addresses
            .iter()
            .map(|a| {
                if uniform {
                    a.address.clone()
                } else if a.requirement == self.requirement {
                    format!("{} ({})", a.address, a.security)
                } else {
                    format!("{} ({}: {})", a.address, a.security, a.requirement)
                }
            })
            .collect();
        match first {
            Some(sec) if uniform => format!("    addresses ({sec}): {}\n", list.join(" ")),
            _ => format!("    addresses: {}\n", list.join(", ")),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CnameReport {
    pub target: String,
    pub secure: bool,
}

#[derive(Debug, Serialize)]
pub struct TlsaReport {
    pub record: String,
    pub usable: bool,
    pub unusable_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SkippedReport {
    pub name: String,
    pub reason: String,
}

impl SkippedReport {
    /// An MX host left out of the plan, and why.
    pub fn of(skipped: &Skipped) -> SkippedReport {
        SkippedReport {
            name: skipped.name.clone(),
            reason: skipped.to_string(),
        }
    }
}

/// How the next hops were found, as the reports write it.
pub fn source(s: Source) -> &'static str {
    match s {
        Source::Route => "route",
        Source::Mx => "mx",
        Source::ImplicitMx => "implicit-mx",
        Source::Literal => "address-literal",
    }
}

/// A host's TLSA status, as the reports write it.
pub fn tlsa_status(s: TlsaStatus) -> &'static str {
    match s {
        TlsaStatus::NotLooked => "not-looked-up",
        TlsaStatus::NoSecureTlsa => "none-secure",
        TlsaStatus::AllUnusable => "all-unusable",
        TlsaStatus::Usable => "usable",
    }
}

/// What the MTA-STS policy means for one planned host.
pub fn sts_word(h: &crate::outbound::plan::Host) -> String {
    use crate::policy::{StsStatus, StsTesting};
    let allowed = |a: bool| if a { "allowed" } else { "not allowed" };
    match h.sts {
        StsStatus::None => "none".into(),
        _ if h.requirement == Requirement::DaneRequired => "ignored (DANE applies)".into(),
        StsStatus::Enforce { allowed: a } => format!("enforce: {}", allowed(a)),
        StsStatus::Testing { allowed: a } => format!(
            "testing: {}{}",
            allowed(a),
            match h.sts_testing {
                Some(StsTesting::Verify) => ", certificate checked and failures logged",
                Some(StsTesting::MxNotAllowed) => ", logged as would defer",
                None => "",
            }
        ),
    }
}

/// A requirement, as the reports write it.
pub fn requirement(r: Requirement) -> String {
    match r {
        Requirement::Opportunistic => "opportunistic TLS".into(),
        Requirement::TlsRequired => "TLS required (no authentication)".into(),
        Requirement::DaneRequired => "DANE required".into(),
        Requirement::StsRequired => {
            "MTA-STS required (WebPKI certificate for the host name)".into()
        }
        Requirement::Refuse(reason) => format!("refused: {reason}"),
    }
}

fn mx_report(origin: Source, security: Security) -> MxReport {
    MxReport {
        source: source(origin),
        security: security.to_string(),
    }
}

fn host_report(h: &Host) -> HostReport {
    HostReport {
        name: h.name.clone(),
        port: h.port,
        preference: h.preference,
        addresses: h
            .addresses
            .iter()
            .map(|a| AddressReport {
                address: a.ip.to_string(),
                security: a.security.to_string(),
                requirement: requirement(a.requirement),
            })
            .collect(),
        cname: h.alias.as_ref().map(|a| CnameReport {
            target: a.name.clone(),
            secure: a.secure,
        }),
        tlsa_status: tlsa_status(h.tlsa),
        tlsa_base: h.tlsa_base.clone(),
        tlsa: h
            .tlsa_records
            .iter()
            .map(|t| TlsaReport {
                record: t.to_string(),
                usable: tlsa::usability(t).is_ok(),
                unusable_reason: tlsa::usability(t).err().map(|u| u.to_string()),
            })
            .collect(),
        requirement: requirement(h.requirement),
        mta_sts: sts_word(h),
    }
}

impl PlanReport {
    pub fn new(
        domain: &str,
        policy: String,
        dnssec: String,
        plan: Result<Plan, PlanError>,
    ) -> Self {
        let names = crate::dns::idn::parse(domain).ok();
        let mut report = PlanReport {
            domain: domain.to_owned(),
            ascii: names.as_ref().map(|n| n.ascii.clone()),
            unicode: names.map(|n| n.unicode),
            policy,
            dnssec,
            mx: None,
            hosts: Vec::new(),
            skipped: Vec::new(),
            mta_sts: None,
            error: None,
            lookups: Vec::new(),
        };
        match plan {
            Ok(p) => {
                report.mta_sts = Some(p.sts.describe());
                report.mx = Some(mx_report(p.source, p.mx_security));
                report.skipped = p.skipped.iter().map(SkippedReport::of).collect();
                report.hosts = p.hosts.iter().map(host_report).collect();
            }
            Err(e) => {
                if let PlanError::NoHost {
                    problems,
                    origin,
                    mx_security,
                    ..
                } = &e
                {
                    report.mx = Some(mx_report(*origin, *mx_security));
                    report.skipped = problems.iter().map(SkippedReport::of).collect();
                }
                report.error = Some(Failure::Plan(e).reply().to_string());
            }
        }
        report
    }

    pub fn text(&self) -> String {
        let mut out = format!("domain {}", self.domain);
        // An internationalised domain shows its other form.
        for form in [&self.ascii, &self.unicode].into_iter().flatten() {
            if form != &self.domain {
                out += &format!(" ({form})");
            }
        }
        out += &format!(": policy {}; DNSSEC {}\n", self.policy, self.dnssec);
        if let Some(mx) = &self.mx {
            out += &format!("  next hops from {} ({})\n", mx.source, mx.security);
        }
        if let Some(sts) = &self.mta_sts {
            out += &format!("  MTA-STS: {sts}\n");
        }
        for h in &self.hosts {
            out += &format!(
                "  host {} port {} preference {}: {}\n",
                h.name, h.port, h.preference, h.requirement
            );
            out += &h.addresses_text();
            if let Some(c) = &h.cname {
                out += &format!(
                    "    CNAME to {} ({})\n",
                    c.target,
                    if c.secure { "secure" } else { "insecure" }
                );
            }
            if h.mta_sts != "none" {
                out += &format!("    MTA-STS: {}\n", h.mta_sts);
            }
            match &h.tlsa_base {
                Some(base) => {
                    out += &format!(
                        "    TLSA at _{}._tcp.{} (secure): {}\n",
                        h.port, base, h.tlsa_status
                    );
                    for t in &h.tlsa {
                        match &t.unusable_reason {
                            None => out += &format!("      {} usable\n", t.record),
                            Some(r) => out += &format!("      {} unusable: {}\n", t.record, r),
                        }
                    }
                }
                None => out += &format!("    TLSA: {}\n", h.tlsa_status),
            }
        }
        for s in &self.skipped {
            out += &format!("  skipped {}: {}\n", s.name, s.reason);
        }
        if let Some(e) = &self.error {
            out += &format!("  cannot deliver: {e}\n");
        }
        if !self.lookups.is_empty() {
            out += "  DNS lookups:\n";
            for l in &self.lookups {
                out += &format!("    {}\n", l.text());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(ip: &str, security: &str, requirement: &str) -> AddressReport {
        AddressReport {
            address: ip.into(),
            security: security.into(),
            requirement: requirement.into(),
        }
    }

    fn host(addresses: Vec<AddressReport>) -> HostReport {
        HostReport {
            name: "mx.example".into(),
            port: 25,
            preference: 10,
            addresses,
            cname: None,
            tlsa_status: "usable",
            tlsa_base: Some("mx.example".into()),
            tlsa: Vec::new(),
            requirement: "DANE required".into(),
            mta_sts: "none".into(),
        }
    }

    #[test]
    fn addresses_show_their_own_security_when_they_differ() {
        let same = host(vec![
            address("::1", "secure", "DANE required"),
            address("192.0.2.1", "secure", "DANE required"),
        ]);
        assert_eq!(
            same.addresses_text(),
            "    addresses (secure): ::1 192.0.2.1\n"
        );
        let mixed = host(vec![
            address("2001:db8::1", "insecure", "opportunistic TLS"),
            address("192.0.2.1", "secure", "DANE required"),
        ]);
        assert_eq!(
            mixed.addresses_text(),
            "    addresses: 2001:db8::1 (insecure: opportunistic TLS), 192.0.2.1 (secure)\n"
        );
    }
}
