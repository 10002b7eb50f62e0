//! `parse_reply` on arbitrary bytes, and the round trip: a reply we parsed,
//! written back with `write_to`, parses to the same reply.
#![no_main]

use danegate::smtp::reply::{parse_reply, ReplyError, MAX_REPLY_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let Ok((reply, consumed)) = parse_reply(buf) else {
        return;
    };
    assert!(consumed > 0 && consumed <= buf.len());
    // Incremental: the bytes consumed alone hold the whole reply, and any
    // strict prefix of them is incomplete or already an error.
    assert_eq!(parse_reply(&buf[..consumed]), Ok((reply.clone(), consumed)));
    if consumed > 1 {
        assert!(parse_reply(&buf[..consumed - 1]).is_err());
    }

    let wire = reply.to_wire();
    // The enhanced code is written on every line, so a line that did not
    // carry it grows by up to 12 octets ("5.123.456 " and the separator)
    // and may then pass the line limit: the one case where a reply we
    // accepted cannot come back.
    let too_long = wire
        .split_inclusive(|&b| b == b'\n')
        .any(|line| line.len() > MAX_REPLY_LINE);
    match parse_reply(&wire) {
        Ok((again, n)) => {
            assert_eq!(again, reply);
            assert_eq!(n, wire.len());
        }
        Err(ReplyError::LineTooLong { .. }) if too_long => {}
        Err(e) => panic!("{reply:?} written as {wire:?} does not parse back: {e}"),
    }
});
