//! The capabilities a server announces in its EHLO reply (RFC 5321 §4.1.1.1).

use super::reply::Reply;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pipelining: bool,
    pub starttls: bool,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub chunking: bool,
    pub binarymime: bool,
    pub enhancedstatuscodes: bool,
    /// `SIZE` announced: `Some(0)` means no fixed limit, `Some(n)` a limit
    /// of n octets, `None` no SIZE extension.
    pub size: Option<u64>,
}

/// Reads the extension lines of a positive EHLO reply (every line after
/// the first; keywords are case-insensitive; unknown keywords are ignored).
///
/// A reply that is not positive announces nothing: its lines are error
/// text, and reading "STARTTLS" out of them would be a lie.
pub fn parse_ehlo(reply: &Reply) -> Capabilities {
    let mut caps = Capabilities::default();
    if !reply.is_positive() {
        return caps;
    }
    for line in reply.lines.iter().skip(1) {
        let mut words = line.split_ascii_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        match keyword.to_ascii_uppercase().as_str() {
            "PIPELINING" => caps.pipelining = true,
            "STARTTLS" => caps.starttls = true,
            "8BITMIME" => caps.eightbitmime = true,
            "SMTPUTF8" => caps.smtputf8 = true,
            "DSN" => caps.dsn = true,
            "CHUNKING" => caps.chunking = true,
            "BINARYMIME" => caps.binarymime = true,
            "ENHANCEDSTATUSCODES" => caps.enhancedstatuscodes = true,
            // RFC 1870: "SIZE" alone or "SIZE 0" means no fixed limit. A
            // limit we cannot read is treated the same: the server still
            // has the extension, and will say so if a message is too big.
            "SIZE" => {
                caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
            }
            _ => {}
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::parse_reply;

    fn caps(wire: &[u8]) -> Capabilities {
        let (reply, n) = parse_reply(wire).expect("test input is a valid reply");
        assert_eq!(n, wire.len());
        parse_ehlo(&reply)
    }

    #[test]
    fn table() {
        let all = Capabilities {
            pipelining: true,
            starttls: true,
            eightbitmime: true,
            smtputf8: true,
            dsn: true,
            chunking: true,
            binarymime: true,
            enhancedstatuscodes: true,
            size: Some(10240000),
        };
        let cases: &[(&[u8], Capabilities)] = &[
            (b"250 mx.example\r\n", Capabilities::default()),
            // The shape of a Postfix 3.x EHLO reply.
            (
                b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
                  250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
                  250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 BINARYMIME\r\n",
                all.clone(),
            ),
            // Keywords are case-insensitive, blanks around them are not
            // significant, and unknown ones are ignored.
            (
                b"250-mx\r\n250-pipelining\r\n250-StartTLS \r\n250-  size\t5000 \r\n\
                  250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN\r\n250-X-FOO\r\n250 \r\n",
                Capabilities {
                    pipelining: true,
                    starttls: true,
                    size: Some(5000),
                    ..Default::default()
                },
            ),
            (
                b"250-mx\r\n250 SIZE\r\n",
                Capabilities {
                    size: Some(0),
                    ..Default::default()
                },
            ),
            (
                b"250-mx\r\n250 SIZE 0\r\n",
                Capabilities {
                    size: Some(0),
                    ..Default::default()
                },
            ),
            (
                b"250-mx\r\n250 SIZE huge\r\n",
                Capabilities {
                    size: Some(0),
                    ..Default::default()
                },
            ),
            (
                b"250-mx\r\n250 SIZE 18446744073709551615\r\n",
                Capabilities {
                    size: Some(u64::MAX),
                    ..Default::default()
                },
            ),
            // The first line is the server's name, never a keyword.
            (
                b"250-STARTTLS\r\n250 8BITMIME\r\n",
                Capabilities {
                    eightbitmime: true,
                    ..Default::default()
                },
            ),
            // Not "STARTTLS": a keyword is a whole word.
            (b"250-mx\r\n250 STARTTLSX\r\n", Capabilities::default()),
            // Enhanced codes on every line (some servers do this) are
            // stripped by the reply parser.
            (
                b"250-2.0.0 mx\r\n250-2.0.0 STARTTLS\r\n250 2.0.0 DSN\r\n",
                Capabilities {
                    starttls: true,
                    dsn: true,
                    ..Default::default()
                },
            ),
            // An error reply announces nothing.
            (b"550-mx\r\n550 STARTTLS\r\n", Capabilities::default()),
        ];
        for (wire, want) in cases {
            assert_eq!(
                caps(wire),
                *want,
                "input {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }
}
