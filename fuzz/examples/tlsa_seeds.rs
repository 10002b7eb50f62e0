//! Writes the seed corpus of the `tlsa` fuzz target (fuzz/seeds/tlsa/):
//! real certificate chains with TLSA records that match them, so that the
//! fuzzer starts from inputs that reach the DANE-EE digest matching, the
//! DANE-TA path building, the name checks and the date checks, rather than
//! from chains that do not parse.
//!
//! Run from fuzz/ on stable: `cargo run --example tlsa_seeds` (or pass the
//! output directory). Every file in the directory is replaced.
//!
//! Each seed is in the target's input layout (usage, selector, matching
//! type, data length, data, then each certificate as a 2-byte big-endian
//! length and its DER) and is decoded here the way the target decodes it,
//! then judged once with `verify_chain` under the target's reference names
//! and time; the generator fails unless every seed gives the outcome it was
//! made for.
//!
//! The output is byte-for-byte reproducible: the keys are fixed (Ed25519
//! keys from constant seeds; the RSA and ECDSA leaf keys are public keys
//! only, made once with openssl), every certificate is signed with Ed25519,
//! whose signatures are deterministic, and serials and dates are fixed.
//! These are test keys, not secrets.

use std::path::PathBuf;

use danegate::dns::Tlsa;
use danegate::tls::dane::{verify_chain, DaneFailure, PathProblem, ReferenceIds};
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyIdMethod, KeyPair, NameConstraints,
    PublicKeyData, SerialNumber, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256, Sha512};

/// The fuzz target's reference identifiers, port and time (2027-01-15).
const MX: &str = "mx.example.net";
const NEXTHOP: &str = "example.net";
const PORT: u16 = 25;
const NOW: u64 = 1_800_000_000;

/// An RSA-2048 SubjectPublicKeyInfo (`openssl pkey -pubout`); the key in
/// rcgen's terms (an RSAPublicKey) starts at byte 24.
const RSA_SPKI: &str = "30820122300d06092a864886f70d01010105000382010f003082010a0282010100a41e0cbe8b8f3cfc34b7e3de4750f1\
ecfc550ab6ee0bcb78a02e3dd28de0aa2727ca49bdd90b1b7c65f952d5816593d86bab7bdb3aa947f591003ef463f11b\
77fb4f565b34089df75098317a2b33ee168d4be4d8e7964b274cbd87dac747ec40b18f9556dc77f03130cc616bf25df0\
1d58783e722afae6e72cce3c4343f2fcb89076f61bc5e350abb441e5a8ead095fe78d096715456b08e55672732ab7295\
6d282c7a6002d999122eca966ea1c5c7d73c9b9823eb533d375bc1847bb8a5c129f3965cf17dfb2fa16caddbb54d45d0\
3e22af0fbde328512d0968d9dccded540b194d0277acf7a8c6aaee6c2553ba882a5b1d5b35c8e03bc8288f8163ff1d40\
9d0203010001";
/// A P-256 SubjectPublicKeyInfo; the point starts at byte 26.
const EC_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004a6c14a1d3647b7fa00de2cfaff8e0110b08af70519\
074708571f8baac7f3aeda3f985dbeb2555fcd7afd51bdec9baa0bb673272ae4e72812d51658a0b6b2e55b";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A subject key: an Ed25519 key pair, or a bare public key.
enum Key {
    Pair(Box<KeyPair>),
    Public {
        spki: Vec<u8>,
        raw_at: usize,
        alg: &'static SignatureAlgorithm,
    },
}

impl Key {
    /// An Ed25519 key from the constant seed `[byte; 32]` (PKCS#8 v1).
    fn ed25519(byte: u8) -> Key {
        let mut pkcs8 = hex("302e020100300506032b657004220420");
        pkcs8.extend([byte; 32]);
        Key::Pair(Box::new(
            KeyPair::try_from(pkcs8.as_slice()).expect("Ed25519 key"),
        ))
    }

    fn rsa() -> Key {
        Key::Public {
            spki: hex(RSA_SPKI),
            raw_at: 24,
            alg: &PKCS_RSA_SHA256,
        }
    }

    fn ecdsa() -> Key {
        Key::Public {
            spki: hex(EC_SPKI),
            raw_at: 26,
            alg: &PKCS_ECDSA_P256_SHA256,
        }
    }

    fn pair(&self) -> &KeyPair {
        match self {
            Key::Pair(k) => k,
            Key::Public { .. } => panic!("a public key cannot sign"),
        }
    }

    /// The SubjectPublicKeyInfo, from rcgen's or openssl's encoding (not
    /// from the certificate, and not with the verifier's code).
    fn spki(&self) -> Vec<u8> {
        match self {
            Key::Pair(k) => k.public_key_der(),
            Key::Public { spki, .. } => spki.clone(),
        }
    }
}

impl PublicKeyData for Key {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Key::Pair(k) => k.der_bytes(),
            Key::Public { spki, raw_at, .. } => &spki[*raw_at..],
        }
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        match self {
            Key::Pair(k) => PublicKeyData::algorithm(&**k),
            Key::Public { alg, .. } => alg,
        }
    }
}

/// Certificate parameters: a CN (if any), SAN dNSNames, a one-byte serial,
/// valid 2025-01-01 to 2030-01-01, no extensions beyond what is asked.
fn params(cn: Option<&str>, sans: &[&str], serial: u8) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).expect("params");
    p.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    p.serial_number = Some(SerialNumber::from(vec![serial]));
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2030, 1, 1);
    // A one-byte key identifier keeps the CA certificates small (the root
    // must fit in a TLSA record's 255 bytes for `2 0 0`).
    p.key_identifier_method = KeyIdMethod::PreSpecified(vec![serial]);
    p
}

fn ca(p: CertificateParams) -> CertificateParams {
    let mut p = p;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

/// A certificate with its key.
struct Issued {
    cert: Certificate,
    key: Key,
}

impl Issued {
    fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    fn spki(&self) -> Vec<u8> {
        self.key.spki()
    }
}

fn self_signed(p: CertificateParams, key: Key) -> Issued {
    let cert = p.self_signed(key.pair()).expect("self-signed");
    Issued { cert, key }
}

fn issue(p: CertificateParams, key: Key, by: &Issued) -> Issued {
    let cert = p.signed_by(&key, &by.cert, by.key.pair()).expect("issued");
    // The certificate carries exactly the key the records are made from.
    let spki = key.spki();
    assert!(
        cert.der().windows(spki.len()).any(|w| w == spki.as_slice()),
        "certificate does not carry its SPKI"
    );
    Issued { cert, key }
}

/// A TLSA record for a certificate: its usage, selector and matching type,
/// and the data they make of the certificate.
fn tlsa(usage: u8, selector: u8, mtype: u8, cert: &Issued) -> Tlsa {
    let selected = match selector {
        0 => cert.der(),
        1 => cert.spki(),
        _ => unreachable!(),
    };
    let data = match mtype {
        0 => selected,
        1 => Sha256::digest(&selected).to_vec(),
        2 => Sha512::digest(&selected).to_vec(),
        _ => unreachable!(),
    };
    Tlsa {
        usage,
        selector,
        mtype,
        data,
    }
}

/// A seed in the target's layout.
fn encode(record: &Tlsa, chain: &[&[u8]]) -> Vec<u8> {
    let len = u8::try_from(record.data.len()).expect("TLSA data over 255 bytes");
    let mut out = vec![record.usage, record.selector, record.mtype, len];
    out.extend_from_slice(&record.data);
    for der in chain {
        let n = u16::try_from(der.len()).expect("certificate over 64 KiB");
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(der);
    }
    out
}

/// The target's decoding, verbatim in effect.
fn decode(buf: &[u8]) -> Option<(Tlsa, Vec<CertificateDer<'static>>)> {
    let [usage, selector, mtype, len, rest @ ..] = buf else {
        return None;
    };
    let (data, mut rest) = rest.split_at((*len as usize).min(rest.len()));
    let record = Tlsa {
        usage: *usage,
        selector: *selector,
        mtype: *mtype,
        data: data.to_vec(),
    };
    let mut chain = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let n = (u16::from_be_bytes([*hi, *lo]) as usize).min(tail.len());
        chain.push(CertificateDer::from(tail[..n].to_vec()));
        rest = &tail[n..];
    }
    Some((record, chain))
}

/// The outcome a seed is made for.
#[derive(Debug)]
enum Want {
    /// The record matched at this depth (0 = leaf), from DNS or not.
    Match {
        depth: usize,
        from_dns: bool,
    },
    Fail(DaneFailure),
    /// `TaPath(Malformed(..))`, whatever webpki's text.
    Malformed,
}

struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    want: Want,
}

fn matched(depth: usize) -> Want {
    Want::Match {
        depth,
        from_dns: false,
    }
}

fn from_dns(depth: usize) -> Want {
    Want::Match {
        depth,
        from_dns: true,
    }
}

fn no_usable() -> Want {
    Want::Fail(DaneFailure::NoUsableRecords {
        tlsa_name: format!("_{PORT}._tcp.{MX}"),
    })
}

fn no_match() -> Want {
    Want::Fail(DaneFailure::NoMatch {
        tlsa_name: format!("_{PORT}._tcp.{MX}"),
    })
}

fn path(problem: PathProblem) -> Want {
    Want::Fail(DaneFailure::TaPath(problem))
}

fn name_mismatch() -> Want {
    Want::Fail(DaneFailure::NameMismatch {
        names: vec![MX.into(), NEXTHOP.into()],
    })
}

/// `p`, valid from 1 January `from` to 1 January `until`.
fn dated(mut p: CertificateParams, from: i32, until: i32) -> CertificateParams {
    p.not_before = date_time_ymd(from, 1, 1);
    p.not_after = date_time_ymd(until, 1, 1);
    p
}

fn seeds() -> Vec<Seed> {
    // The PKI: an Ed25519 root and intermediate; leaves for mx.example.net
    // with Ed25519, RSA and ECDSA keys, issued by the intermediate.
    let root = self_signed(ca(params(Some("R"), &[], 1)), Key::ed25519(1));
    let int = issue(
        ca(params(Some("Intermediate"), &[], 2)),
        Key::ed25519(2),
        &root,
    );
    let leaf_params = |sans: &[&str], serial| params(None, sans, serial);
    let leaf = issue(leaf_params(&[MX], 3), Key::ed25519(3), &int);
    let rsa = issue(leaf_params(&[MX], 4), Key::rsa(), &int);
    let ec = issue(leaf_params(&[MX], 5), Key::ecdsa(), &int);
    let (root_der, int_der, leaf_der) = (root.der(), int.der(), leaf.der());
    let (r, i, l) = (root_der.as_slice(), int_der.as_slice(), leaf_der.as_slice());

    let mut out = Vec::new();
    let mut add = |name, record: Tlsa, chain: &[&[u8]], want| {
        out.push(Seed {
            name,
            bytes: encode(&record, chain),
            want,
        });
    };

    // DANE-EE: the leaf alone decides; no chain, names or dates.
    add("ee-311-rsa", tlsa(3, 1, 1, &rsa), &[&rsa.der()], matched(0));
    add("ee-311-ecdsa", tlsa(3, 1, 1, &ec), &[&ec.der()], matched(0));
    add(
        "ee-311-ed25519-chain",
        tlsa(3, 1, 1, &leaf),
        &[l, i, r],
        matched(0),
    );
    add("ee-312-ecdsa", tlsa(3, 1, 2, &ec), &[&ec.der()], matched(0));
    add(
        "ee-301-ecdsa",
        tlsa(3, 0, 1, &ec),
        &[&ec.der(), i],
        matched(0),
    );
    add("ee-302-rsa", tlsa(3, 0, 2, &rsa), &[&rsa.der()], matched(0));
    add("ee-310-ecdsa", tlsa(3, 1, 0, &ec), &[&ec.der()], matched(0));
    add("ee-310-ed25519", tlsa(3, 1, 0, &leaf), &[l], matched(0));
    add(
        "ee-311-mismatch",
        tlsa(3, 1, 1, &ec),
        &[&rsa.der(), i],
        no_match(),
    );
    let stale = dated(leaf_params(&["mx.other.example"], 6), 2000, 2001);
    let stale = issue(stale, Key::ed25519(3), &int);
    add(
        "ee-311-expired-other-name",
        tlsa(3, 1, 1, &stale),
        &[&stale.der()],
        matched(0),
    );
    // Selector 0 matches the presented bytes even when they do not parse.
    let junk = b"not a certificate".as_slice();
    let mut junk_digest = tlsa(3, 0, 1, &leaf);
    junk_digest.data = Sha256::digest(junk).to_vec();
    add("ee-301-unparsed-leaf", junk_digest, &[junk], matched(0));

    // DANE-TA: a presented CA certificate (or one published in DNS), then a
    // verified path from the leaf to it and a SAN for a reference name.
    add("ta-201-root", tlsa(2, 0, 1, &root), &[l, i, r], matched(2));
    add(
        "ta-211-intermediate",
        tlsa(2, 1, 1, &int),
        &[l, i],
        matched(1),
    );
    add(
        "ta-211-rsa-leaf",
        tlsa(2, 1, 1, &root),
        &[&rsa.der(), i, r],
        matched(2),
    );
    add(
        "ta-212-root-unordered",
        tlsa(2, 1, 2, &root),
        &[&ec.der(), r, i],
        matched(2),
    );
    assert!(r.len() <= 255, "the root is {} bytes", r.len());
    add(
        "ta-200-root-from-dns",
        tlsa(2, 0, 0, &root),
        &[l, i],
        from_dns(2),
    );
    add(
        "ta-210-root-key-from-dns",
        tlsa(2, 1, 0, &root),
        &[l, i],
        from_dns(2),
    );
    let wildcard = issue(leaf_params(&["*.example.net"], 7), Key::ed25519(3), &int);
    add(
        "ta-211-wildcard-san",
        tlsa(2, 1, 1, &int),
        &[&wildcard.der(), i],
        matched(1),
    );
    let nexthop = issue(
        leaf_params(&["other.example", NEXTHOP], 8),
        Key::ed25519(3),
        &int,
    );
    add(
        "ta-211-nexthop-san",
        tlsa(2, 1, 1, &int),
        &[&nexthop.der(), i],
        matched(1),
    );
    let other = issue(leaf_params(&["mx.other.example"], 9), Key::ed25519(3), &int);
    add(
        "ta-211-name-mismatch",
        tlsa(2, 1, 1, &int),
        &[&other.der(), i],
        name_mismatch(),
    );
    let cn_only = issue(params(Some(MX), &[], 10), Key::ed25519(3), &int);
    add(
        "ta-211-cn-only",
        tlsa(2, 1, 1, &int),
        &[&cn_only.der(), i],
        name_mismatch(),
    );
    let expired = dated(leaf_params(&[MX], 11), 2000, 2001);
    let expired = issue(expired, Key::ed25519(3), &int);
    let want = path(PathProblem::Expired);
    add(
        "ta-211-expired-leaf",
        tlsa(2, 1, 1, &int),
        &[&expired.der(), i],
        want,
    );
    let future = dated(leaf_params(&[MX], 12), 2028, 2030);
    let future = issue(future, Key::ed25519(3), &int);
    let want = path(PathProblem::NotYetValid);
    add(
        "ta-211-not-yet-valid",
        tlsa(2, 1, 1, &int),
        &[&future.der(), i],
        want,
    );
    // The anchor's own dates are not checked (RFC 5280 §6.1.1).
    let old_root = dated(ca(params(Some("R"), &[], 1)), 2000, 2001);
    let old_root = self_signed(old_root, Key::ed25519(1));
    let chain: &[&[u8]] = &[l, i, &old_root.der()];
    add(
        "ta-201-expired-anchor",
        tlsa(2, 0, 1, &old_root),
        chain,
        matched(2),
    );
    // A digest of a CA certificate the server does not send designates no
    // anchor; nor does a usage-2 record matching the leaf itself.
    add(
        "ta-211-anchor-absent",
        tlsa(2, 1, 1, &root),
        &[l, i],
        no_match(),
    );
    add(
        "ta-211-matches-leaf",
        tlsa(2, 1, 1, &leaf),
        &[l, i],
        no_match(),
    );
    // An anchor designated, but no path to it verifies.
    let stranger = self_signed(ca(params(Some("S"), &[], 13)), Key::ed25519(4));
    let want = path(PathProblem::NoPathToAnchor);
    add(
        "ta-211-unrelated-anchor",
        tlsa(2, 1, 1, &stranger),
        &[l, &stranger.der()],
        want,
    );
    // Issued in the intermediate's name with another key.
    let impostor = self_signed(ca(params(Some("Intermediate"), &[], 2)), Key::ed25519(5));
    let forged = issue(leaf_params(&[MX], 14), Key::ed25519(3), &impostor);
    let want = path(PathProblem::BadSignature);
    add(
        "ta-211-bad-signature",
        tlsa(2, 1, 1, &int),
        &[&forged.der(), i],
        want,
    );
    let mut client = leaf_params(&[MX], 15);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = issue(client, Key::ed25519(3), &int);
    let want = path(PathProblem::NotForServerAuth);
    add(
        "ta-211-client-eku",
        tlsa(2, 1, 1, &int),
        &[&client.der(), i],
        want,
    );
    let ca_leaf = issue(ca(leaf_params(&[MX], 16)), Key::ed25519(3), &int);
    let want = path(PathProblem::LeafIsCa);
    add(
        "ta-211-leaf-is-ca",
        tlsa(2, 1, 1, &int),
        &[&ca_leaf.der(), i],
        want,
    );
    let not_ca = issue(params(Some("Not A CA"), &[], 17), Key::ed25519(6), &root);
    let below = issue(leaf_params(&[MX], 18), Key::ed25519(3), &not_ca);
    let want = path(PathProblem::IssuerNotCa);
    add(
        "ta-201-issuer-not-ca",
        tlsa(2, 0, 1, &root),
        &[&below.der(), &not_ca.der(), r],
        want,
    );
    let mut constrained = ca(params(Some("Constrained"), &[], 19));
    constrained.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("other.example".into())],
        excluded_subtrees: vec![],
    });
    let constrained = issue(constrained, Key::ed25519(7), &root);
    let below = issue(leaf_params(&[MX], 20), Key::ed25519(3), &constrained);
    let chain: &[&[u8]] = &[&below.der(), &constrained.der(), r];
    let want = path(PathProblem::NameConstraints);
    add("ta-211-name-constraints", tlsa(2, 1, 1, &root), chain, want);
    let mut short = params(Some("Path Length 0"), &[], 21);
    short.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let short = issue(short, Key::ed25519(8), &root);
    let middle = issue(ca(params(Some("Below"), &[], 22)), Key::ed25519(9), &short);
    let below = issue(leaf_params(&[MX], 23), Key::ed25519(3), &middle);
    let chain: &[&[u8]] = &[&below.der(), &middle.der(), &short.der(), r];
    let want = path(PathProblem::PathLength);
    add("ta-211-path-length", tlsa(2, 1, 1, &root), chain, want);
    add(
        "ta-201-unparsed-leaf",
        tlsa(2, 0, 1, &root),
        &[junk, i, r],
        Want::Malformed,
    );

    // Unusable records, each of which would otherwise match.
    add(
        "unusable-111-pkix-ee",
        tlsa(1, 1, 1, &leaf),
        &[l, i, r],
        no_usable(),
    );
    add(
        "unusable-001-pkix-ta",
        tlsa(0, 0, 1, &root),
        &[l, i, r],
        no_usable(),
    );
    let mut short_digest = tlsa(3, 1, 1, &leaf);
    short_digest.data.pop();
    add("unusable-311-short-digest", short_digest, &[l], no_usable());
    let mut cut_spki = tlsa(3, 1, 0, &ec);
    cut_spki.data.pop();
    add("unusable-310-cut-spki", cut_spki, &[&ec.der()], no_usable());
    add(
        "unusable-411-usage",
        tlsa(4, 1, 1, &leaf),
        &[l],
        no_usable(),
    );
    out
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/tlsa"));
    let names = ReferenceIds {
        tlsa_base: MX.into(),
        mx_host: MX.into(),
        nexthop: NEXTHOP.into(),
    };
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW));

    let seeds = seeds();
    let mut failures = 0;
    println!(
        "{:<28} {:>5}  {:<7} {:>5}  result",
        "seed", "bytes", "record", "certs"
    );
    for seed in &seeds {
        let (record, chain) = decode(&seed.bytes).expect("seed too short");
        let (leaf, rest) = chain.split_first().expect("seed without a certificate");
        let got = verify_chain(std::slice::from_ref(&record), PORT, &names, leaf, rest, now);
        let ok = match (&seed.want, &got) {
            (Want::Match { depth, from_dns }, Ok(m)) => {
                m.depth == *depth
                    && m.from_dns == *from_dns
                    && (m.usage, m.selector, m.mtype, &m.data)
                        == (record.usage, record.selector, record.mtype, &record.data)
            }
            (Want::Fail(want), Err(got)) => want == got,
            (Want::Malformed, Err(DaneFailure::TaPath(PathProblem::Malformed(_)))) => true,
            _ => false,
        };
        let shown = match &got {
            Ok(m) => format!("Ok: {m}"),
            Err(e) => format!("Err({}): {e}", variant(e)),
        };
        println!(
            "{:<28} {:>5}  {} {} {}   {:>5}  {}{}",
            seed.name,
            seed.bytes.len(),
            record.usage,
            record.selector,
            record.mtype,
            chain.len(),
            shown,
            if ok { "" } else { "   <-- UNEXPECTED" },
        );
        if !ok {
            eprintln!("{}: wanted {:?}, got {:?}", seed.name, seed.want, got);
            failures += 1;
        }
    }
    if failures > 0 {
        eprintln!("{failures} seed(s) did not give their intended outcome; nothing written");
        std::process::exit(1);
    }

    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for entry in std::fs::read_dir(&dir).expect("read the seed directory") {
        let path = entry.expect("directory entry").path();
        if path.is_file() {
            std::fs::remove_file(&path).expect("remove an old seed");
        }
    }
    for seed in &seeds {
        std::fs::write(dir.join(seed.name), &seed.bytes).expect("write a seed");
    }
    let total: usize = seeds.iter().map(|s| s.bytes.len()).sum();
    println!(
        "wrote {} seeds, {total} bytes, to {}",
        seeds.len(),
        dir.display()
    );
}

fn variant(e: &DaneFailure) -> String {
    match e {
        DaneFailure::NoUsableRecords { .. } => "NoUsableRecords".into(),
        DaneFailure::NoMatch { .. } => "NoMatch".into(),
        DaneFailure::TaPath(p) => format!(
            "TaPath::{}",
            format!("{p:?}").split('(').next().unwrap_or("")
        ),
        DaneFailure::NameMismatch { .. } => "NameMismatch".into(),
    }
}
