//! TLSA records and certificate chains from arbitrary bytes: judging a
//! record's usability and matching it against a chain must never panic,
//! and an unusable record never matches.
#![no_main]

use danegate::tls::tlsa::usability;
use danegate::dns::Tlsa;
use danegate::tls::dane::{verify_chain, ReferenceIds};
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::{CertificateDer, UnixTime};

fuzz_target!(|buf: &[u8]| {
    // Layout: usage, selector, mtype, data length, data, then the chain as
    // length-prefixed certificates.
    let [usage, selector, mtype, len, rest @ ..] = buf else {
        return;
    };
    let (data, mut rest) = rest.split_at((*len as usize).min(rest.len()));
    let record = Tlsa {
        usage: *usage,
        selector: *selector,
        mtype: *mtype,
        data: data.to_vec(),
    };
    let usable = usability(&record).is_ok();
    let mut chain = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let n = (u16::from_be_bytes([*hi, *lo]) as usize).min(tail.len());
        chain.push(CertificateDer::from(tail[..n].to_vec()));
        rest = &tail[n..];
    }
    let Some((leaf, intermediates)) = chain.split_first() else {
        return;
    };
    let names = ReferenceIds {
        tlsa_base: "mx.example.net".into(),
        mx_host: "mx.example.net".into(),
        nexthop: "example.net".into(),
    };
    let result = verify_chain(
        std::slice::from_ref(&record),
        25,
        &names,
        leaf,
        intermediates,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
    );
    if !usable {
        assert!(result.is_err(), "an unusable record matched: {record}");
    }
});
