//! Internationalised domain names: a recipient domain as the legacy MTA
//! wrote it (U-labels, as SMTPUTF8 allows, RFC 6531) becomes the A-label
//! form every DNS lookup uses (UTS #46 nontransitional processing, IDNA
//! 2008, the `idna` crate), and both forms are kept for logs and
//! `danegate resolve`. MX targets and TLSA names come from DNS and are
//! A-labels already.
//!
//! An ASCII domain is used as written (lowercased), as Postfix does
//! (`midna_domain_to_ascii` only for non-ASCII names): DNS is the judge
//! of it. A non-ASCII domain that cannot be converted is an error with
//! the reason, which becomes a permanent reply (the address is unusable
//! as written, whenever it is tried).

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// A domain in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName {
    /// A-labels, lowercase, no trailing dot: what DNS is asked.
    pub ascii: String,
    /// U-labels where the A-labels decode, for people to read.
    pub unicode: String,
}

impl DomainName {
    /// Whether the two forms differ (the domain is internationalised).
    pub fn is_idn(&self) -> bool {
        self.ascii != self.unicode
    }
}

/// A recipient domain that is not a valid domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recipient domain {domain} is not a valid domain name: {reason}")]
pub struct BadDomain {
    /// As written, with control characters escaped.
    pub domain: String,
    pub reason: String,
}

/// Longest label and name in A-label form (RFC 1035 §2.3.4, RFC 5890).
const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 253;

/// The full stops UTS #46 maps to ".".
const DOTS: [char; 4] = ['.', '\u{3002}', '\u{ff0e}', '\u{ff61}'];

/// `domain` in both forms, or why it cannot be used.
pub fn parse(domain: &str) -> Result<DomainName, BadDomain> {
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    if trimmed.is_ascii() {
        let ascii = trimmed.to_ascii_lowercase();
        return Ok(DomainName {
            unicode: to_unicode(&ascii),
            ascii,
        });
    }
    match to_ascii(trimmed, DnsLength::Verify) {
        Some(ascii) => Ok(DomainName {
            unicode: to_unicode(&ascii),
            ascii,
        }),
        None => Err(BadDomain {
            domain: printable(domain),
            reason: reason(trimmed),
        }),
    }
}

/// UTS #46 ToASCII as a mail domain needs it: host name characters only
/// (STD3 rules), no hyphen first or last.
fn to_ascii(name: &str, length: DnsLength) -> Option<String> {
    Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            length,
        )
        .ok()
        .map(|a| a.into_owned())
}

/// The U-label form of an ASCII name; the name itself where a label does
/// not decode (it is only shown, never looked up).
fn to_unicode(ascii: &str) -> String {
    let (unicode, result) =
        Uts46::new().to_unicode(ascii.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow);
    match result {
        Ok(()) => unicode.into_owned(),
        Err(_) => ascii.to_owned(),
    }
}

/// Why ToASCII refused `name`, label by label.
fn reason(name: &str) -> String {
    for label in name.split(DOTS) {
        if label.is_empty() {
            return "it has an empty label".to_owned();
        }
        match to_ascii(label, DnsLength::Ignore) {
            Some(a) if a.len() > MAX_LABEL => {
                return format!(
                    "label {} is {} octets long as an A-label ({a}), more than {MAX_LABEL}",
                    printable(label),
                    a.len()
                )
            }
            Some(_) => continue,
            None => return label_reason(label),
        }
    }
    match to_ascii(name, DnsLength::Ignore) {
        Some(a) if a.len() > MAX_NAME => format!(
            "it is {} octets long as A-labels, more than {MAX_NAME}",
            a.len()
        ),
        _ => "it breaks the IDNA rules (UTS #46)".to_owned(),
    }
}

fn label_reason(label: &str) -> String {
    let shown = printable(label);
    if label.starts_with('-') || label.ends_with('-') {
        return format!("label {shown} begins or ends with a hyphen");
    }
    // A character is disallowed where it fails between two letters;
    // joiners and combining marks pass there and fail only in context.
    let contextual = |c: char| matches!(c, '-' | '\u{200c}' | '\u{200d}');
    if let Some(c) = label
        .chars()
        .filter(|&c| !contextual(c))
        .find(|c| to_ascii(&format!("a{c}a"), DnsLength::Ignore).is_none())
    {
        return format!(
            "label {shown}: {} (U+{:04X}) is not allowed in a domain name",
            printable(&c.to_string()),
            u32::from(c)
        );
    }
    format!(
        "label {shown} breaks the IDNA rules (UTS #46: joiners, combining marks or right-to-left text out of place)"
    )
}

/// `s` with control and invisible formatting characters escaped, for
/// replies and logs.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\u{feff}' || ('\u{200b}'..='\u{200f}').contains(&c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (as written, A-labels, U-labels)
    const CONVERSIONS: &[(&str, &str, &str)] = &[
        ("example.net", "example.net", "example.net"),
        ("Example.NET.", "example.net", "example.net"),
        ("bücher.example", "xn--bcher-kva.example", "bücher.example"),
        ("BÜCHER.example", "xn--bcher-kva.example", "bücher.example"),
        (
            "xn--bcher-kva.example",
            "xn--bcher-kva.example",
            "bücher.example",
        ),
        (
            "XN--BCHER-KVA.example",
            "xn--bcher-kva.example",
            "bücher.example",
        ),
        ("bücher.test", "xn--bcher-kva.test", "bücher.test"),
        // nontransitional (IDNA 2008): ß and ς stay themselves
        ("faß.de", "xn--fa-hia.de", "faß.de"),
        (
            "ελληνικά.δοκιμή",
            "xn--hxargifdar.xn--jxalpdlp",
            "ελληνικά.δοκιμή",
        ),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah", "例え.テスト"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai", "пример.рф"),
        ("مثال.إختبار", "xn--mgbh0fb.xn--kgbechtv", "مثال.إختبار"),
        // ideographic full stop between labels
        ("例え。テスト", "xn--r8jz45g.xn--zckzah", "例え.テスト"),
        // ASCII is used as written: DNS judges it
        ("_25._tcp.example", "_25._tcp.example", "_25._tcp.example"),
        ("xn--zz.example", "xn--zz.example", "xn--zz.example"),
        ("[192.0.2.1]", "[192.0.2.1]", "[192.0.2.1]"),
    ];

    #[test]
    fn u_labels_become_a_labels() {
        for &(input, ascii, unicode) in CONVERSIONS {
            let d = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (d.ascii.as_str(), d.unicode.as_str()),
                (ascii, unicode),
                "{input}"
            );
            assert_eq!(d.is_idn(), ascii != unicode, "{input}");
        }
    }

    /// (as written, the whole error)
    const INVALID: &[(&str, &str)] = &[
        (
            "bü cher.example",
            "recipient domain bü cher.example is not a valid domain name: label bü cher:   (U+0020) is not allowed in a domain name",
        ),
        (
            "bücher..example",
            "recipient domain bücher..example is not a valid domain name: it has an empty label",
        ),
        (
            "-bücher.example",
            "recipient domain -bücher.example is not a valid domain name: label -bücher begins or ends with a hyphen",
        ),
        (
            "bücher_shop.example",
            "recipient domain bücher_shop.example is not a valid domain name: label bücher_shop: _ (U+005F) is not allowed in a domain name",
        ),
        (
            "bücher\r\n.example",
            "recipient domain bücher\\u{d}\\u{a}.example is not a valid domain name: label bücher\\u{d}\\u{a}: \\u{d} (U+000D) is not allowed in a domain name",
        ),
        (
            "b\u{200d}ücher.example",
            "recipient domain b\\u{200d}ücher.example is not a valid domain name: label b\\u{200d}ücher breaks the IDNA rules (UTS #46: joiners, combining marks or right-to-left text out of place)",
        ),
        (
            "\u{0301}bücher.example",
            "recipient domain \u{0301}bücher.example is not a valid domain name: label \u{0301}bücher breaks the IDNA rules (UTS #46: joiners, combining marks or right-to-left text out of place)",
        ),
    ];

    #[test]
    fn invalid_domains_say_why() {
        for &(input, want) in INVALID {
            match parse(input) {
                Err(e) => assert_eq!(e.to_string(), want, "{input:?}"),
                Ok(d) => panic!("{input:?} was accepted as {d:?}"),
            }
        }
        let long = format!("{}.example", "ü".repeat(70));
        let e = parse(&long).unwrap_err();
        assert!(
            e.reason.contains("octets long as an A-label") && e.reason.contains("more than 63"),
            "{e}"
        );
        let many = format!("{}bücher", "abcdefghij.".repeat(25));
        let e = parse(&many).unwrap_err();
        assert!(e.reason.contains("more than 253"), "{e}");
    }

    #[test]
    fn no_input_panics() {
        // Every single code point of the BMP as a one-label domain, and
        // in front of a valid one: an answer, never a panic.
        for c in (0u32..0xffff).filter_map(char::from_u32) {
            let _ = parse(&c.to_string());
            let _ = parse(&format!("{c}ü.example"));
        }
    }
}
