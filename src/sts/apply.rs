//! What MTA-STS means for one delivery: which policy (if any) the
//! planner applies to a domain's hosts, and each host's
//! [`StsStatus`] for `policy::decide`.
//!
//! The policy domain is the recipient domain, or the host of a `[routes]`
//! entry that looks up MX records (RFC 8461 §4.1: a smart host's domain
//! is the policy domain). A `[routes]` entry naming a host directly is
//! local configuration and an address literal has no domain: neither
//! gets MTA-STS. At the levels `dane-only` (DANE or nothing) and `may`
//! (the operator's explicit opt-out) MTA-STS does not apply.

use crate::policy::{Level, StsStatus};
use crate::sts::discover::{Applied, Discovery, Txt};
use crate::sts::pattern;
use crate::sts::policy::Mode;
use crate::sts::Sts;

/// MTA-STS for one planned domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForDomain {
    /// `[mta_sts] enabled = false` (or a planner without MTA-STS).
    Off,
    /// Not for this destination: why.
    NotApplicable(&'static str),
    /// Level `may`: the operator opted out; whether the domain announces
    /// a policy (`_mta-sts` TXT) all the same.
    OptedOut { domain: String, announced: bool },
    /// Discovery ran for `discovery.domain`.
    Discovered(Box<Discovery>),
}

impl ForDomain {
    /// The policy in force, when it asks for anything (not mode `none`).
    pub fn active(&self) -> Option<&Applied> {
        match self {
            ForDomain::Discovered(d) => d.applied.as_ref().filter(|a| a.is_active()),
            _ => None,
        }
    }

    /// What the policy says about the MX host `host`.
    pub fn status_for(&self, host: &str) -> StsStatus {
        let Some(applied) = self.active() else {
            return StsStatus::None;
        };
        let allowed = pattern::allowed(&applied.policy.mx, host);
        match applied.policy.mode {
            Mode::Enforce => StsStatus::Enforce { allowed },
            Mode::Testing => StsStatus::Testing { allowed },
            Mode::None => StsStatus::None,
        }
    }

    /// One line for logs and `resolve`: "enforce policy of example.com
    /// (id X, cached, mx: a b)", "none", "off", ...
    pub fn describe(&self) -> String {
        match self {
            ForDomain::Off => "off ([mta_sts] enabled = false)".into(),
            ForDomain::NotApplicable(why) => format!("not applied: {why}"),
            ForDomain::OptedOut { domain, announced } => format!(
                "ignored: policy level may is an explicit opt-out{}",
                if *announced {
                    format!(" ({domain} announces an MTA-STS policy)")
                } else {
                    String::new()
                }
            ),
            ForDomain::Discovered(d) => match &d.applied {
                Some(a) => {
                    let mx: Vec<String> = a.policy.mx.iter().map(|p| p.to_string()).collect();
                    let source = a.source.as_str();
                    format!(
                        "{} policy of {} (id {}, {source}, max_age {}, mx: {})",
                        a.policy.mode,
                        a.domain,
                        a.id,
                        a.policy.max_age,
                        if mx.is_empty() {
                            "none".into()
                        } else {
                            mx.join(" ")
                        }
                    )
                }
                None => match (&d.txt, &d.problem) {
                    (_, Some(p)) => format!("none in force: {p}"),
                    (Txt::Invalid(e), _) => format!("none: {e}"),
                    (Txt::Failed(e), _) => format!("none: {e}"),
                    _ => format!("none published by {}", d.domain),
                },
            },
        }
    }
}

/// Runs discovery for a delivery to `policy_domain` (`None`: a static
/// route or an address literal) at `level`.
pub async fn for_domain(sts: Option<&Sts>, level: Level, policy_domain: Option<&str>) -> ForDomain {
    let Some(sts) = sts.filter(|s| s.enabled()) else {
        return ForDomain::Off;
    };
    let Some(domain) = policy_domain else {
        return ForDomain::NotApplicable("static route or address literal");
    };
    match level {
        Level::DaneOnly => ForDomain::NotApplicable("policy level dane-only (DANE or nothing)"),
        Level::May => ForDomain::OptedOut {
            domain: domain.to_owned(),
            announced: matches!(sts.txt(domain).await, Txt::Record(_)),
        },
        Level::Dane | Level::Encrypt => ForDomain::Discovered(Box::new(sts.discover(domain).await)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sts::discover::Source;
    use crate::sts::policy;

    fn discovered(text: &str) -> ForDomain {
        ForDomain::Discovered(Box::new(Discovery {
            domain: "example.com".into(),
            txt: Txt::Absent,
            applied: Some(Applied {
                domain: "example.com".into(),
                id: "7".into(),
                text: text.into(),
                policy: policy::parse(text.as_bytes()).unwrap(),
                fetched_at: 0,
                expires_at: 60,
                source: Source::Cache,
            }),
            problem: None,
        }))
    }

    #[test]
    fn each_host_gets_its_status() {
        let enforce = discovered(
            "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 60\n",
        );
        let testing =
            discovered("version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 60\n");
        let none = discovered("version: STSv1\nmode: none\nmax_age: 60\n");
        let table: &[(&ForDomain, &str, StsStatus)] = &[
            (
                &enforce,
                "mx1.example.com",
                StsStatus::Enforce { allowed: true },
            ),
            (
                &enforce,
                "a.example.net",
                StsStatus::Enforce { allowed: true },
            ),
            (
                &enforce,
                "a.b.example.net",
                StsStatus::Enforce { allowed: false },
            ),
            (
                &enforce,
                "mx9.example.com",
                StsStatus::Enforce { allowed: false },
            ),
            (
                &testing,
                "mx1.example.com",
                StsStatus::Testing { allowed: true },
            ),
            (
                &testing,
                "mx2.example.com",
                StsStatus::Testing { allowed: false },
            ),
            (&none, "mx1.example.com", StsStatus::None),
            (&ForDomain::Off, "mx1.example.com", StsStatus::None),
            (
                &ForDomain::NotApplicable("static route or address literal"),
                "mx1.example.com",
                StsStatus::None,
            ),
        ];
        for (d, host, want) in table {
            assert_eq!(d.status_for(host), *want, "{host} under {}", d.describe());
        }
        assert!(none.active().is_none());
        assert_eq!(
            enforce.describe(),
            "enforce policy of example.com (id 7, cached, max_age 60, mx: mx1.example.com *.example.net)"
        );
        assert_eq!(
            ForDomain::OptedOut {
                domain: "example.com".into(),
                announced: true
            }
            .describe(),
            "ignored: policy level may is an explicit opt-out (example.com announces an MTA-STS policy)"
        );
    }
}
