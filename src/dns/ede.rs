//! Extended DNS Errors (RFC 8914): the reason a resolver gives with a
//! SERVFAIL (unbound: "9 (DNSKEY Missing): validation failure <...>"), read
//! from the OPT record, so that `trust-ad` mode can pass the resolver's
//! own words on. The text comes from the network: it is made printable
//! and bounded before it reaches a reply or a log line.

use std::fmt;

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::rdata::opt::EdnsOption;

/// The OPT option code of an Extended DNS Error.
const EDE: u16 = 15;

/// Longest EXTRA-TEXT kept, in characters.
const MAX_TEXT: usize = 240;

/// One Extended DNS Error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    /// EXTRA-TEXT, printable ASCII only.
    pub text: String,
}

impl Ede {
    /// Codes that say DNSSEC validation failed: unsupported algorithm or
    /// digest (1, 2), indeterminate, bogus, expired, not yet valid, DNSKEY,
    /// RRSIG or NSEC missing, no zone key bit (5 to 12), and a signature
    /// that expired before it became valid (25).
    pub fn is_dnssec(&self) -> bool {
        matches!(self.code, 1 | 2 | 5..=12 | 25)
    }

    /// The registry's name of the code (RFC 8914 §4 and the IANA registry).
    pub fn name(&self) -> &'static str {
        match self.code {
            0 => "Other Error",
            1 => "Unsupported DNSKEY Algorithm",
            2 => "Unsupported DS Digest Type",
            3 => "Stale Answer",
            4 => "Forged Answer",
            5 => "DNSSEC Indeterminate",
            6 => "DNSSEC Bogus",
            7 => "Signature Expired",
            8 => "Signature Not Yet Valid",
            9 => "DNSKEY Missing",
            10 => "RRSIGs Missing",
            11 => "No Zone Key Bit Set",
            12 => "NSEC Missing",
            13 => "Cached Error",
            14 => "Not Ready",
            15 => "Blocked",
            16 => "Censored",
            17 => "Filtered",
            18 => "Prohibited",
            19 => "Stale NXDomain Answer",
            20 => "Not Authoritative",
            21 => "Not Supported",
            22 => "No Reachable Authority",
            23 => "Network Error",
            24 => "Invalid Data",
            25 => "Signature Expired before Valid",
            26 => "Too Early",
            27 => "Unsupported NSEC3 Iterations Value",
            28 => "Unable to conform to policy",
            29 => "Synthesized",
            30 => "Invalid Query Type",
            _ => "Unknown",
        }
    }

    /// Parses an option's data: INFO-CODE (2 octets), then EXTRA-TEXT.
    pub fn parse(data: &[u8]) -> Option<Ede> {
        let code = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
        let text: String = String::from_utf8_lossy(&data[2..])
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(MAX_TEXT)
            .collect();
        Some(Ede {
            code,
            text: text.trim().to_owned(),
        })
    }
}

impl fmt::Display for Ede {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.name())?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// The first Extended DNS Error of a response, if any.
pub fn extended_error(response: &Message) -> Option<Ede> {
    let edns = response.edns.as_ref()?;
    edns.options()
        .options
        .iter()
        .find_map(|(_, option)| match option {
            EdnsOption::Unknown(EDE, data) => Ede::parse(data),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (code, text, DNSSEC failure?, as shown)
    type Parsed = (u16, &'static str, bool, &'static str);

    #[test]
    fn parses_code_and_text() {
        let table: &[(&[u8], Option<Parsed>)] = &[
            (
                b"\x00\x09validation failure <bogus.test. MX IN>: No DNSKEY record",
                Some((
                    9,
                    "validation failure <bogus.test. MX IN>: No DNSKEY record",
                    true,
                    "9 (DNSKEY Missing): validation failure <bogus.test. MX IN>: No DNSKEY record",
                )),
            ),
            (b"\x00\x07", Some((7, "", true, "7 (Signature Expired)"))),
            (
                b"\x00\x16at delegation dead.test.",
                Some((
                    22,
                    "at delegation dead.test.",
                    false,
                    "22 (No Reachable Authority): at delegation dead.test.",
                )),
            ),
            // control characters and line breaks never pass
            (
                b"\x00\x06bad\r\n250 ok\x00",
                Some((6, "bad??250 ok?", true, "6 (DNSSEC Bogus): bad??250 ok?")),
            ),
            (b"\x01\x00", Some((256, "", false, "256 (Unknown)"))),
            (b"\x00", None),
            (b"", None),
        ];
        for (data, want) in table {
            let got =
                Ede::parse(data).map(|e| (e.code, e.text.clone(), e.is_dnssec(), e.to_string()));
            let want = want.map(|(c, t, d, s)| (c, t.to_string(), d, s.to_string()));
            assert_eq!(got, want, "{data:?}");
        }
        let long = [b"\x00\x06".as_slice(), &[b'x'; 1000]].concat();
        assert_eq!(Ede::parse(&long).map(|e| e.text.len()), Some(MAX_TEXT));
    }
}
