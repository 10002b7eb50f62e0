//! Line framing: finds one complete command line at the start of a buffer.
//!
//! Commands end with CRLF; a bare LF is accepted as a command line end too
//! (as Postfix does), since the smuggling problem only concerns message
//! content. Lines are bounded: a line longer than the limit is an error, so
//! that a peer cannot make us buffer without end.

/// Longest command line we accept, terminator included. RFC 5321 §4.5.3.1.4
/// says 512, but ESMTP parameters (ORCPT, ENVID, long SMTPUTF8 addresses)
/// make real lines longer; Postfix allows 2048.
pub const MAX_COMMAND_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// No line terminator yet and the buffer is still under the limit.
    Incomplete,
    /// The line (or the unterminated prefix seen so far) exceeds `limit`.
    TooLong { limit: usize },
}

/// A complete line found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its terminator (CRLF or bare LF).
    pub text: &'a [u8],
    /// Bytes consumed, terminator included.
    pub consumed: usize,
}

/// Finds the first line in `buf`. `limit` bounds the line length including
/// the terminator.
pub fn find_line(buf: &[u8], limit: usize) -> Result<Line<'_>, LineError> {
    // Only the first `limit` bytes can hold a terminator of an acceptable
    // line, so the scan never looks further: a peer that streams megabytes
    // without a newline costs us `limit` bytes of work per call, not more.
    let window = &buf[..buf.len().min(limit)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let text = &buf[..lf];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Ok(Line {
                text,
                consumed: lf + 1,
            })
        }
        // `limit` bytes and no LF among them: the line, once terminated,
        // would be at least `limit + 1` bytes long.
        None if buf.len() >= limit => Err(LineError::TooLong { limit }),
        None => Err(LineError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &[u8], consumed: usize) -> Result<Line<'_>, LineError> {
        Ok(Line { text, consumed })
    }

    #[test]
    fn table() {
        const INC: Result<Line<'static>, LineError> = Err(LineError::Incomplete);
        let cases: &[(&[u8], usize, Result<Line<'_>, LineError>)] = &[
            (b"", 16, INC),
            (b"NOOP", 16, INC),
            (b"NOOP\r", 16, INC),
            (b"NOOP\r\n", 16, ok(b"NOOP", 6)),
            (b"NOOP\n", 16, ok(b"NOOP", 5)),
            (b"\r\n", 16, ok(b"", 2)),
            (b"\n", 16, ok(b"", 1)),
            // Only the first line is taken; the rest stays for the next call.
            (b"RSET\r\nQUIT\r\n", 16, ok(b"RSET", 6)),
            (b"A\nB\r\n", 16, ok(b"A", 2)),
            // Only one CR is part of the terminator; an inner CR stays in
            // the text for the command parser to reject.
            (b"A\r\r\n", 16, ok(b"A\r", 4)),
            (b"A\rB\r\n", 16, ok(b"A\rB", 5)),
            // The limit counts the terminator.
            (b"12345678\r\n", 10, ok(b"12345678", 10)),
            (b"123456789\r\n", 10, Err(LineError::TooLong { limit: 10 })),
            (b"12345678\n", 9, ok(b"12345678", 9)),
            (b"123456789", 9, Err(LineError::TooLong { limit: 9 })),
            (b"12345678", 9, INC),
            (b"123456789\r", 10, Err(LineError::TooLong { limit: 10 })),
            // An over-long unterminated line is refused before it ends.
            (
                &[b'x'; 5000],
                MAX_COMMAND_LINE,
                Err(LineError::TooLong { limit: 4096 }),
            ),
        ];
        for (input, limit, want) in cases {
            assert_eq!(
                find_line(input, *limit),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for input in [&b"MAIL FROM:<a@b.example>\r\n"[..], b"QUIT\n"] {
            for n in 0..input.len() {
                assert_eq!(
                    find_line(&input[..n], MAX_COMMAND_LINE),
                    Err(LineError::Incomplete),
                    "prefix {n}"
                );
            }
            assert!(find_line(input, MAX_COMMAND_LINE).is_ok());
        }
    }

    /// Lines read out of a stream that arrives in pieces are the same
    /// however the stream is split.
    fn lines_chunked(input: &[u8], chunks: &[usize]) -> Vec<Vec<u8>> {
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        let mut rest = input;
        for &n in chunks.iter().chain(std::iter::once(&usize::MAX)) {
            let n = n.min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Ok(line) = find_line(&buf, MAX_COMMAND_LINE) {
                lines.push(line.text.to_vec());
                let consumed = line.consumed;
                buf.drain(..consumed);
            }
        }
        assert!(buf.is_empty());
        lines
    }

    #[test]
    fn chunk_split() {
        let input = b"EHLO a.example\r\nMAIL FROM:<>\nRCPT TO:<b@c.example>\r\n\r\n";
        let whole = lines_chunked(input, &[]);
        assert_eq!(whole.len(), 4);
        for split in 0..=input.len() {
            assert_eq!(lines_chunked(input, &[split]), whole, "split at {split}");
        }
        assert_eq!(lines_chunked(input, &vec![1; input.len()]), whole);
    }
}
