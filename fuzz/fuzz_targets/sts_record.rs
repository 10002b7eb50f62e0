//! The `_mta-sts` TXT record parser on arbitrary bytes: it must never
//! panic, and an accepted record's id is 1 to 32 letters and digits.
#![no_main]

use danegate::sts::record::{parse, select};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    if let Ok(r) = parse(buf) {
        assert!(!r.id.is_empty() && r.id.len() <= 32);
        assert!(r.id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    let halves = buf.split_at(buf.len() / 2);
    let _ = select(&[halves.0.to_vec(), halves.1.to_vec()]);
});
