//! The TLS policy decision: from a policy level and what DNS proved about a
//! destination host, what the outbound connection must achieve.
//!
//! This is a pure function (dane-rules §4) with no I/O; the table of cases
//! it is tested against lives next to it as data. Carrying the decision
//! out (STARTTLS, the certificate verifier, deferring) is the job of the
//! `outbound` and `tls` modules.

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

/// What the outbound connection to one host must achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// STARTTLS when offered, any certificate; plaintext otherwise.
    Opportunistic,
    /// STARTTLS mandatory, no authentication (Postfix's `encrypt`).
    TlsRequired,
    /// STARTTLS mandatory and the certificate must match a TLSA record.
    DaneRequired,
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
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefuseReason::InsecureMx => "policy dane-only: the MX records are not DNSSEC-signed",
            RefuseReason::NoSecureTlsa => "policy dane-only: no DNSSEC-signed TLSA records",
            RefuseReason::AllTlsaUnusable => {
                "policy dane-only: none of the TLSA records is usable for SMTP"
            }
        })
    }
}

/// dane-rules §4: the requirement for one host. `mx_secure` says whether
/// the host name came from a secure MX RRset (or a static route).
pub fn decide(level: Level, mx_secure: bool, tlsa: TlsaStatus) -> Requirement {
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

    /// (level, mx_secure, tlsa) -> requirement, dane-rules §4 row by row.
    const TABLE: &[(Level, bool, TlsaStatus, Requirement)] = &[
        (Level::Dane, true, TlsaStatus::NoSecureTlsa, Opportunistic),
        (Level::Dane, true, TlsaStatus::NotLooked, Opportunistic),
        (Level::Dane, true, TlsaStatus::AllUnusable, TlsRequired),
        (Level::Dane, true, TlsaStatus::Usable, DaneRequired),
        (Level::Dane, false, TlsaStatus::NoSecureTlsa, Opportunistic),
        (Level::Dane, false, TlsaStatus::AllUnusable, TlsRequired),
        (Level::Dane, false, TlsaStatus::Usable, DaneRequired),
        (
            Level::DaneOnly,
            true,
            TlsaStatus::NoSecureTlsa,
            Refuse(RefuseReason::NoSecureTlsa),
        ),
        (
            Level::DaneOnly,
            true,
            TlsaStatus::NotLooked,
            Refuse(RefuseReason::NoSecureTlsa),
        ),
        (
            Level::DaneOnly,
            true,
            TlsaStatus::AllUnusable,
            Refuse(RefuseReason::AllTlsaUnusable),
        ),
        (Level::DaneOnly, true, TlsaStatus::Usable, DaneRequired),
        (
            Level::DaneOnly,
            false,
            TlsaStatus::Usable,
            Refuse(RefuseReason::InsecureMx),
        ),
        (
            Level::DaneOnly,
            false,
            TlsaStatus::NoSecureTlsa,
            Refuse(RefuseReason::InsecureMx),
        ),
        (Level::Encrypt, true, TlsaStatus::NoSecureTlsa, TlsRequired),
        (Level::Encrypt, false, TlsaStatus::NotLooked, TlsRequired),
        (Level::Encrypt, true, TlsaStatus::Usable, TlsRequired),
        (Level::May, true, TlsaStatus::Usable, Opportunistic),
        (Level::May, false, TlsaStatus::NotLooked, Opportunistic),
        (Level::May, true, TlsaStatus::AllUnusable, Opportunistic),
    ];

    #[test]
    fn truth_table() {
        for &(level, mx_secure, tlsa, want) in TABLE {
            assert_eq!(
                decide(level, mx_secure, tlsa),
                want,
                "level={level} mx_secure={mx_secure} tlsa={tlsa:?}"
            );
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
