//! The `mx` patterns of an MTA-STS policy (RFC 8461 §3.2, §4.1): a host
//! name, or `*.` and a domain, where the wildcard stands for exactly one
//! whole left-most label.
//!
//! Pure: parsing a pattern and matching an MX host name against it. The
//! certificate name check (the other half of §4) is the WebPKI verifier's
//! job in `tls`.

use std::fmt;

/// One `mx` value of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// `*.` in front: matches one more label to the left of `domain`.
    wildcard: bool,
    /// Lowercase, no trailing dot.
    domain: String,
}

/// Why an `mx` value is not a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0:?} is not a host name (RFC 5321 Domain: letters, digits and hyphens in dot-separated labels)")]
    NotADomain(String),
    #[error("{0:?}: a wildcard may only be the whole left-most label (\"*.example.com\")")]
    Wildcard(String),
}

impl Pattern {
    /// Parses `["*."] Domain` (RFC 8461 §3.2 with RFC 5321's Domain:
    /// `sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`).
    pub fn parse(value: &str) -> Result<Pattern, PatternError> {
        let (wildcard, domain) = match value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        if domain.contains('*') {
            return Err(PatternError::Wildcard(value.to_owned()));
        }
        if !is_domain(domain) {
            return Err(PatternError::NotADomain(value.to_owned()));
        }
        Ok(Pattern {
            wildcard,
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// RFC 8461 §4.1: `host` (an MX host name) matches exactly, or, for
    /// `*.domain`, is one label followed by `domain`. Case-insensitive; a
    /// trailing dot on `host` is ignored.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if !self.wildcard {
            return host == self.domain;
        }
        match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest == self.domain,
            None => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*.{}", self.domain)
        } else {
            f.write_str(&self.domain)
        }
    }
}

/// Whether any of `patterns` matches `host`.
pub fn allowed(patterns: &[Pattern], host: &str) -> bool {
    patterns.iter().any(|p| p.matches(host))
}

/// RFC 5321 Domain: labels of letters, digits and hyphens, each starting
/// and ending with a letter or digit, 1–63 octets, 253 in all; no
/// trailing dot.
fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, host, matches): RFC 8461 §4.1 and its examples.
    const MATCHES: &[(&str, &str, bool)] = &[
        ("mail.example.com", "mail.example.com", true),
        ("mail.example.com", "MAIL.Example.COM", true),
        ("mail.example.com", "mail.example.com.", true),
        ("mail.example.com", "mail2.example.com", false),
        ("mail.example.com", "example.com", false),
        ("mail.example.com", "x.mail.example.com", false),
        // §4.1: "*.example.com" matches "mail.example.com" but not
        // "example.com" or "foo.bar.example.com".
        ("*.example.com", "mail.example.com", true),
        ("*.example.com", "example.com", false),
        ("*.example.com", "foo.bar.example.com", false),
        ("*.example.com", "MX1.EXAMPLE.COM", true),
        ("*.example.com", ".example.com", false),
        ("*.example.com", "mail.example.org", false),
        ("*.example.com", "mailexample.com", false),
        ("*.Example.COM", "a.example.com", true),
        ("*.example.com", "a.example.com.", true),
        // A single-label domain is an RFC 5321 Domain too.
        ("localhost", "localhost", true),
        ("*.test", "mx.test", true),
    ];

    #[test]
    fn matching_table() {
        for (pattern, host, want) in MATCHES {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.matches(host), *want, "{pattern} vs {host}");
        }
    }

    #[test]
    fn bad_patterns() {
        let wildcard = |s: &str| Err(PatternError::Wildcard(s.to_owned()));
        let domain = |s: &str| Err(PatternError::NotADomain(s.to_owned()));
        let table: &[(&str, Result<Pattern, PatternError>)] = &[
            ("*", wildcard("*")),
            ("*.", domain("*.")),
            ("**.example.com", wildcard("**.example.com")),
            ("mx*.example.com", wildcard("mx*.example.com")),
            ("mail.*.example.com", wildcard("mail.*.example.com")),
            ("*.*.example.com", wildcard("*.*.example.com")),
            ("", domain("")),
            ("example.com.", domain("example.com.")),
            (".example.com", domain(".example.com")),
            ("a..example.com", domain("a..example.com")),
            ("-a.example.com", domain("-a.example.com")),
            ("a-.example.com", domain("a-.example.com")),
            ("mx_1.example.com", domain("mx_1.example.com")),
            ("mx 1.example.com", domain("mx 1.example.com")),
            ("mäil.example.com", domain("mäil.example.com")),
            ("192.0.2.1:25", domain("192.0.2.1:25")),
        ];
        for (s, want) in table {
            assert_eq!(&Pattern::parse(s), want, "{s:?}");
        }
        let long = format!("{}.example.com", "a".repeat(64));
        assert!(Pattern::parse(&long).is_err());
        let ok63 = format!("{}.example.com", "a".repeat(63));
        assert!(Pattern::parse(&ok63).is_ok());
    }

    #[test]
    fn displays_as_written_in_lowercase() {
        assert_eq!(
            Pattern::parse("*.Example.COM").unwrap().to_string(),
            "*.example.com"
        );
        assert_eq!(
            Pattern::parse("mx-1.example.com").unwrap().to_string(),
            "mx-1.example.com"
        );
        let ps = [
            Pattern::parse("mx1.example.com").unwrap(),
            Pattern::parse("*.example.net").unwrap(),
        ];
        assert!(allowed(&ps, "mx1.example.com"));
        assert!(allowed(&ps, "b.example.net"));
        assert!(!allowed(&ps, "mx9.example.net.evil"));
        assert!(!allowed(&[], "mx1.example.com"));
    }
}
