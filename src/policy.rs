//! The TLS policy decision: from a policy level, what DNS proved about a
//! destination host and what the domain's MTA-STS policy says about it,
//! what the outbound connection must achieve.
//!
//! This is a pure function (dane-rules §4, RFC 8461 §4–5) with no I/O;
//! the table of cases it is tested against lives next to it as data.
//! DANE comes first: a host with usable secure TLSA records gets DANE and
//! the MTA-STS policy does not apply to it; then an MTA-STS policy; then
//! the level's own rule. Carrying the decision out (STARTTLS, the
//! certificate verifier, deferring) is the job of the `outbound` and
//! `tls` modules.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Policy levels, named as in Postfix's `smtp_tls_security_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// DANE where secure TLSA records exist, opportunistic TLS elsewhere.
    Dane,
    /// DANE or nothing: defer where no usable secure TLSA record exists.
    DaneOnly,
    /// TLS always, no authentication.
    Encrypt,
    /// Opportunistic TLS, no DANE lookups.
    May,
}

impl Level {
    /// Whether TLSA records are looked up at this level.
    pub fn wants_tlsa(self) -> bool {
        matches!(self, Level::Dane | Level::DaneOnly)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Dane => "dane",
            Level::DaneOnly => "dane-only",
            Level::Encrypt => "encrypt",
            Level::May => "may",
        })
    }
}

/// Whether policy failures defer mail or are only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Enforce,
    /// Look up and verify everything, log what enforcement would do, never
    /// defer on TLS or DANE grounds.
    Test,
}

/// What the DNS layer established about one host's TLSA records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsaStatus {
    /// No TLSA lookup was made (level `may`, `encrypt`, or insecure
    /// address records).
    NotLooked,
    /// No secure TLSA RRset: none exists, or the answer was insecure.
    NoSecureTlsa,
    /// A secure TLSA RRset exists but none of its records is usable.
    AllUnusable,
    /// A secure TLSA RRset with at least one usable record.
    Usable,
}

/// What the recipient domain's MTA-STS policy says about one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsStatus {
    /// No policy applies (none published or cached, mode `none`, or
    /// MTA-STS is off).
    None,
    /// A `testing` policy; `allowed`: the host matches one of its `mx`
    /// patterns.
    Testing { allowed: bool },
    /// An `enforce` policy.
    Enforce { allowed: bool },
}

/// What the outbound connection to one host must achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// STARTTLS when offered, any certificate; plaintext otherwise.
    Opportunistic,
    /// STARTTLS mandatory, no authentication (Postfix's `encrypt`).
    TlsRequired,
    /// STARTTLS mandatory and the certificate must match a TLSA record.
    DaneRequired,
    /// An MTA-STS `enforce` policy (RFC 8461 §4.2): STARTTLS mandatory,
    /// TLS 1.2 or later, and a certificate valid for the MX host name
    /// under the WebPKI.
    StsRequired,
    /// Delivery to this host is not allowed at all.
    Refuse(RefuseReason),
}

/// Why a host may not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// `dane-only` and the MX RRset is not DNSSEC-signed.
    InsecureMx,
    /// `dane-only` and the host has no secure TLSA records.
    NoSecureTlsa,
    /// `dane-only` and every secure TLSA record is unusable.
    AllTlsaUnusable,
    /// The domain's MTA-STS `enforce` policy does not name this host.
    StsMxNotAllowed,
}

/// A `testing` MTA-STS policy's check, made on top of the requirement
/// and logged ("would defer (MTA-STS testing)") but never enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsTesting {
    /// Check the certificate against the WebPKI for the MX host name.
    Verify,
    /// The policy does not name this host.
    MxNotAllowed,
}

/// The decision for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub requirement: Requirement,
    pub sts_testing: Option<StsTesting>,
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefuseReason::InsecureMx => "policy dane-only: the MX records are not DNSSEC-signed",
            RefuseReason::NoSecureTlsa => "policy dane-only: no DNSSEC-signed TLSA records",
            RefuseReason::AllTlsaUnusable => {
                "policy dane-only: none of the TLSA records is usable for SMTP"
            }
            RefuseReason::StsMxNotAllowed => {
                "the MX host is not allowed by the domain's MTA-STS policy"
            }
        })
    }
}

/// dane-rules §4 and RFC 8461 §5: the decision for one host.
/// `mx_secure` says whether the host name came from a secure MX RRset (or
/// a static route).
pub fn decide(level: Level, mx_secure: bool, tlsa: TlsaStatus, sts: StsStatus) -> Decision {
    let base = level_rule(level, mx_secure, tlsa);
    let plain = Decision {
        requirement: base,
        sts_testing: None,
    };
    let sts_applies = match level {
        Level::Dane => tlsa != TlsaStatus::Usable,
        Level::Encrypt => true,
        Level::DaneOnly | Level::May => false,
    };
    if !sts_applies {
        return plain;
    }
    let (requirement, sts_testing) = match sts {
        StsStatus::None => (base, None),
        StsStatus::Enforce { allowed: true } => (Requirement::StsRequired, None),
        StsStatus::Enforce { allowed: false } => {
            (Requirement::Refuse(RefuseReason::StsMxNotAllowed), None)
        }
        StsStatus::Testing { allowed: true } => (base, Some(StsTesting::Verify)),
        StsStatus::Testing { allowed: false } => (base, Some(StsTesting::MxNotAllowed)),
    };
    Decision {
        requirement,
        sts_testing,
    }
}

/// dane-rules §4: the level's own rule.
fn level_rule(level: Level, mx_secure: bool, tlsa: TlsaStatus) -> Requirement {
    use Requirement::*;
    match level {
        Level::May => Opportunistic,
        Level::Encrypt => TlsRequired,
        Level::Dane => match tlsa {
            TlsaStatus::Usable => DaneRequired,
            TlsaStatus::AllUnusable => TlsRequired,
            TlsaStatus::NotLooked | TlsaStatus::NoSecureTlsa => Opportunistic,
        },
        Level::DaneOnly => match (mx_secure, tlsa) {
            (false, _) => Refuse(RefuseReason::InsecureMx),
            (true, TlsaStatus::Usable) => DaneRequired,
            (true, TlsaStatus::AllUnusable) => Refuse(RefuseReason::AllTlsaUnusable),
            (true, TlsaStatus::NotLooked | TlsaStatus::NoSecureTlsa) => {
                Refuse(RefuseReason::NoSecureTlsa)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Requirement::*;

    /// Every combination of `decide`'s inputs with the requirement it must
    /// give, kept as data (see the file's header).
    const TABLE: &str = include_str!("policy_table.txt");

    const LEVELS: [Level; 4] = [Level::Dane, Level::DaneOnly, Level::Encrypt, Level::May];
    const STATUSES: [TlsaStatus; 4] = [
        TlsaStatus::NotLooked,
        TlsaStatus::NoSecureTlsa,
        TlsaStatus::AllUnusable,
        TlsaStatus::Usable,
    ];

    fn level(word: &str) -> Level {
        *LEVELS
            .iter()
            .find(|l| l.to_string() == word)
            .unwrap_or_else(|| panic!("unknown level {word}"))
    }

    fn mx_secure(word: &str) -> bool {
        match word {
            "secure" => true,
            "insecure" => false,
            _ => panic!("unknown MX security {word}"),
        }
    }

    fn status(word: &str) -> TlsaStatus {
        match word {
            "not-looked" => TlsaStatus::NotLooked,
            "no-secure-tlsa" => TlsaStatus::NoSecureTlsa,
            "all-unusable" => TlsaStatus::AllUnusable,
            "usable" => TlsaStatus::Usable,
            _ => panic!("unknown TLSA status {word}"),
        }
    }

    const STS: [StsStatus; 5] = [
        StsStatus::None,
        StsStatus::Testing { allowed: true },
        StsStatus::Testing { allowed: false },
        StsStatus::Enforce { allowed: true },
        StsStatus::Enforce { allowed: false },
    ];

    fn sts(word: &str) -> StsStatus {
        match word {
            "none" => StsStatus::None,
            "testing-allowed" => StsStatus::Testing { allowed: true },
            "testing-not-allowed" => StsStatus::Testing { allowed: false },
            "enforce-allowed" => StsStatus::Enforce { allowed: true },
            "enforce-not-allowed" => StsStatus::Enforce { allowed: false },
            _ => panic!("unknown MTA-STS status {word}"),
        }
    }

    fn requirement(word: &str) -> Requirement {
        match word {
            "opportunistic" => Opportunistic,
            "tls-required" => TlsRequired,
            "dane-required" => DaneRequired,
            "sts-required" => StsRequired,
            "refuse(insecure-mx)" => Refuse(RefuseReason::InsecureMx),
            "refuse(no-secure-tlsa)" => Refuse(RefuseReason::NoSecureTlsa),
            "refuse(all-tlsa-unusable)" => Refuse(RefuseReason::AllTlsaUnusable),
            "refuse(sts-mx-not-allowed)" => Refuse(RefuseReason::StsMxNotAllowed),
            _ => panic!("unknown requirement {word}"),
        }
    }

    /// `requirement` or `requirement+testing(verify|mx-not-allowed)`.
    fn decision(word: &str) -> Decision {
        let (req, testing) = match word.split_once('+') {
            Some((r, t)) => (r, Some(t)),
            None => (word, None),
        };
        let sts_testing = testing.map(|t| match t {
            "testing(verify)" => StsTesting::Verify,
            "testing(mx-not-allowed)" => StsTesting::MxNotAllowed,
            _ => panic!("unknown testing note {t}"),
        });
        Decision {
            requirement: requirement(req),
            sts_testing,
        }
    }

    type Row = (Level, bool, TlsaStatus, StsStatus, Decision);

    fn rows() -> Vec<Row> {
        TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(w.len(), 5, "row {l:?}");
                (
                    level(w[0]),
                    mx_secure(w[1]),
                    status(w[2]),
                    sts(w[3]),
                    decision(w[4]),
                )
            })
            .collect()
    }

    #[test]
    fn truth_table() {
        for (level, mx_secure, tlsa, sts, want) in rows() {
            assert_eq!(
                decide(level, mx_secure, tlsa, sts),
                want,
                "level={level} mx_secure={mx_secure} tlsa={tlsa:?} sts={sts:?}"
            );
        }
    }

    #[test]
    fn truth_table_holds_every_combination_once() {
        let rows = rows();
        let mut want = Vec::new();
        for l in LEVELS {
            for m in [true, false] {
                for t in STATUSES {
                    for s in STS {
                        want.push((l, m, t, s));
                    }
                }
            }
        }
        assert_eq!(
            rows.len(),
            want.len(),
            "{} rows for {} combinations",
            rows.len(),
            want.len()
        );
        for key in want {
            let n = rows.iter().filter(|r| (r.0, r.1, r.2, r.3) == key).count();
            assert_eq!(n, 1, "{key:?} appears {n} times");
        }
    }

    #[test]
    fn without_mta_sts_the_levels_decide_as_before() {
        // The rows with no MTA-STS policy are dane-rules §4 unchanged, and
        // never carry a testing check.
        for (level, mx_secure, tlsa, sts, want) in rows() {
            if sts == StsStatus::None {
                assert_eq!(want.sts_testing, None);
                assert_eq!(want.requirement, level_rule(level, mx_secure, tlsa));
            }
        }
    }

    #[test]
    fn only_dane_levels_look_up_tlsa() {
        assert!(Level::Dane.wants_tlsa());
        assert!(Level::DaneOnly.wants_tlsa());
        assert!(!Level::Encrypt.wants_tlsa());
        assert!(!Level::May.wants_tlsa());
    }
}
