//! The MTA-STS policy parser on arbitrary bytes: it must never panic; a
//! policy it accepts has a mode, at most a year of max_age, and mx
//! patterns unless its mode is none, and the same text with CRLF line
//! ends parses to the same policy.
#![no_main]

use danegate::sts::policy::{parse, Mode, MAX_AGE_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let Ok(policy) = parse(buf) else {
        return;
    };
    assert!(policy.max_age <= MAX_AGE_LIMIT);
    assert!(policy.mode == Mode::None || !policy.mx.is_empty());
    if !buf.contains(&b'\r') {
        let mut crlf = Vec::with_capacity(buf.len() * 2);
        for &b in buf {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        if crlf.len() <= danegate::sts::policy::MAX_BODY {
            assert_eq!(parse(&crlf).ok(), Some(policy));
        }
    }
});
