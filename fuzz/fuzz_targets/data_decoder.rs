//! `DataDecoder` on arbitrary bytes: fed whole or split at a point the
//! fuzzer picks, it must give the same output, consumption, verdict and
//! size, and its output must never hold a bare CR or a bare LF.
#![no_main]

use bytes::BytesMut;
use danegate::smtp::data::{DataDecoder, DataViolation};
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<u8>, usize, bool, Option<DataViolation>, u64);

fn run(chunks: &[&[u8]]) -> Outcome {
    let mut dec = DataDecoder::new();
    let mut out = BytesMut::new();
    let mut consumed = 0;
    let mut done = false;
    for chunk in chunks {
        let p = dec.feed(chunk, &mut out);
        assert!(p.consumed <= chunk.len());
        assert!(p.consumed == chunk.len() || p.done);
        consumed += p.consumed;
        done = p.done;
        if done {
            break;
        }
    }
    (
        out.to_vec(),
        consumed,
        done,
        dec.violation(),
        dec.content_len(),
    )
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split point; the rest is the stream.
    let (split, input) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let split = split % (input.len() + 1);
    let whole = run(&[input]);
    let (head, tail) = input.split_at(split);
    assert_eq!(run(&[head, tail]), whole, "split at {split}");

    let (out, consumed, done, violation, _) = &whole;
    for (i, &b) in out.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in output"),
            b'\n' => assert!(i > 0 && out[i - 1] == b'\r', "bare LF in output"),
            _ => {}
        }
    }
    // Output is never more than what came in, and a clean stream passes
    // through byte for byte (less the final ".\r\n").
    assert!(out.len() <= *consumed);
    if *done && violation.is_none() {
        assert_eq!(out.as_slice(), &input[..consumed - 3]);
    }
});
