//! Message content: the DATA stream decoder and the BDAT-to-DATA encoder.
//!
//! The decoder finds the end of a DATA stream without holding the message:
//! it passes the content through in pieces, still dot-stuffed, exactly as
//! received, so it can be forwarded to a server that reads DATA too.
//! Only CRLF "." CRLF ends the data (RFC 5321 §4.1.1.4). A bare LF or a bare
//! CR (not part of CRLF) is never forwarded: the first one marks the stream
//! as violating §2.3.8, nothing more is output, and the decoder keeps
//! scanning for the real CRLF.CRLF so the session stays in step with its
//! client. The caller then aborts the outbound transaction and rejects the
//! message (5.5.2). This is what closes the SMTP smuggling hole: the
//! destination can never see an end of data that danegate did not see.
//!
//! The encoder turns raw BDAT chunks into a dot-stuffed DATA stream,
//! normalising bare CR and bare LF to CRLF before stuffing, so the line
//! structure the destination sees is exactly the one we stuffed.

use bytes::BytesMut;

/// Why a DATA stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataViolation {
    #[error("bare LF in message content (lines must end with CRLF, RFC 5321 section 2.3.8)")]
    BareLf,
    #[error("bare CR in message content (lines must end with CRLF, RFC 5321 section 2.3.8)")]
    BareCr,
}

/// What one call to [`DataDecoder::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProgress {
    /// Input bytes consumed. Less than the input only when `done`: the
    /// bytes after the terminator belong to the next command.
    pub consumed: usize,
    /// The terminating CRLF.CRLF has been consumed.
    pub done: bool,
}

/// Streaming decoder for the content after a 354 reply. The decoder starts
/// at the beginning of a line (the DATA command's CRLF precedes it), so
/// ".\r\n" as the very first bytes is an empty message.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: DecodeState,
    violation: Option<DataViolation>,
    content_len: u64,
    /// Drop stuffing dots from the output (RFC 5321 §4.5.2), for content
    /// that goes on as BDAT chunks; otherwise they are forwarded for a
    /// destination that reads DATA too.
    unstuff: bool,
}

/// Where the decoder stands in the line structure. The held-back bytes are
/// implied by the state (at most ".\r"), so nothing is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    /// At the start of a line: after CRLF, or at the very beginning.
    LineStart,
    /// Inside a line; the last byte was neither CR nor a line-start ".".
    Mid,
    /// A CR is held: CRLF if an LF follows, a bare CR otherwise.
    Cr,
    /// A "." at the start of a line is held: the terminator if CRLF
    /// follows, a stuffing dot otherwise.
    Dot,
    /// ".\r" at the start of a line is held: one LF away from the end.
    DotCr,
    /// CRLF.CRLF consumed.
    Done,
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDecoder {
    pub fn new() -> Self {
        DataDecoder {
            state: DecodeState::LineStart,
            violation: None,
            content_len: 0,
            unstuff: false,
        }
    }

    /// A decoder whose output is the content itself, stuffing dots
    /// removed: what a BDAT chunk carries.
    pub fn unstuffing() -> Self {
        DataDecoder {
            unstuff: true,
            ..DataDecoder::new()
        }
    }

    /// Consumes input and appends to `out` the bytes to forward: the
    /// content as received (dot-stuffing kept, the CRLF that ends the last
    /// line included), never the final ".\r\n". Bytes that might start the
    /// terminator (a "." at a line start, a trailing CR) are held back until
    /// the next call settles them. After a violation nothing more is
    /// appended, but the terminator is still searched for.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> DataProgress {
        use DecodeState::*;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                Done => break,
                LineStart if b == b'.' => self.state = Dot,
                LineStart | Mid if b != b'\r' && b != b'\n' => {
                    // The common case: copy the run up to the next CR or
                    // LF in one go, so the decoder is a memchr-like scan.
                    let run = input[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(input.len() - i);
                    self.emit(&input[i..i + run], out);
                    self.content_len += run as u64;
                    self.state = Mid;
                    i += run;
                    continue;
                }
                LineStart | Mid if b == b'\r' => self.state = Cr,
                LineStart | Mid => {
                    // An LF not preceded by CR. It is counted as content
                    // (an octet the client sent) but does not start a
                    // line: only CRLF does, so "\n.\r\n" is no end.
                    self.violate(DataViolation::BareLf);
                    self.content_len += 1;
                    self.state = Mid;
                }
                Dot if b == b'\r' => self.state = DotCr,
                Dot => {
                    // Not the terminator: the dot was stuffing. It is
                    // forwarded as received (the destination unstuffs it)
                    // but is not content.
                    self.stuffing_dot(out);
                    self.state = Mid;
                    continue; // b is the line's next byte: read it in Mid
                }
                DotCr if b == b'\n' => {
                    self.state = Done;
                    i += 1;
                    break;
                }
                Cr | DotCr => {
                    if self.state == DotCr {
                        // ".\r" then not LF: the dot was stuffing.
                        self.stuffing_dot(out);
                    }
                    if !self.settle_cr(b, out) {
                        continue; // b is an ordinary byte: read it in Mid
                    }
                }
            }
            i += 1;
        }
        DataProgress {
            consumed: i,
            done: self.state == Done,
        }
    }

    /// Settles a held CR now that `b` follows it. Returns false when `b`
    /// is not part of the line end and still has to be read.
    fn settle_cr(&mut self, b: u8, out: &mut BytesMut) -> bool {
        if b == b'\n' {
            self.emit(b"\r\n", out);
            self.content_len += 2;
            self.state = DecodeState::LineStart;
            return true;
        }
        self.violate(DataViolation::BareCr);
        self.content_len += 1;
        if b == b'\r' {
            // This CR in turn may be the start of a CRLF.
            self.state = DecodeState::Cr;
            true
        } else {
            self.state = DecodeState::Mid;
            false
        }
    }

    fn stuffing_dot(&self, out: &mut BytesMut) {
        if !self.unstuff {
            self.emit(b".", out);
        }
    }

    fn violate(&mut self, v: DataViolation) {
        self.violation.get_or_insert(v);
    }

    /// Forwards bytes unless the stream has already been refused: after a
    /// violation, whatever follows must never reach the destination.
    fn emit(&self, bytes: &[u8], out: &mut BytesMut) {
        if self.violation.is_none() {
            out.extend_from_slice(bytes);
        }
    }

    /// The first violation seen, if any.
    pub fn violation(&self) -> Option<DataViolation> {
        self.violation
    }

    /// Octets of content seen so far (dot-stuffing removed), for the
    /// message size limit. Counts content after a violation too.
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// True once the terminating CRLF.CRLF has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == DecodeState::Done
    }
}

/// Encodes raw message bytes (BDAT chunks) into a dot-stuffed DATA stream.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    /// The output is at the start of a line (nothing written yet, or the
    /// last thing written was CRLF).
    line_start: bool,
    /// The last input byte was a CR whose meaning (CRLF or bare CR) waits
    /// for the next byte. Either way it becomes CRLF; the question is only
    /// whether a following LF belongs to it.
    held_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        DotStuffer {
            line_start: true,
            held_cr: false,
        }
    }

    /// Appends the stuffed form of `input` to `out`. Bare CR and bare LF
    /// become CRLF; a "." at the start of a line is doubled. A CR at the
    /// end of `input` is held until the next call (or [`finish`]).
    ///
    /// [`finish`]: DotStuffer::finish
    pub fn encode(&mut self, input: &[u8], out: &mut BytesMut) {
        let mut i = 0;
        if self.held_cr && !input.is_empty() {
            self.held_cr = false;
            self.newline(out);
            if input[0] == b'\n' {
                i = 1; // the LF of this CRLF
            }
        }
        while i < input.len() {
            match input[i] {
                b'\r' => {
                    if i + 1 == input.len() {
                        self.held_cr = true;
                        return;
                    }
                    self.newline(out);
                    // CRLF and bare CR both make one line end.
                    i += if input[i + 1] == b'\n' { 2 } else { 1 };
                }
                b'\n' => {
                    self.newline(out);
                    i += 1;
                }
                b => {
                    if self.line_start && b == b'.' {
                        out.extend_from_slice(b".");
                    }
                    let run = input[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(input.len() - i);
                    out.extend_from_slice(&input[i..i + run]);
                    self.line_start = false;
                    i += run;
                }
            }
        }
    }

    fn newline(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(b"\r\n");
        self.line_start = true;
    }

    /// Appends what ends the stream: a CRLF if the content did not end with
    /// one, then ".\r\n". The stuffer is then ready for a new message.
    pub fn finish(&mut self, out: &mut BytesMut) {
        // A held CR is a line end already; adding another CRLF would add
        // an empty line to the message.
        if self.held_cr || !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataViolation::*;

    /// Everything observable about a decoder run.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Outcome {
        out: Vec<u8>,
        consumed: usize,
        done: bool,
        violation: Option<DataViolation>,
        content_len: u64,
    }

    fn outcome(
        out: &[u8],
        consumed: usize,
        done: bool,
        violation: Option<DataViolation>,
        content_len: u64,
    ) -> Outcome {
        Outcome {
            out: out.to_vec(),
            consumed,
            done,
            violation,
            content_len,
        }
    }

    /// Feeds `input` in pieces of the given sizes (the rest in one last
    /// piece), stopping once done, as the session does.
    fn decode_chunked(input: &[u8], chunks: &[usize]) -> Outcome {
        decode_with(DataDecoder::new(), input, chunks)
    }

    fn decode_with(mut dec: DataDecoder, input: &[u8], chunks: &[usize]) -> Outcome {
        let mut out = BytesMut::new();
        let mut consumed = 0;
        let mut done = false;
        let mut rest = input;
        for &n in chunks.iter().chain(std::iter::once(&usize::MAX)) {
            let n = n.min(rest.len());
            let p = dec.feed(&rest[..n], &mut out);
            assert!(
                p.consumed == n || p.done,
                "only the end leaves bytes unconsumed"
            );
            consumed += p.consumed;
            rest = &rest[n..];
            done = p.done;
            if done {
                break;
            }
        }
        assert_eq!(done, dec.is_done());
        Outcome {
            out: out.to_vec(),
            consumed,
            done,
            violation: dec.violation(),
            content_len: dec.content_len(),
        }
    }

    fn decode(input: &[u8]) -> Outcome {
        decode_chunked(input, &[])
    }

    fn assert_no_bare_cr_lf(out: &[u8]) {
        for (i, &b) in out.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i} in {out:?}"),
                b'\n' => assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i} in {out:?}"),
                _ => {}
            }
        }
    }

    /// (name, input, expected outcome). Shared by the table, prefix and
    /// chunk-split tests. Output stops right before the byte that reveals a
    /// violation: a stuffing dot settled before it (".x", ".\r") is still
    /// forwarded, which is harmless as the transaction is then aborted.
    fn cases() -> Vec<(&'static str, &'static [u8], Outcome)> {
        vec![
            ("empty input", b"", outcome(b"", 0, false, None, 0)),
            ("empty message", b".\r\n", outcome(b"", 3, true, None, 0)),
            (
                "one line",
                b"Hi\r\n.\r\n",
                outcome(b"Hi\r\n", 7, true, None, 4),
            ),
            (
                "two lines",
                b"Subject: x\r\n\r\nbody\r\n.\r\n",
                outcome(b"Subject: x\r\n\r\nbody\r\n", 23, true, None, 20),
            ),
            (
                "empty line",
                b"\r\n.\r\n",
                outcome(b"\r\n", 5, true, None, 2),
            ),
            (
                "stuffed dots are forwarded stuffed, counted unstuffed",
                b"..\r\n..x\r\n.y\r\n.\r\n",
                outcome(b"..\r\n..x\r\n.y\r\n", 16, true, None, 3 + 4 + 3),
            ),
            (
                "dots inside a line are content",
                b"a.\r\na..b\r\n.\r\n",
                outcome(b"a.\r\na..b\r\n", 13, true, None, 4 + 6),
            ),
            (
                "bytes after the terminator are not consumed",
                b"a\r\n.\r\nQUIT\r\n",
                outcome(b"a\r\n", 6, true, None, 3),
            ),
            (
                "pipelined next message is not consumed",
                b".\r\n.\r\n",
                outcome(b"", 3, true, None, 0),
            ),
            (
                "no terminator yet",
                b"a\r\nb",
                outcome(b"a\r\nb", 4, false, None, 4),
            ),
            (
                "8-bit and NUL bytes are content",
                b"\x00\xff\xc3\xa9\r\n.\r\n",
                outcome(b"\x00\xff\xc3\xa9\r\n", 9, true, None, 6),
            ),
            // SMTP smuggling: every sequence a lax server might take for
            // the end of data. None of them is one for us, and each makes
            // the stream refused.
            (
                "smuggle \\n.\\r\\n",
                b"\n.\r\n",
                outcome(b"", 4, false, Some(BareLf), 4),
            ),
            (
                "smuggle \\r.\\r",
                b"\r.\r",
                outcome(b"", 3, false, Some(BareCr), 2),
            ),
            (
                "smuggle \\r\\n.\\n",
                b"\r\n.\n",
                outcome(b"\r\n.", 4, false, Some(BareLf), 3),
            ),
            (
                "smuggle \\n.\\n",
                b"\n.\n",
                outcome(b"", 3, false, Some(BareLf), 3),
            ),
            (
                "smuggle \\r\\n.\\r\\r\\n",
                b"\r\n.\r\r\n",
                outcome(b"\r\n.", 6, false, Some(BareCr), 5),
            ),
            (
                "smuggle \\r.\\r\\n",
                b"\r.\r\n",
                outcome(b"", 4, false, Some(BareCr), 4),
            ),
            (
                "smuggled message then real end",
                b"a\r\n\n.\r\nMAIL FROM:<x@y.example>\r\n\r\n.\r\n",
                outcome(b"a\r\n", 37, true, Some(BareLf), 34),
            ),
            (
                "after a bare CR the real end is still found",
                b"a\rb\r\n.\r\n",
                outcome(b"a", 8, true, Some(BareCr), 5),
            ),
            (
                "the first violation is the one kept",
                b"a\nb\rc\r\n.\r\n",
                outcome(b"a", 10, true, Some(BareLf), 7),
            ),
            (
                "bare CR before CRLF",
                b"a\r\r\n.\r\n",
                outcome(b"a", 7, true, Some(BareCr), 4),
            ),
            (
                "stuffing dot then bare LF",
                b"x\r\n.\n.\r\n",
                outcome(b"x\r\n.", 8, false, Some(BareLf), 7),
            ),
            (
                "dot CR then other byte",
                b".\rx\r\n.\r\n",
                outcome(b".", 8, true, Some(BareCr), 4),
            ),
            (
                "ends in the middle of the terminator: dot held",
                b"a\r\n.",
                outcome(b"a\r\n", 4, false, None, 3),
            ),
            (
                "ends in the middle of the terminator: dot CR held",
                b"a\r\n.\r",
                outcome(b"a\r\n", 5, false, None, 3),
            ),
            (
                "ends on CR: CR held",
                b"a\r",
                outcome(b"a", 2, false, None, 1),
            ),
        ]
    }

    /// The stuffed form with one leading dot taken off every line: what
    /// the unstuffing decoder must output (RFC 5321 §4.5.2).
    fn unstuffed(stuffed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut line_start = true;
        for (i, &b) in stuffed.iter().enumerate() {
            if !(line_start && b == b'.') {
                out.push(b);
            }
            line_start = b == b'\n' && i > 0 && stuffed[i - 1] == b'\r';
        }
        out
    }

    #[test]
    fn unstuffing_decoder_outputs_the_content_in_every_split() {
        for (name, input, want) in cases() {
            for split in 0..=input.len() {
                let got = decode_with(DataDecoder::unstuffing(), input, &[split]);
                assert_eq!(got.out, unstuffed(&want.out), "{name} split at {split}");
                assert_eq!(
                    (got.consumed, got.done, got.violation, got.content_len),
                    (want.consumed, want.done, want.violation, want.content_len),
                    "{name} split at {split}"
                );
                if want.violation.is_none() && want.done {
                    assert_eq!(got.out.len() as u64, got.content_len, "{name}");
                }
            }
        }
        let got = decode_with(DataDecoder::unstuffing(), b"..\r\n.a\r\n...\r\n.\r\n", &[]);
        assert_eq!(got.out, b".\r\na\r\n..\r\n");
    }

    #[test]
    fn table() {
        for (name, input, want) in cases() {
            let got = decode(input);
            assert_eq!(got, want, "{name}");
            assert_no_bare_cr_lf(&got.out);
        }
    }

    /// The named smuggling cases, spelled out one by one.
    #[test]
    fn smuggling() {
        // "\n.\r\n": a bare LF does not start a line, so ".\r\n" after it
        // is not the end.
        let o = decode(b"\n.\r\n");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice()),
            (false, Some(BareLf), &b""[..])
        );
        // "\r.\r": bare CRs end nothing.
        let o = decode(b"\r.\r");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice()),
            (false, Some(BareCr), &b""[..])
        );
        // "\r\n.\n": the dot line must end with CRLF.
        let o = decode(b"\r\n.\n");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice()),
            (false, Some(BareLf), &b"\r\n."[..])
        );
        // "\n.\n"
        let o = decode(b"\n.\n");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice()),
            (false, Some(BareLf), &b""[..])
        );
        // "\r\n.\r\r\n": the dot's CR is bare.
        let o = decode(b"\r\n.\r\r\n");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice()),
            (false, Some(BareCr), &b"\r\n."[..])
        );
        // ".\r\n" first: the decoder starts at a line start.
        let o = decode(b".\r\n");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice(), o.consumed),
            (true, None, &b""[..], 3)
        );
        // "\r\n..\r\n": a stuffed dot is content, not the end.
        let o = decode(b"\r\n..\r\n");
        assert_eq!(
            (o.done, o.violation, o.out.as_slice()),
            (false, None, &b"\r\n..\r\n"[..])
        );
        assert_eq!(o.content_len, 5);
        // Data ending in the middle of the terminator, then the rest.
        let mut dec = DataDecoder::new();
        let mut out = BytesMut::new();
        let p = dec.feed(b"hello\r\n.\r", &mut out);
        assert_eq!(
            (p.consumed, p.done, &out[..]),
            (9, false, &b"hello\r\n"[..])
        );
        let p = dec.feed(b"\nRSET\r\n", &mut out);
        assert_eq!((p.consumed, p.done, &out[..]), (1, true, &b"hello\r\n"[..]));
        // Bytes after the terminator are not consumed, and a done decoder
        // takes nothing more.
        let p = dec.feed(b"RSET\r\n", &mut out);
        assert_eq!((p.consumed, p.done), (0, true));
        assert_eq!(dec.violation(), None);
        assert_eq!(dec.content_len(), 7);
    }

    #[test]
    fn every_prefix_is_not_done() {
        for (name, input, whole) in cases() {
            let end = if whole.done {
                whole.consumed
            } else {
                input.len() + 1
            };
            for n in 0..input.len().min(end) {
                let got = decode(&input[..n]);
                assert!(!got.done, "{name}: prefix {n} done");
                assert_eq!(got.consumed, n, "{name}: prefix {n}");
                assert!(whole.out.starts_with(&got.out), "{name}: prefix {n} output");
                assert!(got.content_len <= whole.content_len, "{name}: prefix {n}");
            }
        }
    }

    #[test]
    fn chunk_split() {
        for (name, input, whole) in cases() {
            for split in 0..=input.len() {
                assert_eq!(
                    decode_chunked(input, &[split]),
                    whole,
                    "{name}: split at {split}"
                );
            }
            for split in 0..=input.len() {
                let two = [split, 1, 1];
                assert_eq!(decode_chunked(input, &two), whole, "{name}: split {two:?}");
            }
            let ones = vec![1; input.len()];
            assert_eq!(decode_chunked(input, &ones), whole, "{name}: 1-byte chunks");
        }
    }

    #[test]
    fn long_stream_in_tiny_chunks() {
        // Many short lines full of held-back candidates, fed 1 to 7 bytes
        // at a time: same result as whole, and nothing buffered between
        // calls beyond the state.
        let mut input = b"..a\r\n".repeat(20_000);
        input.extend_from_slice(b".\r\n");
        let whole = decode(&input);
        assert!(whole.done && whole.violation.is_none());
        assert_eq!(whole.out.len(), input.len() - 3);
        assert_eq!(whole.content_len, 20_000 * 4);
        let sizes: Vec<usize> = (0..input.len()).map(|i| 1 + i % 7).collect();
        assert_eq!(decode_chunked(&input, &sizes), whole);
    }

    fn stuff_chunked(input: &[u8], chunks: &[usize]) -> Vec<u8> {
        let mut s = DotStuffer::new();
        let mut out = BytesMut::new();
        let mut rest = input;
        for &n in chunks.iter().chain(std::iter::once(&usize::MAX)) {
            let n = n.min(rest.len());
            s.encode(&rest[..n], &mut out);
            rest = &rest[n..];
        }
        s.finish(&mut out);
        out.to_vec()
    }

    #[test]
    fn dot_stuffer_table() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("empty message", b"", b".\r\n"),
            ("one line with CRLF", b"a\r\n", b"a\r\n.\r\n"),
            ("one line without CRLF", b"a", b"a\r\n.\r\n"),
            ("leading dot", b".a\r\n", b"..a\r\n.\r\n"),
            ("dot only line", b".\r\n", b"..\r\n.\r\n"),
            ("dot only, no CRLF", b".", b"..\r\n.\r\n"),
            (
                "dots after the start",
                b"a.b\r\n..\r\n",
                b"a.b\r\n...\r\n.\r\n",
            ),
            (
                "dot on every line",
                b".\r\n.\r\n.",
                b"..\r\n..\r\n..\r\n.\r\n",
            ),
            ("bare LF", b"a\nb\n", b"a\r\nb\r\n.\r\n"),
            ("bare LF then dot", b"a\n.\n", b"a\r\n..\r\n.\r\n"),
            ("bare CR", b"a\rb", b"a\r\nb\r\n.\r\n"),
            ("bare CR then dot", b"a\r.\r", b"a\r\n..\r\n.\r\n"),
            ("CR CR LF", b"a\r\r\n", b"a\r\n\r\n.\r\n"),
            ("LF CR", b"a\n\rb", b"a\r\n\r\nb\r\n.\r\n"),
            ("empty lines", b"\r\n\n\r", b"\r\n\r\n\r\n.\r\n"),
            ("trailing CR", b"a\r", b"a\r\n.\r\n"),
            (
                "smuggling attempt is neutralised",
                b"a\n.\r\nMAIL FROM:<x@y.example>\r\n",
                b"a\r\n..\r\nMAIL FROM:<x@y.example>\r\n.\r\n",
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(stuff_chunked(input, &[]), *want, "{name}");
            for split in 0..=input.len() {
                assert_eq!(
                    stuff_chunked(input, &[split]),
                    *want,
                    "{name}: split at {split}"
                );
            }
            assert_eq!(
                stuff_chunked(input, &vec![1; input.len()]),
                *want,
                "{name}: 1-byte"
            );
            // An empty chunk, e.g. "BDAT 0", changes nothing.
            let with_empty = [input.len() / 2, 0, 1, 0];
            assert_eq!(
                stuff_chunked(input, &with_empty),
                *want,
                "{name}: empty chunks"
            );
        }
    }

    #[test]
    fn dot_stuffer_chunk_boundary_at_cr() {
        let mut s = DotStuffer::new();
        let mut out = BytesMut::new();
        s.encode(b"a\r", &mut out);
        assert_eq!(&out[..], b"a", "the CR waits for the next chunk");
        s.encode(b"\n.b\r", &mut out);
        assert_eq!(&out[..], b"a\r\n..b");
        s.encode(b".c", &mut out);
        assert_eq!(&out[..], b"a\r\n..b\r\n..c", "a bare CR ends the line");
        s.finish(&mut out);
        assert_eq!(&out[..], b"a\r\n..b\r\n..c\r\n.\r\n");
        // The stuffer is reset for the next message.
        let mut out = BytesMut::new();
        s.finish(&mut out);
        assert_eq!(&out[..], b".\r\n");
    }

    /// What the destination makes of a DATA stream: lines without the
    /// stuffing dot.
    fn unstuff(stream: &[u8]) -> Vec<u8> {
        let body = stream.strip_suffix(b".\r\n").expect("terminator");
        let mut out = Vec::new();
        for line in body.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    #[test]
    fn stuffer_output_decodes_cleanly() {
        let inputs: &[&[u8]] = &[
            b"",
            b".",
            b"\r\n.\r\n",
            b"a\n.\nb\r.\r",
            b"..\r\n...\r\r\n\n\n.",
            b"Subject: x\r\n\r\nbody\r\n",
        ];
        for input in inputs {
            let stream = stuff_chunked(input, &[]);
            let o = decode(&stream);
            assert_eq!(
                (o.done, o.violation, o.consumed),
                (true, None, stream.len()),
                "{input:?}"
            );
            assert_no_bare_cr_lf(&o.out);
            assert_eq!(o.content_len, unstuff(&stream).len() as u64, "{input:?}");
            // The decoder forwards exactly the stuffed body.
            assert_eq!(o.out, stream[..stream.len() - 3], "{input:?}");
        }
    }

    /// A second, independent reading of the DATA rules: look ahead over the
    /// whole input instead of keeping state. Used to check the streaming
    /// decoder on every short input over the bytes that matter.
    fn reference(input: &[u8]) -> Outcome {
        let mut o = outcome(b"", 0, false, None, 0);
        let emit = |o: &mut Outcome, bytes: &[u8]| {
            if o.violation.is_none() {
                o.out.extend_from_slice(bytes);
            }
        };
        let (mut i, mut line_start) = (0, true);
        while i < input.len() {
            let rest = &input[i..];
            if line_start && rest.starts_with(b".\r\n") {
                o.done = true;
                i += 3;
                break;
            }
            if rest.starts_with(b"\r\n") {
                emit(&mut o, b"\r\n");
                o.content_len += 2;
                (i, line_start) = (i + 2, true);
                continue;
            }
            // Bytes that cannot be settled without more input stay unread.
            if rest == b"\r" || (line_start && (rest == b"." || rest == b".\r")) {
                i = input.len();
                break;
            }
            if line_start && rest[0] == b'.' {
                emit(&mut o, b".");
                (i, line_start) = (i + 1, false);
                continue;
            }
            match rest[0] {
                b'\r' => {
                    o.violation.get_or_insert(BareCr);
                }
                b'\n' => {
                    o.violation.get_or_insert(BareLf);
                }
                b => emit(&mut o, &[b]),
            }
            o.content_len += 1;
            (i, line_start) = (i + 1, false);
        }
        o.consumed = i;
        o
    }

    #[test]
    fn agrees_with_reference_on_all_short_inputs() {
        let alphabet = [b'.', b'\r', b'\n', b'a'];
        let mut input = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                input.clear();
                for _ in 0..len {
                    input.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let want = reference(&input);
                let whole = decode(&input);
                assert_eq!(whole, want, "{input:?}");
                assert_no_bare_cr_lf(&whole.out);
                let ones = vec![1; input.len()];
                assert_eq!(
                    decode_chunked(&input, &ones),
                    want,
                    "{input:?} in 1-byte chunks"
                );
                // Stuffing anything gives a stream that ends cleanly.
                let stream = stuff_chunked(&input, &[]);
                let o = decode(&stream);
                assert_eq!(
                    (o.done, o.violation, o.consumed),
                    (true, None, stream.len())
                );
                assert_eq!(stuff_chunked(&input, &ones), stream, "{input:?}");
            }
        }
    }
}
