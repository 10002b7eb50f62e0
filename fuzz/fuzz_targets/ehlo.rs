//! `parse_ehlo` on whatever `parse_reply` makes of arbitrary bytes: it
//! must never panic, and only a positive reply announces anything.
#![no_main]

use danegate::smtp::ehlo::{parse_ehlo, Capabilities};
use danegate::smtp::reply::parse_reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let Ok((reply, _)) = parse_reply(buf) else {
        return;
    };
    let caps = parse_ehlo(&reply);
    if !reply.is_positive() || reply.lines.len() < 2 {
        assert_eq!(caps, Capabilities::default());
    }
});
