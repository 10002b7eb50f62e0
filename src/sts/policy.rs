//! The MTA-STS policy file (RFC 8461 §3.2), parsed strictly: every line
//! must be a `key: value` field of the grammar, the four fields must be
//! there with valid values, and an error names the line.
//!
//! Pure: bytes in, [`Policy`] or [`PolicyError`] out. Fetching the body
//! is `fetch`'s job, deciding what the policy means for a host is
//! `policy::decide`'s.
//!
//! What the RFC leaves to the parser, and what this one does:
//! - LF and CRLF line ends, mixed; a lone CR is an error. Empty lines at
//!   the very end are tolerated (a file saved with an extra newline);
//!   an empty line between fields is an error.
//! - Field names are case-sensitive (the ABNF uses `%s`): `Mode:` is an
//!   unknown field, and the policy then lacks `mode`.
//! - Unknown fields are checked for syntax and ignored (§3.2).
//! - A repeated field other than `mx` keeps its first value (§3.2: "all
//!   entries except for the first SHOULD be ignored"); the repetition is
//!   noted for `danegate sts show`.
//! - `mx` is required unless the mode is `none` (such a policy withdraws
//!   a previous one and names no hosts).
//! - `max_age` above 31557600 (one year, §3.2's maximum) is an error.

use std::fmt;

use super::pattern::{Pattern, PatternError};
use super::record::ext_name;

/// The largest policy body accepted (64 KiB, RFC 8461 §3.3's example).
pub const MAX_BODY: usize = 64 * 1024;
/// §3.2: the largest `max_age`, one year in seconds.
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// The policy's mode (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to matching MX hosts over TLS with a WebPKI-valid
    /// certificate.
    Enforce,
    /// Check as for enforce, report (log) failures, deliver anyway.
    Testing,
    /// No active policy (used to withdraw one).
    None,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        })
    }
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// In the order of the file.
    pub mx: Vec<Pattern>,
    /// Seconds the policy may be cached from the time it was fetched.
    pub max_age: u64,
    /// What the parser ignored, one line each ("line 4: second `mode`
    /// ignored"), for operators.
    pub notes: Vec<String>,
}

/// Why a policy body was refused. `line` is 1-based; `None` when the
/// problem is the body as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: Option<usize>,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the policy is {0} octets, more than the limit of {MAX_BODY}")]
    TooLarge(usize),
    #[error("the policy is empty")]
    Empty,
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("a carriage return not followed by a line feed")]
    BareCr,
    #[error("an empty line between fields")]
    EmptyLine,
    #[error("{0:?} is not a `key: value` field")]
    NotAField(String),
    #[error("{0:?} is not a valid field name")]
    FieldName(String),
    #[error("field `{0}` has an invalid value {1:?}")]
    Value(String, String),
    #[error("version {0:?} is not supported (only \"STSv1\")")]
    Version(String),
    #[error("mode {0:?} is not one of \"enforce\", \"testing\", \"none\"")]
    Mode(String),
    #[error("max_age {0:?} is not a number of seconds (1 to 10 digits)")]
    MaxAge(String),
    #[error("max_age {0} is more than the maximum of {MAX_AGE_LIMIT} (one year)")]
    MaxAgeTooLarge(u64),
    #[error("mx {0}")]
    Mx(PatternError),
    #[error("the `{field}` field is missing{hint}")]
    Missing { field: &'static str, hint: String },
    #[error("mode {0} needs at least one `mx` field")]
    NoMx(Mode),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for PolicyError {}

fn at(line: usize, kind: ErrorKind) -> PolicyError {
    PolicyError {
        line: Some(line),
        kind,
    }
}

fn whole(kind: ErrorKind) -> PolicyError {
    PolicyError { line: None, kind }
}

/// Parses a policy body (§3.2 ABNF):
///
/// ```text
/// sts-policy-record = sts-policy-field *WSP
///                     *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
/// field-delim       = ":" *WSP
/// sts-policy-term   = LF / CRLF
/// ```
pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
    if body.len() > MAX_BODY {
        return Err(whole(ErrorKind::TooLarge(body.len())));
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let line = body[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(at(line, ErrorKind::NotUtf8));
        }
    };
    let lines = split_lines(text)?;
    if lines.is_empty() {
        return Err(whole(ErrorKind::Empty));
    }
    let mut fields = Fields::default();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            return Err(at(n, ErrorKind::EmptyLine));
        }
        let (name, value) = split_field(line).map_err(|k| at(n, k))?;
        fields.add(n, name, value)?;
    }
    fields.finish()
}

/// The lines of `text` without their terminators; trailing empty lines
/// dropped.
fn split_lines(text: &str) -> Result<Vec<&str>, PolicyError> {
    let mut lines = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.contains('\r') {
            return Err(at(i + 1, ErrorKind::BareCr));
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    Ok(lines)
}

/// `name ":" *WSP value *WSP`, value per `sts-policy-ext-value` (visible
/// characters, inner spaces).
fn split_field(line: &str) -> Result<(&str, &str), ErrorKind> {
    let Some((name, rest)) = line.split_once(':') else {
        return Err(ErrorKind::NotAField(line.to_owned()));
    };
    if !ext_name(name) {
        return Err(ErrorKind::FieldName(name.to_owned()));
    }
    let value = rest.trim_matches([' ', '\t']);
    let visible = |c: char| !c.is_control() && c != ' ' && c != '\u{7f}';
    let valid = !value.is_empty() && value.chars().all(|c| c == ' ' || visible(c));
    if !valid {
        return Err(ErrorKind::Value(name.to_owned(), value.to_owned()));
    }
    Ok((name, value))
}

/// The fields seen so far.
#[derive(Default)]
struct Fields {
    version: Option<String>,
    mode: Option<Mode>,
    max_age: Option<u64>,
    mx: Vec<Pattern>,
    notes: Vec<String>,
    /// Lines whose field name differs from a known one only in case.
    near_misses: Vec<(usize, String)>,
}

impl Fields {
    fn add(&mut self, n: usize, name: &str, value: &str) -> Result<(), PolicyError> {
        let repeated = match name {
            "version" => {
                if value != "STSv1" {
                    return Err(at(n, ErrorKind::Version(value.to_owned())));
                }
                self.version.replace(value.to_owned()).is_some()
            }
            "mode" => {
                let mode = match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(at(n, ErrorKind::Mode(value.to_owned()))),
                };
                let repeated = self.mode.is_some();
                self.mode.get_or_insert(mode);
                repeated
            }
            "max_age" => {
                let age = max_age(value).map_err(|k| at(n, k))?;
                let repeated = self.max_age.is_some();
                self.max_age.get_or_insert(age);
                repeated
            }
            "mx" => {
                let p = Pattern::parse(value).map_err(|e| at(n, ErrorKind::Mx(e)))?;
                self.mx.push(p);
                false
            }
            other => {
                if ["version", "mode", "max_age", "mx"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(other))
                {
                    self.near_misses.push((n, other.to_owned()));
                }
                self.notes
                    .push(format!("line {n}: unknown field `{other}` ignored"));
                false
            }
        };
        if repeated {
            self.notes.push(format!(
                "line {n}: repeated `{name}` ignored (the first one counts)"
            ));
        }
        Ok(())
    }

    fn missing(&self, field: &'static str) -> PolicyError {
        let hint = self
            .near_misses
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(field))
            .map(|(n, name)| format!(" (line {n} has `{name}`: field names are case-sensitive)"))
            .unwrap_or_default();
        whole(ErrorKind::Missing { field, hint })
    }

    fn finish(self) -> Result<Policy, PolicyError> {
        if self.version.is_none() {
            return Err(self.missing("version"));
        }
        let Some(mode) = self.mode else {
            return Err(self.missing("mode"));
        };
        let Some(max_age) = self.max_age else {
            return Err(self.missing("max_age"));
        };
        if self.mx.is_empty() && mode != Mode::None {
            return Err(whole(ErrorKind::NoMx(mode)));
        }
        Ok(Policy {
            mode,
            mx: self.mx,
            max_age,
            notes: self.notes,
        })
    }
}

/// `sts-policy-max-age-value = 1*10(DIGIT)`, at most one year.
fn max_age(value: &str) -> Result<u64, ErrorKind> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::MaxAge(value.to_owned()));
    }
    let age: u64 = value
        .parse()
        .map_err(|_| ErrorKind::MaxAge(value.to_owned()))?;
    if age > MAX_AGE_LIMIT {
        return Err(ErrorKind::MaxAgeTooLarge(age));
    }
    Ok(age)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
