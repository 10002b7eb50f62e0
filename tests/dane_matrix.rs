//! The DANE verifier's decision (`verify_chain`) over a generated matrix
//! — usage {2,3} × selector {0,1} × matching type {0,1,2} × chain shape ×
//! which certificate the record designates — and the named cases of
//! dane-rules §3: wrong digest, names under DANE-TA, wildcards, CN-only,
//! expiry, non-CA issuers, digest agility, unusable records.
//!
//! Every case asserts the exact outcome: the whole `DaneMatch` (record and
//! depth) or the exact `DaneFailure`.

mod dane_support;

use dane_support::{corrupt, names, Pki, Shape, Spec, Which, TLSA_NAME};
use danegate::dns::Tlsa;
use danegate::tls::dane::{
    select_records, verify_chain, DaneFailure, DaneMatch, PathProblem, ReferenceIds,
};
use rustls::pki_types::UnixTime;

/// The expected outcome of one matrix cell.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Matched the designated certificate at this depth.
    Match {
        depth: usize,
        from_dns: bool,
    },
    NoMatch,
    /// A DANE-TA anchor was designated but the path to it is incomplete.
    NoPath,
}

use Expect::{Match, NoMatch, NoPath};

const fn m(depth: usize) -> Expect {
    Match {
        depth,
        from_dns: false,
    }
}

/// Anchor absent from the chain, taken from the record's full data.
const fn dns(depth: usize) -> Expect {
    Match {
        depth,
        from_dns: true,
    }
}

/// (shape, designated certificate) → expected outcome for a DANE-EE
/// record, a DANE-TA digest record (matching 1/2), a DANE-TA full-data
/// record (matching 0: `2 0 0` / `2 1 0`). Each row holds for both
/// selectors. A DANE-TA record of the leaf designates no anchor; a
/// DANE-EE record of a CA certificate never matches.
const TABLE: &[(Shape, Which, Expect, Expect, Expect)] = {
    use dane_support::Shape::*;
    use dane_support::Which::*;
    &[
        // shape                 record of      EE     TA digest  TA full
        (LeafOnly, Leaf, m(0), NoMatch, NoMatch),
        // Anchor absent from the chain: only full data from DNS anchors it.
        (LeafOnly, Intermediate, NoMatch, NoMatch, dns(1)),
        // Root from DNS, but the intermediate is missing: no path.
        (LeafOnly, Root, NoMatch, NoMatch, NoPath),
        (LeafIntermediate, Leaf, m(0), NoMatch, NoMatch),
        (LeafIntermediate, Intermediate, NoMatch, m(1), m(1)),
        // Anchor absent from the chain.
        (LeafIntermediate, Root, NoMatch, NoMatch, dns(2)),
        (LeafIntermediateRoot, Leaf, m(0), NoMatch, NoMatch),
        (LeafIntermediateRoot, Intermediate, NoMatch, m(1), m(1)),
        (LeafIntermediateRoot, Root, NoMatch, m(2), m(2)),
        // Depth is the position in the verified path, not in the message.
        (Unordered, Leaf, m(0), NoMatch, NoMatch),
        (Unordered, Intermediate, NoMatch, m(1), m(1)),
        (Unordered, Root, NoMatch, m(2), m(2)),
    ]
};

fn check(
    pki: &Pki,
    records: &[Tlsa],
    shape: Shape,
    names: &ReferenceIds,
) -> Result<DaneMatch, DaneFailure> {
    let (leaf, rest) = pki.chain(shape);
    verify_chain(records, 25, names, &leaf, &rest, UnixTime::now())
}

fn matched(record: &Tlsa, depth: usize, from_dns: bool) -> Result<DaneMatch, DaneFailure> {
    Ok(DaneMatch {
        usage: record.usage,
        selector: record.selector,
        mtype: record.mtype,
        data: record.data.clone(),
        depth,
        from_dns,
    })
}

fn no_match() -> Result<DaneMatch, DaneFailure> {
    Err(DaneFailure::NoMatch {
        tlsa_name: TLSA_NAME.into(),
    })
}

fn ta_path(problem: PathProblem) -> Result<DaneMatch, DaneFailure> {
    Err(DaneFailure::TaPath(problem))
}

#[test]
fn matrix() {
    let pki = Pki::new();
    let mut cases = 0;
    for &(shape, which, ee, ta_digest, ta_full) in TABLE {
        for usage in [2u8, 3] {
            for selector in [0u8, 1] {
                for mtype in [0u8, 1, 2] {
                    let expect = match (usage, mtype) {
                        (3, _) => ee,
                        (_, 0) => ta_full,
                        _ => ta_digest,
                    };
                    let record = pki.tlsa(which, usage, selector, mtype);
                    let want = match expect {
                        Match { depth, from_dns } => matched(&record, depth, from_dns),
                        NoMatch => no_match(),
                        NoPath => ta_path(PathProblem::NoPathToAnchor),
                    };
                    let got = check(&pki, &[record], shape, &names());
                    assert_eq!(
                        got, want,
                        "{usage} {selector} {mtype} of {which:?}, chain {shape:?}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 144);
}

#[test]
fn anchor_absent_from_chain_only_full_data() {
    let pki = Pki::new();
    for selector in [0, 1] {
        let full = pki.tlsa(Which::Root, 2, selector, 0);
        let got = check(
            &pki,
            std::slice::from_ref(&full),
            Shape::LeafIntermediate,
            &names(),
        );
        assert_eq!(got, matched(&full, 2, true));
        assert_eq!(
            got.unwrap().to_string(),
            format!(
                "DANE-TA 2 {selector} 0 {}… at depth 2 (from DNS)",
                hex(&full.data[..4])
            )
        );
        for mtype in [1, 2] {
            let digest = pki.tlsa(Which::Root, 2, selector, mtype);
            assert_eq!(
                check(&pki, &[digest], Shape::LeafIntermediate, &names()),
                no_match()
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn display_of_an_ee_match() {
    let pki = Pki::new();
    let record = pki.tlsa(Which::Leaf, 3, 1, 1);
    let got = check(
        &pki,
        std::slice::from_ref(&record),
        Shape::LeafOnly,
        &names(),
    )
    .unwrap();
    assert_eq!(
        got.to_string(),
        format!("DANE-EE 3 1 1 {}… at depth 0", hex(&record.data[..4]))
    );
}

#[test]
fn wrong_digest() {
    let pki = Pki::new();
    for (which, usage, selector, mtype) in [
        (Which::Leaf, 3, 1, 1),
        (Which::Leaf, 3, 0, 2),
        (Which::Root, 2, 0, 1),
        (Which::Intermediate, 2, 1, 2),
    ] {
        let record = corrupt(pki.tlsa(which, usage, selector, mtype));
        let got = check(&pki, &[record], Shape::LeafIntermediateRoot, &names());
        assert_eq!(got, no_match(), "{usage} {selector} {mtype}");
    }
}

#[test]
fn wrong_name_under_ta_fails_and_under_ee_passes() {
    let pki = Pki::with(Spec {
        leaf_sans: vec!["mx1.example.org".into()],
        ..Spec::default()
    });
    let ta = pki.tlsa(Which::Root, 2, 0, 1);
    assert_eq!(
        check(&pki, &[ta], Shape::LeafIntermediateRoot, &names()),
        Err(DaneFailure::NameMismatch {
            names: vec!["mx1.example.net".into(), "example.net".into()]
        })
    );
    assert_eq!(
        DaneFailure::NameMismatch {
            names: vec!["mx1.example.net".into(), "example.net".into()]
        }
        .to_string(),
        "certificate name does not match any of mx1.example.net, example.net (DANE-TA)"
    );
    let ee = pki.tlsa(Which::Leaf, 3, 1, 1);
    assert_eq!(
        check(&pki, std::slice::from_ref(&ee), Shape::LeafOnly, &names()),
        matched(&ee, 0, false)
    );
}

#[test]
fn each_reference_identifier_is_accepted() {
    // The leaf names only the next-hop domain: accepted (dane-rules §3.5).
    let pki = Pki::with(Spec {
        leaf_sans: vec!["example.net".into()],
        ..Spec::default()
    });
    let ta = pki.tlsa(Which::Intermediate, 2, 1, 1);
    assert_eq!(
        check(
            &pki,
            std::slice::from_ref(&ta),
            Shape::LeafIntermediate,
            &names()
        ),
        matched(&ta, 1, false)
    );
    // A different TLSA base (CNAME-expanded) and MX host name.
    let pki = Pki::with(Spec {
        leaf_sans: vec!["mail.provider.example".into()],
        ..Spec::default()
    });
    let ta = pki.tlsa(Which::Intermediate, 2, 1, 1);
    let ids = ReferenceIds {
        tlsa_base: "mail.provider.example".into(),
        mx_host: "mx1.example.net".into(),
        nexthop: "example.net".into(),
    };
    assert_eq!(
        check(
            &pki,
            std::slice::from_ref(&ta),
            Shape::LeafIntermediate,
            &ids
        ),
        matched(&ta, 1, false)
    );
}

#[test]
fn wildcard_matches_one_left_most_label() {
    let pki = Pki::with(Spec {
        leaf_sans: vec!["*.example.net".into()],
        ..Spec::default()
    });
    let ta = pki.tlsa(Which::Root, 2, 1, 2);
    assert_eq!(
        check(
            &pki,
            std::slice::from_ref(&ta),
            Shape::LeafIntermediateRoot,
            &names()
        ),
        matched(&ta, 2, false)
    );
    // Not two labels (a.b.example.net), not zero (example.net).
    let deep = ReferenceIds {
        tlsa_base: "a.b.example.net".into(),
        mx_host: "a.b.example.net".into(),
        nexthop: "example.net".into(),
    };
    assert_eq!(
        check(&pki, &[ta], Shape::LeafIntermediateRoot, &deep),
        Err(DaneFailure::NameMismatch {
            names: vec!["a.b.example.net".into(), "example.net".into()]
        })
    );
}

#[test]
fn cn_only_certificate_fails_under_ta() {
    let pki = Pki::with(Spec {
        leaf_sans: vec![],
        leaf_cn: Some("mx1.example.net".into()),
        ..Spec::default()
    });
    let ta = pki.tlsa(Which::Intermediate, 2, 0, 1);
    assert_eq!(
        check(&pki, &[ta], Shape::LeafIntermediateRoot, &names()),
        Err(DaneFailure::NameMismatch {
            names: vec!["mx1.example.net".into(), "example.net".into()]
        })
    );
    // DANE-EE never looks at names.
    let ee = pki.tlsa(Which::Leaf, 3, 0, 1);
    assert_eq!(
        check(&pki, std::slice::from_ref(&ee), Shape::LeafOnly, &names()),
        matched(&ee, 0, false)
    );
}

#[test]
fn expired_leaf_passes_under_ee_and_fails_under_ta() {
    let pki = Pki::with(Spec {
        leaf_expired: true,
        ..Spec::default()
    });
    let ee = pki.tlsa(Which::Leaf, 3, 1, 1);
    assert_eq!(
        check(
            &pki,
            std::slice::from_ref(&ee),
            Shape::LeafIntermediateRoot,
            &names()
        ),
        matched(&ee, 0, false)
    );
    for which in [Which::Intermediate, Which::Root] {
        let ta = pki.tlsa(which, 2, 1, 1);
        assert_eq!(
            check(&pki, &[ta], Shape::LeafIntermediateRoot, &names()),
            ta_path(PathProblem::Expired),
            "{which:?}"
        );
    }
    assert_eq!(
        DaneFailure::TaPath(PathProblem::Expired).to_string(),
        "DANE-TA path to the matched trust anchor does not verify: a certificate has expired"
    );
}

#[test]
fn non_ca_issuer_fails_under_ta() {
    let pki = Pki::with(Spec {
        intermediate_is_ca: false,
        ..Spec::default()
    });
    for (shape, record) in [
        (Shape::LeafIntermediateRoot, pki.tlsa(Which::Root, 2, 0, 1)),
        (Shape::Unordered, pki.tlsa(Which::Root, 2, 1, 2)),
        // The root from DNS, the non-CA intermediate presented.
        (Shape::LeafIntermediate, pki.tlsa(Which::Root, 2, 1, 0)),
    ] {
        assert_eq!(
            check(&pki, &[record], shape, &names()),
            ta_path(PathProblem::IssuerNotCa)
        );
    }
    // DANE-EE does not care about the issuer.
    let ee = pki.tlsa(Which::Leaf, 3, 1, 1);
    assert_eq!(
        check(
            &pki,
            std::slice::from_ref(&ee),
            Shape::LeafIntermediateRoot,
            &names()
        ),
        matched(&ee, 0, false)
    );
}

#[test]
fn digest_agility() {
    let pki = Pki::new();
    for (usage, which, depth) in [(3, Which::Leaf, 0), (2, Which::Root, 2)] {
        let sha256 = pki.tlsa(which, usage, 1, 1);
        let sha512 = pki.tlsa(which, usage, 1, 2);
        // A right SHA-256 next to a wrong SHA-512 of the same usage and
        // selector is not used.
        let records = [sha256.clone(), corrupt(sha512.clone())];
        assert_eq!(
            check(&pki, &records, Shape::LeafIntermediateRoot, &names()),
            no_match(),
            "usage {usage}"
        );
        assert_eq!(select_records(&records), vec![corrupt(sha512.clone())]);
        // A right SHA-512 next to a wrong SHA-256 matches.
        let records = [corrupt(sha256.clone()), sha512.clone()];
        assert_eq!(
            check(&pki, &records, Shape::LeafIntermediateRoot, &names()),
            matched(&sha512, depth, false),
            "usage {usage}"
        );
        // Agility is per usage and selector: a SHA-512 record of the other
        // selector leaves this SHA-256 record in use.
        let other_selector = corrupt(pki.tlsa(which, usage, 0, 2));
        let records = [other_selector, sha256.clone()];
        assert_eq!(
            check(&pki, &records, Shape::LeafIntermediateRoot, &names()),
            matched(&sha256, depth, false),
            "usage {usage}"
        );
    }
}

#[test]
fn unusable_records_never_match() {
    let pki = Pki::new();
    // PKIX-EE and PKIX-TA records that would match.
    let pkix_ee = pki.tlsa(Which::Leaf, 1, 1, 1);
    let pkix_ta = pki.tlsa(Which::Root, 0, 0, 1);
    assert_eq!(
        check(
            &pki,
            &[pkix_ee.clone(), pkix_ta.clone()],
            Shape::LeafIntermediateRoot,
            &names()
        ),
        Err(DaneFailure::NoUsableRecords {
            tlsa_name: TLSA_NAME.into()
        })
    );
    // Next to a usable record that does not match.
    let wrong_ee = corrupt(pki.tlsa(Which::Leaf, 3, 1, 1));
    assert_eq!(
        check(
            &pki,
            &[pkix_ee, pkix_ta, wrong_ee],
            Shape::LeafIntermediateRoot,
            &names()
        ),
        no_match()
    );
    // A truncated digest (wrong length) of the right data.
    let mut short = pki.tlsa(Which::Leaf, 3, 1, 2);
    short.data.truncate(32);
    assert_eq!(
        check(&pki, &[short], Shape::LeafOnly, &names()),
        Err(DaneFailure::NoUsableRecords {
            tlsa_name: TLSA_NAME.into()
        })
    );
}

#[test]
fn ee_is_preferred_then_any_ta_record() {
    let pki = Pki::new();
    let ee = pki.tlsa(Which::Leaf, 3, 1, 1);
    let ta_root = pki.tlsa(Which::Root, 2, 0, 1);
    let ta_int = pki.tlsa(Which::Intermediate, 2, 0, 2);
    let records = [ta_root.clone(), ee.clone()];
    assert_eq!(
        check(&pki, &records, Shape::LeafIntermediateRoot, &names()),
        matched(&ee, 0, false)
    );
    // A wrong EE record does not stop a right TA record.
    let records = [corrupt(ee), ta_root.clone()];
    assert_eq!(
        check(&pki, &records, Shape::LeafIntermediateRoot, &names()),
        matched(&ta_root, 2, false)
    );
    // Two TA records: the first presented certificate that verifies wins.
    let records = [ta_root, ta_int.clone()];
    assert_eq!(
        check(&pki, &records, Shape::LeafIntermediateRoot, &names()),
        matched(&ta_int, 1, false)
    );
}

#[test]
fn ta_record_of_the_leaf_is_no_anchor() {
    let pki = Pki::new();
    for (selector, mtype) in [(0, 0), (1, 0), (0, 1), (1, 2)] {
        let record = pki.tlsa(Which::Leaf, 2, selector, mtype);
        assert_eq!(
            check(&pki, &[record], Shape::LeafIntermediateRoot, &names()),
            no_match(),
            "2 {selector} {mtype}"
        );
    }
}

#[test]
fn tlsa_owner_name_has_the_port() {
    let pki = Pki::new();
    let (leaf, rest) = pki.chain(Shape::LeafOnly);
    let record = corrupt(pki.tlsa(Which::Leaf, 3, 1, 1));
    assert_eq!(
        verify_chain(&[record], 587, &names(), &leaf, &rest, UnixTime::now())
            .unwrap_err()
            .to_string(),
        "no TLSA record of _587._tcp.mx1.example.net matches the certificate chain"
    );
}
