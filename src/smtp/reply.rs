//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463,
//! RFC 2034): parsing what a destination server sends, and writing what we
//! send to our client.
//!
//! [`parse_reply`] is incremental: it returns [`ReplyError::Incomplete`]
//! until a whole (possibly multi-line) reply is in the buffer. Line length
//! and line count are bounded so an endless reply is an error, not a leak.

use std::borrow::Cow;
use std::fmt;

use super::line::{find_line, LineError};

/// Longest reply line we accept from a server, CRLF included.
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines one reply may have (an EHLO reply has one per extension).
pub const MAX_REPLY_LINES: usize = 128;

/// An enhanced status code `class.subject.detail`, e.g. `4.4.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply. `lines` hold the text of each line without the code,
/// the separator and the enhanced code (when the reply carried one, it is
/// in `enhanced`, parsed from the first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// 2xx
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 3xx
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }
    /// 4xx
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5xx
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// All lines joined with a single space, for logs and error texts.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// Appends the wire form: every line `code-`/`code ` followed by the
    /// enhanced code (when present) and the text, CRLF-terminated. An empty
    /// `lines` writes one line with no text. Texts must not contain CR or
    /// LF; any that do are replaced by spaces, and other control
    /// characters but HT by `?`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let empty = [String::new()];
        let lines = if self.lines.is_empty() {
            &empty[..]
        } else {
            &self.lines[..]
        };
        for (i, text) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some(e) = self.enhanced {
                out.extend_from_slice(e.to_string().as_bytes());
                if !text.is_empty() {
                    out.push(b' ');
                }
            }
            // A CR or LF in a text would end the line early and let the
            // rest pass for a reply of its own; other control characters
            // (NUL, ESC, ...) from a destination's text have no business
            // reaching the client (RFC 5321's textstring is HT and
            // printable characters).
            for c in text.chars() {
                let c = match c {
                    '\r' | '\n' => ' ',
                    '\t' => '\t',
                    c if c.is_control() => '?',
                    c => c,
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a fresh vector.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

impl fmt::Display for Reply {
    /// `550 5.1.1 text text2` (lines joined by a space), for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("incomplete reply")]
    Incomplete,
    #[error("reply line longer than {limit} octets")]
    LineTooLong { limit: usize },
    #[error("reply with more than {limit} lines")]
    TooManyLines { limit: usize },
    #[error("malformed reply: {reason}")]
    Malformed { reason: &'static str },
}

/// Parses one whole reply from the start of `buf`, returning it and the
/// number of bytes consumed. Lines end with CRLF (a bare LF is tolerated,
/// as servers in the wild send it). Every line must carry the same code;
/// `code-text` continues, `code text` or a bare `code` ends the reply. The
/// enhanced code is recognised only when the first line's text starts with
/// `c.s.d ` whose class equals the code's first digit; it is then stripped
/// from every line that carries it.
pub fn parse_reply(buf: &[u8]) -> Result<(Reply, usize), ReplyError> {
    let mut consumed = 0;
    let mut code = 0;
    let mut enhanced = None;
    let mut lines = Vec::new();
    loop {
        // Each complete line is checked as soon as it is there, so a server
        // talking nonsense is caught without waiting for the reply to end.
        let line = match find_line(&buf[consumed..], MAX_REPLY_LINE) {
            Ok(line) => line,
            Err(LineError::Incomplete) => return Err(ReplyError::Incomplete),
            Err(LineError::TooLong { limit }) => return Err(ReplyError::LineTooLong { limit }),
        };
        consumed += line.consumed;
        // A bare CR (left in a line by the LF-tolerant framing) is read as
        // a space, before anything else looks at the line: that is what
        // `write_to` would make of it, so a reply we parsed reads the same
        // when we write it back ("2.0.0\rx" must not become an enhanced
        // code only on the second reading).
        let text: Cow<'_, [u8]> = if line.text.contains(&b'\r') {
            Cow::Owned(
                line.text
                    .iter()
                    .map(|&b| if b == b'\r' { b' ' } else { b })
                    .collect(),
            )
        } else {
            Cow::Borrowed(line.text)
        };
        let (line_code, last, text) = grammar::reply_line(&text)?;
        if lines.is_empty() {
            code = line_code;
            enhanced = grammar::enhanced_prefix(text)
                .map(|(e, _)| e)
                .filter(|e| u16::from(e.class) == code / 100);
        } else if line_code != code {
            return Err(ReplyError::Malformed {
                reason: "reply code differs between lines",
            });
        }
        let text = match (enhanced, grammar::enhanced_prefix(text)) {
            (Some(want), Some((got, rest))) if want == got => rest,
            _ => text,
        };
        lines.push(sanitize(text));
        if last {
            let reply = Reply {
                code,
                enhanced,
                lines,
            };
            return Ok((reply, consumed));
        }
        if lines.len() == MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines {
                limit: MAX_REPLY_LINES,
            });
        }
    }
}

/// nom parsers for one reply line (RFC 5321 §4.2 `Reply-line`) and the
/// enhanced code at the start of its text (RFC 3463, RFC 2034).
mod grammar {
    use super::{EnhancedCode, ReplyError};
    use nom::branch::alt;
    use nom::bytes::complete::{tag, take_while_m_n};
    use nom::combinator::{eof, map, rest, value};
    use nom::{IResult, Parser};

    type Res<'a, T> = IResult<&'a [u8], T>;

    fn number(digits: &[u8]) -> u16 {
        // Callers take at most 3 digits, so this cannot overflow.
        digits.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0'))
    }

    fn digits(min: usize, max: usize) -> impl Fn(&[u8]) -> Res<'_, u16> {
        move |i| map(take_while_m_n(min, max, |b: u8| b.is_ascii_digit()), number).parse(i)
    }

    /// `false` for "-" (more lines follow), `true` for " " or the end.
    fn separator(i: &[u8]) -> Res<'_, bool> {
        alt((
            value(false, tag(&b"-"[..])),
            value(true, tag(&b" "[..])),
            value(true, eof),
        ))
        .parse(i)
    }

    /// One line without its terminator: `(code, is_last, text)`.
    pub(super) fn reply_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
        let malformed = |reason| move |_| ReplyError::Malformed { reason };
        let (after, code) =
            digits(3, 3)(line).map_err(malformed("reply code is not three digits"))?;
        if !(200..=599).contains(&code) {
            return Err(ReplyError::Malformed {
                reason: "reply code outside 200..599",
            });
        }
        let (_, (last, text)) = (separator, rest).parse(after).map_err(malformed(
            "reply code not followed by space, hyphen or end of line",
        ))?;
        Ok((code, last, text))
    }

    /// `c.s.d` followed by a space or the end of the text: the enhanced
    /// code and the text after it.
    pub(super) fn enhanced_prefix(text: &[u8]) -> Option<(EnhancedCode, &[u8])> {
        let code = (
            digits(1, 1),
            tag(&b"."[..]),
            digits(1, 3),
            tag(&b"."[..]),
            digits(1, 3),
        );
        let end = alt((map((tag(&b" "[..]), rest), |(_, r)| r), eof));
        let (_, ((class, _, subject, _, detail), text)) = (code, end).parse(text).ok()?;
        // class is one digit.
        Some((EnhancedCode::new(class as u8, subject, detail), text))
    }
}

/// Reply texts become `String`s for logs and for passing on: bytes that
/// are not UTF-8 (servers still send Latin-1) become "?", which keeps the
/// text no longer than it was, so a reply we parsed can be written back
/// within the line limit (U+FFFD would triple an invalid byte).
fn sanitize(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for chunk in text.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push('?');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, enhanced: Option<EnhancedCode>, lines: &[&str]) -> Reply {
        Reply {
            code,
            enhanced,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }
    type Parsed = Result<(Reply, usize), ReplyError>;

    fn ok(r: Reply, consumed: usize) -> Parsed {
        Ok((r, consumed))
    }
    fn malformed(reason: &'static str) -> Parsed {
        Err(ReplyError::Malformed { reason })
    }
    const E200: Option<EnhancedCode> = Some(EnhancedCode::new(2, 0, 0));
    const BAD_CODE: &str = "reply code is not three digits";
    const BAD_RANGE: &str = "reply code outside 200..599";
    const BAD_SEP: &str = "reply code not followed by space, hyphen or end of line";
    const MISMATCH: &str = "reply code differs between lines";

    #[test]
    fn table() {
        let cases: &[(&[u8], Parsed)] = &[
            (b"", Err(ReplyError::Incomplete)),
            (b"250 ok", Err(ReplyError::Incomplete)),
            (b"250 ok\r\n", ok(reply(250, None, &["ok"]), 8)),
            (b"250 ok\n", ok(reply(250, None, &["ok"]), 7)),
            (b"250\r\n", ok(reply(250, None, &[""]), 5)),
            (b"250 \r\n", ok(reply(250, None, &[""]), 6)),
            (
                b"354 go ahead\r\nRSET",
                ok(reply(354, None, &["go ahead"]), 14),
            ),
            (
                b"220 mx.example ESMTP Postfix\r\n",
                ok(reply(220, None, &["mx.example ESMTP Postfix"]), 30),
            ),
            (b"250-a\r\n250 b\r\n", ok(reply(250, None, &["a", "b"]), 14)),
            (b"250-a\r\n250-b\r\n", Err(ReplyError::Incomplete)),
            (
                b"250-a\r\n250-b\r\n250\r\n",
                ok(reply(250, None, &["a", "b", ""]), 19),
            ),
            (b"250-a\n250 b\n", ok(reply(250, None, &["a", "b"]), 12)),
            // Enhanced codes: stripped from every line that carries them.
            (b"250 2.0.0 Ok\r\n", ok(reply(250, E200, &["Ok"]), 14)),
            (b"250 2.0.0\r\n", ok(reply(250, E200, &[""]), 11)),
            (
                b"550 5.1.1 <a@b.example>: Recipient address rejected\r\n",
                ok(
                    reply(
                        550,
                        Some(EnhancedCode::new(5, 1, 1)),
                        &["<a@b.example>: Recipient address rejected"],
                    ),
                    53,
                ),
            ),
            (
                b"451 4.7.1 a\r\n",
                ok(reply(451, Some(EnhancedCode::new(4, 7, 1)), &["a"]), 13),
            ),
            (
                b"554 5.123.456 x\r\n",
                ok(reply(554, Some(EnhancedCode::new(5, 123, 456)), &["x"]), 17),
            ),
            (
                b"250-2.0.0 a\r\n250 2.0.0 b\r\n",
                ok(reply(250, E200, &["a", "b"]), 26),
            ),
            (
                b"250-2.0.0 a\r\n250 b\r\n",
                ok(reply(250, E200, &["a", "b"]), 20),
            ),
            (
                b"250-2.0.0 a\r\n250 2.1.0 b\r\n",
                ok(reply(250, E200, &["a", "2.1.0 b"]), 26),
            ),
            (
                b"250-a\r\n250 2.0.0 b\r\n",
                ok(reply(250, None, &["a", "2.0.0 b"]), 20),
            ),
            // Not an enhanced code: wrong class, no space after, too many
            // digits.
            (b"250 5.0.0 x\r\n", ok(reply(250, None, &["5.0.0 x"]), 13)),
            (b"250 2.0.0x\r\n", ok(reply(250, None, &["2.0.0x"]), 12)),
            (
                b"250 2.0000.0 x\r\n",
                ok(reply(250, None, &["2.0000.0 x"]), 16),
            ),
            (b"250 2.0 x\r\n", ok(reply(250, None, &["2.0 x"]), 11)),
            (b"250 20.0.0 x\r\n", ok(reply(250, None, &["20.0.0 x"]), 14)),
            // Odd texts are kept, made printable.
            (b"250 a\rb\r\n", ok(reply(250, None, &["a b"]), 9)),
            (b"250 2.0.0\rb\r\n", ok(reply(250, E200, &["b"]), 13)),
            (b"250\rb\r\n", ok(reply(250, None, &["b"]), 7)),
            (b"250-\r\n250 x\r\n", ok(reply(250, None, &["", "x"]), 13)),
            (b"250 caf\xe9\r\n", ok(reply(250, None, &["caf?"]), 10)),
            (b"250 \xff\xfe\xc3\r\n", ok(reply(250, None, &["???"]), 9)),
            (
                "250 café\r\n".as_bytes(),
                ok(reply(250, None, &["café"]), 11),
            ),
            (
                b"250  two spaces \r\n",
                ok(reply(250, None, &[" two spaces "]), 18),
            ),
            // Malformed.
            (b"25O ok\r\n", malformed(BAD_CODE)),
            (b"25\r\n", malformed(BAD_CODE)),
            (b"\r\n", malformed(BAD_CODE)),
            (b" 250 ok\r\n", malformed(BAD_CODE)),
            (b"199 x\r\n", malformed(BAD_RANGE)),
            (b"600 x\r\n", malformed(BAD_RANGE)),
            (b"099 x\r\n", malformed(BAD_RANGE)),
            (b"2500 x\r\n", malformed(BAD_SEP)),
            (b"250_x\r\n", malformed(BAD_SEP)),
            (b"250\tx\r\n", malformed(BAD_SEP)),
            (b"250-a\r\n251 b\r\n", malformed(MISMATCH)),
            (b"250-a\r\n550 b\r\n", malformed(MISMATCH)),
            // An error in a complete line is reported before the reply ends.
            (b"250-a\r\nxyz", Err(ReplyError::Incomplete)),
            (b"250-a\r\nxyz\r\n", malformed(BAD_CODE)),
            (b"250-a\r\n251-b\r\n", malformed(MISMATCH)),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_reply(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits() {
        let long = [b"250 ".as_slice(), &[b'x'; MAX_REPLY_LINE - 6], b"\r\n"].concat();
        assert_eq!(long.len(), MAX_REPLY_LINE);
        assert!(parse_reply(&long).is_ok());
        let too_long = [b"250 ".as_slice(), &[b'x'; MAX_REPLY_LINE - 5], b"\r\n"].concat();
        let err = Err(ReplyError::LineTooLong {
            limit: MAX_REPLY_LINE,
        });
        assert_eq!(parse_reply(&too_long), err);
        // Refused before its end arrives.
        assert_eq!(parse_reply(&too_long[..MAX_REPLY_LINE + 1]), err);
        // A long line after good ones.
        let later = [b"250-a\r\n".as_slice(), &too_long].concat();
        assert_eq!(parse_reply(&later), err);

        let mut many = b"250-x\r\n".repeat(MAX_REPLY_LINES - 1);
        many.extend_from_slice(b"250 x\r\n");
        let (r, n) = parse_reply(&many).unwrap();
        assert_eq!((r.lines.len(), n), (MAX_REPLY_LINES, many.len()));
        let endless = b"250-x\r\n".repeat(MAX_REPLY_LINES);
        let err = Err(ReplyError::TooManyLines {
            limit: MAX_REPLY_LINES,
        });
        assert_eq!(parse_reply(&endless), err);
        assert_eq!(
            parse_reply(&[endless.as_slice(), b"250 x\r\n"].concat()),
            err
        );
    }

    /// Captured-looking inputs for the incremental tests, written here by
    /// hand in the shapes Postfix and Exchange use.
    const SAMPLES: &[&[u8]] = &[
        b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n",
        b"550 5.7.1 Service unavailable; client [192.0.2.1] blocked\r\n",
        b"250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\n",
        b"354\r\n",
    ];

    #[test]
    fn every_prefix_is_incomplete() {
        for input in SAMPLES {
            for n in 0..input.len() {
                assert_eq!(
                    parse_reply(&input[..n]),
                    Err(ReplyError::Incomplete),
                    "prefix {n}"
                );
            }
            let (_, consumed) = parse_reply(input).unwrap();
            assert_eq!(consumed, input.len());
        }
    }

    /// Reads replies from a stream arriving in the given chunk sizes, as
    /// the connection code does: append, parse, drop what was consumed.
    fn replies_chunked(input: &[u8], chunks: &[usize]) -> Vec<Reply> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut rest = input;
        for &n in chunks.iter().chain(std::iter::once(&usize::MAX)) {
            let n = n.min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match parse_reply(&buf) {
                    Ok((r, consumed)) => {
                        out.push(r);
                        buf.drain(..consumed);
                    }
                    Err(ReplyError::Incomplete) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn chunk_split() {
        let input = SAMPLES.concat();
        let whole = replies_chunked(&input, &[]);
        assert_eq!(whole.len(), SAMPLES.len());
        for split in 0..=input.len() {
            assert_eq!(replies_chunked(&input, &[split]), whole, "split at {split}");
        }
        assert_eq!(replies_chunked(&input, &vec![1; input.len()]), whole);
    }

    #[test]
    fn write_to() {
        let cases: &[(Reply, &[u8])] = &[
            (reply(250, None, &["ok"]), b"250 ok\r\n"),
            (reply(250, None, &[]), b"250 \r\n"),
            (reply(250, None, &[""]), b"250 \r\n"),
            (reply(250, None, &["a", "b"]), b"250-a\r\n250 b\r\n"),
            (
                reply(250, E200, &["a", "b"]),
                b"250-2.0.0 a\r\n250 2.0.0 b\r\n",
            ),
            (reply(250, E200, &[]), b"250 2.0.0\r\n"),
            (
                reply(250, E200, &["", "x"]),
                b"250-2.0.0\r\n250 2.0.0 x\r\n",
            ),
            (
                reply(550, Some(EnhancedCode::new(5, 7, 1)), &["no"]),
                b"550 5.7.1 no\r\n",
            ),
            // A CR or LF in a text cannot start a line of its own.
            (reply(250, None, &["a\r\n250 b"]), b"250 a  250 b\r\n"),
            (reply(250, None, &["a\rb\nc"]), b"250 a b c\r\n"),
            // Other control characters never reach the client; HT and
            // non-ASCII text do.
            (
                reply(550, None, &["bad\0user\x1b[31m\x7f"]),
                b"550 bad?user?[31m?\r\n",
            ),
            (reply(250, None, &["a\tb"]), b"250 a\tb\r\n"),
            (
                reply(250, None, &["J\u{f6}rg"]),
                "250 J\u{f6}rg\r\n".as_bytes(),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(r.to_wire(), *want, "{r:?}");
        }
    }

    #[test]
    fn parsed_replies_round_trip() {
        let mut inputs: Vec<&[u8]> = SAMPLES.to_vec();
        inputs.extend_from_slice(&[
            b"250-2.0.0 a\r\n250 b\r\n",
            b"250-2.0.0\r\n250 2.0.0 2.0.0 x\r\n",
            b"250-2.00.0 a\r\n250 2.0.000 b\r\n",
            b"250 a\rb\r\n",
            b"250 3.0.4\rx\r\n",
            b"310-3.0.4 a\r\n310 3.0.4\r\r\n",
            b"250  \r\n",
            b"421\r\n",
        ]);
        for input in inputs {
            let (r, _) = parse_reply(input).unwrap();
            let wire = r.to_wire();
            assert_eq!(parse_reply(&wire), Ok((r.clone(), wire.len())), "{r:?}");
        }
    }

    #[test]
    fn accessors_and_display() {
        let r = reply(550, Some(EnhancedCode::new(5, 1, 1)), &["no such", "user"]);
        assert_eq!(r.to_string(), "550 5.1.1 no such user");
        assert_eq!(r.text(), "no such user");
        assert!(r.is_permanent() && !r.is_transient() && !r.is_positive());
        assert_eq!(Reply::new(354, None, "go").to_string(), "354 go");
        assert!(Reply::new(354, None, "").is_intermediate());
        assert_eq!(Reply::new(250, None, "").to_string(), "250");
        assert!(Reply::new(421, None, "").is_transient());
        assert!(Reply::new(250, None, "").is_positive());
    }
}
