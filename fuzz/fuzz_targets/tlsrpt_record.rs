//! The `_smtp._tls` TXT record parser (TLS reporting) on arbitrary bytes:
//! it must never panic, and an accepted record has at least one
//! destination, each `mailto:` with an address or `https:` with a host.
#![no_main]

use danegate::tlsrpt::txt::{select, Rua};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let halves = buf.split_at(buf.len() / 2);
    for records in [vec![buf.to_vec()], vec![halves.0.to_vec(), halves.1.to_vec()]] {
        if let Ok(r) = select(&records) {
            assert!(!r.rua.is_empty());
            for rua in &r.rua {
                match rua {
                    Rua::Mailto(a) => assert!(a.contains('@')),
                    Rua::Https(u) => assert!(u.starts_with("https://")),
                }
            }
        }
    }
});
