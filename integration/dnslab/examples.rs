//! Prints `danegate resolve` for a few lab domains and `danegate doctor`,
//! for the README's examples (`cargo test --test dnslab -- --ignored
//! --nocapture print_resolve_examples`). Asserts only that each ran.

use crate::gate::{self, Anchor, Dns};
use crate::lab::*;

#[test]
#[ignore = "needs the integration lab: run integration/test-all"]
fn print_resolve_examples() {
    let lab = DnsLab::shared();
    let dns = Dns::Validate {
        via: VALIDATING,
        anchor: Anchor::Dnskey,
    };
    let config = gate::write_config(
        &lab,
        "examples",
        &gate::config(&lab, gate::NOT_LISTENING, dns, "enforce", ""),
    );
    for domain in [
        "secure.test",
        "cname.test",
        "shop.dname.test",
        "mixed.test",
        "bücher.test",
        "insecure-addr.test",
        "unusable.test",
        "bogus.test",
        "expired.test",
        "corrupt-tlsa.test",
        "nullmx.test",
    ] {
        let got = gate::resolve(&config, domain, &[]);
        assert!(got.status.is_some(), "{domain}: {}", got.log);
        println!(
            "$ danegate resolve {domain}\n{}",
            got.json.as_str().unwrap_or_default()
        );
    }
    let got = gate::doctor(&config, &[]);
    assert!(got.status.is_some(), "doctor: {}", got.log);
    println!(
        "$ danegate doctor\n{}",
        got.json.as_str().unwrap_or_default()
    );
}
