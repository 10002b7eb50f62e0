//! The `_smtp._tls` TXT record (RFC 8460 §3): where a domain wants its
//! reports. A pure parser: the lookup is the caller's.
//!
//! Of several TXT records, those that do not begin with `v=TLSRPTv1;`
//! are discarded; if not exactly one remains, the domain does not take
//! reports. `rua` is a comma-separated list of URIs; `mailto:` and
//! `https:` are the two schemes RFC 8460 defines, others are ignored.
//! Extension fields are ignored as §3 requires.

use std::fmt;

/// Where a report goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rua {
    /// An address (the `mailto:` URI's path, percent-decoded).
    Mailto(String),
    /// An `https:` URL to POST to.
    Https(String),
}

impl fmt::Display for Rua {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rua::Mailto(a) => write!(f, "mailto:{a}"),
            Rua::Https(u) => f.write_str(u),
        }
    }
}

/// A usable reporting policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The supported destinations, in the record's order.
    pub rua: Vec<Rua>,
    /// URIs of other schemes, ignored.
    pub ignored: Vec<String>,
}

/// Why a domain's TXT records give no reporting policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxtError {
    #[error("no TXT record begins with \"v=TLSRPTv1;\"")]
    None,
    #[error(
        "{0} TXT records begin with \"v=TLSRPTv1;\" (RFC 8460 §3: exactly one, else no reports)"
    )]
    Several(usize),
    #[error("not valid UTF-8")]
    NotText,
    #[error("invalid record: {0}")]
    Syntax(String),
    #[error("the record has no rua field")]
    NoRua,
    #[error("no rua URI has a scheme danegate can send to (mailto: or https:): {0}")]
    NoSupportedRua(String),
}

const VERSION: &str = "v=TLSRPTv1";

/// Whether a TXT record claims to be a reporting policy.
fn is_candidate(txt: &[u8]) -> bool {
    txt.strip_prefix(VERSION.as_bytes())
        .map(|rest| rest.trim_ascii_start().starts_with(b";"))
        .unwrap_or(false)
}

/// The reporting policy among the TXT records at `_smtp._tls.<domain>`
/// (each the concatenation of its strings).
pub fn select(txts: &[Vec<u8>]) -> Result<Record, TxtError> {
    let candidates: Vec<&Vec<u8>> = txts.iter().filter(|t| is_candidate(t)).collect();
    match candidates.as_slice() {
        [] => Err(TxtError::None),
        [one] => parse(std::str::from_utf8(one).map_err(|_| TxtError::NotText)?),
        many => Err(TxtError::Several(many.len())),
    }
}

/// Parses one record (RFC 8460 §3's ABNF).
pub fn parse(text: &str) -> Result<Record, TxtError> {
    let syntax = |m: String| Err(TxtError::Syntax(m));
    let mut fields = text.split(';').map(|f| f.trim_matches(is_wsp));
    if fields.next() != Some(VERSION) {
        return syntax(format!("it must begin with {VERSION}"));
    }
    let mut rua: Option<&str> = None;
    let mut seen_field = false;
    let mut trailing = false;
    for field in fields {
        if trailing {
            return syntax("empty field between semicolons".into());
        }
        if field.is_empty() {
            // Only the last delimiter may be followed by nothing.
            trailing = true;
            continue;
        }
        seen_field = true;
        let Some((name, value)) = field.split_once('=') else {
            return syntax(format!("field {field:?} is not name=value"));
        };
        if name == "rua" {
            if rua.is_some() {
                return syntax("rua appears twice".into());
            }
            rua = Some(value);
        } else if !valid_extension(name, value) {
            return syntax(format!("field {field:?} is not a valid extension"));
        }
    }
    if !seen_field {
        return syntax("no field after the version".into());
    }
    let Some(rua) = rua else {
        return Err(TxtError::NoRua);
    };
    uris(rua)
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `tlsrpt-ext-name "=" tlsrpt-ext-value`.
fn valid_extension(name: &str, value: &str) -> bool {
    let mut n = name.bytes();
    let first_ok = n.next().is_some_and(|b| b.is_ascii_alphanumeric());
    first_ok
        && name.len() <= 32
        && n.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !value.is_empty()
        && value
            .bytes()
            .all(|b| matches!(b, 0x21..=0x3A | 0x3C | 0x3E..=0x7E))
}

/// The rua list: URIs separated by commas (with optional white space).
fn uris(list: &str) -> Result<Record, TxtError> {
    let mut rua = Vec::new();
    let mut ignored = Vec::new();
    for raw in list.split(',').map(|u| u.trim_matches(is_wsp)) {
        if raw.is_empty() {
            return Err(TxtError::Syntax("empty URI in rua".into()));
        }
        let url =
            url::Url::parse(raw).map_err(|e| TxtError::Syntax(format!("rua URI {raw:?}: {e}")))?;
        match url.scheme() {
            "mailto" => rua.push(Rua::Mailto(mailbox(&url, raw)?)),
            "https" => match url.host_str() {
                Some(h) if !h.is_empty() => rua.push(Rua::Https(url.to_string())),
                _ => return Err(TxtError::Syntax(format!("rua URI {raw:?} names no host"))),
            },
            _ => ignored.push(raw.to_owned()),
        }
    }
    if rua.is_empty() {
        return Err(TxtError::NoSupportedRua(ignored.join(", ")));
    }
    rua.dedup();
    Ok(Record { rua, ignored })
}

/// The address of a `mailto:` URI (RFC 6068): its path, percent-decoded;
/// header fields (`?subject=...`) are ignored. Exactly one address with
/// a local part and a domain.
fn mailbox(url: &url::Url, raw: &str) -> Result<String, TxtError> {
    let bad = |why: &str| TxtError::Syntax(format!("rua URI {raw:?}: {why}"));
    let decoded = percent_encoding::percent_decode_str(url.path())
        .decode_utf8()
        .map_err(|_| bad("the address is not UTF-8"))?;
    if decoded.contains(',') {
        return Err(bad("more than one address"));
    }
    let Some((local, domain)) = decoded.rsplit_once('@') else {
        return Err(bad("not an address (local@domain)"));
    };
    if local.is_empty()
        || !crate::config::is_dns_name(domain)
        || decoded
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
    {
        return Err(bad("not an address (local@domain)"));
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(a: &str) -> Rua {
        Rua::Mailto(a.into())
    }
    fn h(u: &str) -> Rua {
        Rua::Https(u.into())
    }

    /// (record, expected rua or error text).
    const PARSE: &[(&str, Result<&[&str], &str>)] = &[
        // RFC 8460 §3.1's examples.
        ("v=TLSRPTv1;rua=mailto:reports@example.com", Ok(&["mailto:reports@example.com"])),
        ("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", Ok(&["https://reporting.example.com/v1/tlsrpt"])),
        // Several rua URIs, white space around delimiters, a trailing one.
        (
            "v=TLSRPTv1 ; rua=mailto:a@example.com , https://r.example.com/x,mailto:b@example.net ;",
            Ok(&["mailto:a@example.com", "https://r.example.com/x", "mailto:b@example.net"]),
        ),
        // Percent-encoded address, mailto header fields ignored.
        ("v=TLSRPTv1; rua=mailto:tls%2Breports@Example.COM?subject=x", Ok(&["mailto:tls+reports@example.com"])),
        // Extensions are ignored, in any position.
        ("v=TLSRPTv1; ext-1=value; rua=mailto:a@example.com; x.y=1", Ok(&["mailto:a@example.com"])),
        // Unsupported schemes are ignored when another URI is usable.
        ("v=TLSRPTv1; rua=http://r.example.com/,mailto:a@example.com", Ok(&["mailto:a@example.com"])),
        // Port and path kept.
        ("v=TLSRPTv1; rua=https://r.example.com:8443/a?b=c", Ok(&["https://r.example.com:8443/a?b=c"])),
        // Errors.
        ("v=TLSRPTv1", Err("invalid record: no field after the version")),
        ("v=TLSRPTv1;", Err("invalid record: no field after the version")),
        ("v=TLSRPTv2; rua=mailto:a@example.com", Err("invalid record: it must begin with v=TLSRPTv1")),
        ("rua=mailto:a@example.com; v=TLSRPTv1", Err("invalid record: it must begin with v=TLSRPTv1")),
        ("V=tlsrptv1; rua=mailto:a@example.com", Err("invalid record: it must begin with v=TLSRPTv1")),
        ("v=TLSRPTv1; ext=1", Err("the record has no rua field")),
        ("v=TLSRPTv1; rua=", Err("invalid record: empty URI in rua")),
        ("v=TLSRPTv1; rua=mailto:a@example.com,", Err("invalid record: empty URI in rua")),
        ("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", Err("invalid record: rua appears twice")),
        ("v=TLSRPTv1;; rua=mailto:a@example.com", Err("invalid record: empty field between semicolons")),
        ("v=TLSRPTv1; rua", Err("invalid record: field \"rua\" is not name=value")),
        ("v=TLSRPTv1; rua=reports@example.com", Err("invalid record: rua URI \"reports@example.com\": relative URL without a base")),
        ("v=TLSRPTv1; rua=mailto:reports", Err("invalid record: rua URI \"mailto:reports\": not an address (local@domain)")),
        ("v=TLSRPTv1; rua=mailto:@example.com", Err("invalid record: rua URI \"mailto:@example.com\": not an address (local@domain)")),
        ("v=TLSRPTv1; rua=mailto:a@example.com%2Cb@example.com", Err("invalid record: rua URI \"mailto:a@example.com%2Cb@example.com\": more than one address")),
        ("v=TLSRPTv1; rua=https://", Err("invalid record: rua URI \"https://\": empty host")),
        ("v=TLSRPTv1; rua=https://exa mple.com/", Err("invalid record: rua URI \"https://exa mple.com/\": invalid international domain name")),
        ("v=TLSRPTv1; rua=ftp://r.example.com/", Err("no rua URI has a scheme danegate can send to (mailto: or https:): ftp://r.example.com/")),
        ("v=TLSRPTv1; =x; rua=mailto:a@example.com", Err("invalid record: field \"=x\" is not a valid extension")),
        ("v=TLSRPTv1; e=a b; rua=mailto:a@example.com", Err("invalid record: field \"e=a b\" is not a valid extension")),
    ];

    #[test]
    fn record_table() {
        for (text, want) in PARSE {
            let got = parse(text)
                .map(|r| r.rua.iter().map(|u| u.to_string()).collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            let want = want
                .map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            assert_eq!(got, want, "for {text:?}");
        }
    }

    #[test]
    fn parsed_destinations_are_typed() {
        let r = parse("v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/p,http://x.example/")
            .unwrap();
        assert_eq!(r.rua, vec![m("a@example.com"), h("https://r.example/p")]);
        assert_eq!(r.ignored, vec!["http://x.example/".to_owned()]);
    }

    #[test]
    fn exactly_one_candidate_record() {
        let rec = |s: &str| s.as_bytes().to_vec();
        let ok = select(&[
            rec("v=spf1 -all"),
            rec("v=TLSRPTv1; rua=mailto:a@example.com"),
            rec("v=TLSRPTv10; rua=mailto:b@example.com"),
        ])
        .unwrap();
        assert_eq!(ok.rua, vec![m("a@example.com")]);
        assert_eq!(select(&[rec("v=spf1 -all")]), Err(TxtError::None));
        assert_eq!(select(&[]), Err(TxtError::None));
        assert_eq!(
            select(&[
                rec("v=TLSRPTv1; rua=mailto:a@example.com"),
                rec("v=TLSRPTv1 ;rua=https://r.example/")
            ]),
            Err(TxtError::Several(2))
        );
        // A candidate that does not parse is not replaced by another.
        assert_eq!(
            select(&[rec("v=TLSRPTv1; nothing")]),
            Err(TxtError::Syntax(
                "field \"nothing\" is not name=value".into()
            ))
        );
        assert_eq!(select(&[vec![b'v', b'=', 0xff]]), Err(TxtError::None));
        assert_eq!(
            select(&[b"v=TLSRPTv1; rua=mailto:\xff@x.example".to_vec()]),
            Err(TxtError::NotText)
        );
    }
}
