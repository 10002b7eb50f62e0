//! The `_mta-sts.<domain>` TXT record (RFC 8461 §3.1): `v=STSv1; id=…`.
//!
//! Pure: from the TXT strings DNS returned (each record's strings already
//! concatenated, as §3.1 says) to the one record that announces a policy
//! and its `id`, or why there is none. Looking the record up is the
//! resolver's job; acting on it is `discover`'s.

use std::fmt;

/// A valid MTA-STS TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The policy instance id (1–32 letters and digits): a change means a
    /// new policy to fetch.
    pub id: String,
}

/// Why the TXT records announce no policy although some look like they
/// try to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0} TXT records start with \"v=STSv1\"; exactly one is allowed (RFC 8461 §3.1)")]
    Several(usize),
    #[error("TXT record {text:?} is not a valid MTA-STS record: {reason}")]
    Invalid { text: String, reason: String },
}

/// RFC 8461 §3.1: records that do not begin with `v=STSv1` (and a field
/// delimiter) are discarded; none left means no policy is announced
/// (`Ok(None)`); more than one, or one that does not parse, is an error
/// (and also means no policy is announced, but an operator wants to know).
pub fn select(txts: &[Vec<u8>]) -> Result<Option<Record>, RecordError> {
    let candidates: Vec<&Vec<u8>> = txts.iter().filter(|t| begins_sts(t)).collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => parse(one).map(Some),
        several => Err(RecordError::Several(several.len())),
    }
}

fn begins_sts(txt: &[u8]) -> bool {
    match txt.strip_prefix(b"v=STSv1") {
        Some(rest) => rest
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            .is_some_and(|b| *b == b';'),
        None => false,
    }
}

/// Parses one record (RFC 8461 §3.1 ABNF):
///
/// ```text
/// sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
/// sts-field-delim = *WSP ";" *WSP
/// sts-version     = %s"v=STSv1"
/// sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
/// sts-extension   = sts-ext-name "=" sts-ext-value
/// ```
///
/// Unknown (extension) fields are checked for syntax and ignored; of a
/// repeated `id` only the first counts (§3.2's rule for repeated fields).
pub fn parse(txt: &[u8]) -> Result<Record, RecordError> {
    let text = String::from_utf8_lossy(txt).into_owned();
    let invalid = |reason: String| RecordError::Invalid {
        text: text.clone(),
        reason,
    };
    if !txt.is_ascii() {
        return Err(invalid("it contains octets that are not ASCII".into()));
    }
    let s = text.as_str();
    let mut fields = s.split(';');
    let version = fields
        .next()
        .unwrap_or_default()
        .trim_end_matches([' ', '\t']);
    if version != "v=STSv1" {
        return Err(invalid("it must begin with \"v=STSv1\"".into()));
    }
    let rest: Vec<&str> = fields.map(|f| f.trim_matches([' ', '\t'])).collect();
    // A trailing delimiter leaves one empty field at the end.
    let rest = match rest.split_last() {
        Some((&"", init)) => init,
        _ => rest.as_slice(),
    };
    if rest.is_empty() {
        return Err(invalid("it has no id field".into()));
    }
    let mut id = None;
    for field in rest {
        let Some((name, value)) = field.split_once('=') else {
            return Err(invalid(format!("field {field:?} is not name=value")));
        };
        if name == "id" {
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(invalid(format!(
                    "id {value:?} must be 1 to 32 letters and digits"
                )));
            }
            id.get_or_insert_with(|| value.to_owned());
        } else if !ext_name(name) || !ext_value(value) {
            return Err(invalid(format!("field {field:?} is not a valid extension")));
        }
    }
    match id {
        Some(id) => Ok(Record { id }),
        None => Err(invalid("it has no id field".into())),
    }
}

/// `sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`
pub(crate) fn ext_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// `sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)`: visible ASCII but `;`
/// and `=`.
fn ext_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21..=0x3a | 0x3c | 0x3e..=0x7e))
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=STSv1; id={}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> Result<Record, RecordError> {
        Ok(Record { id: id.to_owned() })
    }

    fn invalid(text: &str, reason: &str) -> Result<Record, RecordError> {
        Err(RecordError::Invalid {
            text: text.to_owned(),
            reason: reason.to_owned(),
        })
    }

    #[test]
    fn parse_table() {
        let table: Vec<(&str, Result<Record, RecordError>)> = vec![
            ("v=STSv1; id=20160831085700Z", rec("20160831085700Z")),
            ("v=STSv1;id=abc", rec("abc")),
            ("v=STSv1 ;\tid=abc ;", rec("abc")),
            ("v=STSv1; id=abc;", rec("abc")),
            ("v=STSv1; ext=x:y/z; id=abc", rec("abc")),
            ("v=STSv1; id=first; id=second", rec("first")),
            (
                "v=STSv1; id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1",
                rec("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1"),
            ),
            ("v=STSv1;", invalid("v=STSv1;", "it has no id field")),
            (
                "v=STSv1; ext=1",
                invalid("v=STSv1; ext=1", "it has no id field"),
            ),
            (
                "v=STSv1; id=",
                invalid("v=STSv1; id=", "id \"\" must be 1 to 32 letters and digits"),
            ),
            (
                "v=STSv1; id=a-b",
                invalid(
                    "v=STSv1; id=a-b",
                    "id \"a-b\" must be 1 to 32 letters and digits",
                ),
            ),
            (
                "v=STSv1; id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                invalid(
                    "v=STSv1; id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    "id \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\" must be 1 to 32 letters and digits",
                ),
            ),
            (
                "v=STSv1; id = abc",
                invalid(
                    "v=STSv1; id = abc",
                    "field \"id = abc\" is not a valid extension",
                ),
            ),
            (
                "v=STSv1;; id=abc",
                invalid("v=STSv1;; id=abc", "field \"\" is not name=value"),
            ),
            (
                "v=STSv1; id",
                invalid("v=STSv1; id", "field \"id\" is not name=value"),
            ),
            (
                "v=STSv2; id=abc",
                invalid("v=STSv2; id=abc", "it must begin with \"v=STSv1\""),
            ),
            (
                " v=STSv1; id=abc",
                invalid(" v=STSv1; id=abc", "it must begin with \"v=STSv1\""),
            ),
            (
                "id=abc; v=STSv1",
                invalid("id=abc; v=STSv1", "it must begin with \"v=STSv1\""),
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse(text.as_bytes()), want, "{text:?}");
        }
        assert!(matches!(
            parse("v=STSv1; id=ä".as_bytes()),
            Err(RecordError::Invalid { .. })
        ));
    }

    #[test]
    fn selection_discards_other_records() {
        let t = |s: &str| s.as_bytes().to_vec();
        assert_eq!(select(&[]), Ok(None));
        assert_eq!(select(&[t("v=spf1 -all"), t("hello")]), Ok(None));
        // "v=STSv10" does not begin with "v=STSv1;".
        assert_eq!(select(&[t("v=STSv10; id=1")]), Ok(None));
        assert_eq!(
            select(&[t("v=spf1 -all"), t("v=STSv1; id=abc")]),
            Ok(Some(Record { id: "abc".into() }))
        );
        assert_eq!(
            select(&[t("v=STSv1; id=a"), t("v=STSv1; id=b")]),
            Err(RecordError::Several(2))
        );
        assert!(matches!(
            select(&[t("v=STSv1; id=a_b")]),
            Err(RecordError::Invalid { .. })
        ));
        assert_eq!(Record { id: "x1".into() }.to_string(), "v=STSv1; id=x1");
    }
}
