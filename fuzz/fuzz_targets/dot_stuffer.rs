//! `DotStuffer` on arbitrary bytes, split at a point the fuzzer picks: the
//! stream it makes must be decoded by `DataDecoder` to the end, with no
//! violation, no byte left over and the stuffed body passed through.
#![no_main]

use bytes::BytesMut;
use danegate::smtp::data::{DataDecoder, DotStuffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (split, input) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let (head, tail) = input.split_at(split % (input.len() + 1));
    let mut stuffer = DotStuffer::new();
    let mut stream = BytesMut::new();
    stuffer.encode(head, &mut stream);
    stuffer.encode(tail, &mut stream);
    stuffer.finish(&mut stream);

    // Splitting the input does not change the stream.
    let mut whole = BytesMut::new();
    let mut stuffer = DotStuffer::new();
    stuffer.encode(input, &mut whole);
    stuffer.finish(&mut whole);
    assert_eq!(stream, whole);

    let mut dec = DataDecoder::new();
    let mut out = BytesMut::new();
    let p = dec.feed(&stream, &mut out);
    assert!(p.done, "stuffed stream does not end");
    assert_eq!(dec.violation(), None);
    assert_eq!(p.consumed, stream.len(), "stuffed stream ends early");
    assert_eq!(&out[..], &stream[..stream.len() - 3]);
    // Stuffing only adds: every input octet is content (bare CR or LF
    // become CRLF, so the count can only grow).
    assert!(dec.content_len() >= input.len() as u64);
});
