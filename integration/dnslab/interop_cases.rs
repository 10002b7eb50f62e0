//! The TLS interoperability cases (issue 12) as data: the receivers (one
//! Postfix smtpd each, with its TLS settings and certificate), the
//! domains that point at them (with or without a TLSA record) and what the
//! Postfix DANE relay, the reference, does with each. From these the lab
//! makes the receivers' certificates ([`make_certs`]) and the records of
//! the signed zone `interop.test.` ([`zone_records`]); `interop.rs` runs
//! the comparison.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use crate::interop_pki::{self, Chain, Hierarchy, Key};
use crate::zones::HostCert;

/// The zone of every interop domain.
pub const ZONE: &str = "interop.test.";

/// TLS 1.2 only.
const TLS12_ONLY: &str = "smtpd_tls_protocols=!SSLv2:!SSLv3:!TLSv1:!TLSv1.1:!TLSv1.3";

/// One smtpd of the receiver instance.
#[derive(Debug)]
pub struct Receiver {
    /// Also the last label of its domains (`dane-NAME`, `notlsa-NAME`).
    pub name: &'static str,
    /// Listens on 127.0.25.IP:25.
    pub ip: u8,
    pub key: Key,
    pub chain: Chain,
    /// `-o` overrides besides its certificate (`smtpd_tls_chain_files`).
    pub overrides: &'static [&'static str],
    pub about: &'static str,
}

impl Receiver {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 25, self.ip), 25))
    }

    /// The name of its certificate in the lab (`lab.cert(..)`).
    pub fn cert_name(&self) -> String {
        format!("interop:{}", self.name)
    }
}

pub const RECEIVERS: &[Receiver] = &[
    Receiver {
        name: "tls13-p256",
        ip: 101,
        key: Key::Ec("P-256"),
        chain: Chain::SelfSigned,
        overrides: &[],
        about: "TLS 1.3, ECDSA P-256",
    },
    Receiver {
        name: "tls12-gcm",
        ip: 102,
        key: Key::Rsa(2048),
        chain: Chain::SelfSigned,
        overrides: &[
            TLS12_ONLY,
            "tls_medium_cipherlist=ECDHE-RSA-AES256-GCM-SHA384",
        ],
        about: "TLS 1.2 only, ECDHE-RSA-AES256-GCM-SHA384 only",
    },
    Receiver {
        name: "rsa4096",
        ip: 103,
        key: Key::Rsa(4096),
        chain: Chain::SelfSigned,
        overrides: &[],
        about: "RSA 4096",
    },
    Receiver {
        name: "p384",
        ip: 104,
        key: Key::Ec("P-384"),
        chain: Chain::SelfSigned,
        overrides: &[],
        about: "ECDSA P-384",
    },
    Receiver {
        name: "ed25519",
        ip: 105,
        key: Key::Ed25519,
        chain: Chain::SelfSigned,
        overrides: &[],
        about: "Ed25519",
    },
    Receiver {
        name: "ta-unordered",
        ip: 106,
        key: Key::Ec("P-256"),
        chain: Chain::Unordered,
        overrides: &[],
        about: "CA-issued (root → intermediate → leaf), sent as leaf, root, intermediate",
    },
    Receiver {
        name: "ta-leaf-only",
        ip: 107,
        key: Key::Ec("P-256"),
        chain: Chain::LeafOnly,
        overrides: &[],
        about: "CA-issued, the intermediate not sent",
    },
    Receiver {
        name: "tls11",
        ip: 108,
        key: Key::Rsa(2048),
        chain: Chain::SelfSigned,
        overrides: &[
            "smtpd_tls_protocols=!SSLv2:!SSLv3:!TLSv1.2:!TLSv1.3",
            "tls_medium_cipherlist=aNULL:-aNULL:HIGH:MEDIUM:@STRENGTH:@SECLEVEL=0",
        ],
        about: "TLS 1.0 and 1.1 only (OpenSSL @SECLEVEL=0)",
    },
    Receiver {
        name: "cbc",
        ip: 109,
        key: Key::Rsa(2048),
        chain: Chain::SelfSigned,
        overrides: &[TLS12_ONLY, "tls_medium_cipherlist=ECDHE-RSA-AES256-SHA"],
        about: "TLS 1.2 only, ECDHE-RSA-AES256-SHA (CBC) only",
    },
    Receiver {
        name: "dhe-gcm",
        ip: 110,
        key: Key::Rsa(2048),
        chain: Chain::SelfSigned,
        overrides: &[
            TLS12_ONLY,
            "tls_medium_cipherlist=DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256",
        ],
        about: "TLS 1.2 only, DHE-RSA-AES-GCM only",
    },
    Receiver {
        name: "p521",
        ip: 111,
        key: Key::Ec("P-521"),
        chain: Chain::SelfSigned,
        overrides: &[],
        about: "ECDSA P-521",
    },
    Receiver {
        name: "rsa1024",
        ip: 112,
        key: Key::Rsa(1024),
        chain: Chain::SelfSigned,
        overrides: &["tls_medium_cipherlist=aNULL:-aNULL:HIGH:MEDIUM:@STRENGTH:@SECLEVEL=0"],
        about: "RSA 1024 (OpenSSL @SECLEVEL=0)",
    },
    Receiver {
        name: "anon",
        ip: 113,
        key: Key::Rsa(2048),
        chain: Chain::SelfSigned,
        overrides: &[TLS12_ONLY, "tls_medium_cipherlist=aNULL:!eNULL:@SECLEVEL=0"],
        about: "TLS 1.2 only, anonymous cipher suites only",
    },
    Receiver {
        name: "cbc-replay",
        ip: 114,
        key: Key::Rsa(2048),
        chain: Chain::Forged { of: "cbc" },
        overrides: &[TLS12_ONLY, "tls_medium_cipherlist=ECDHE-RSA-AES256-SHA"],
        about: "as `cbc`, presenting cbc's certificate without its private key",
    },
];

/// The TLSA record a domain's MX host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// `3 1 1` of the receiver's own key.
    Own,
    /// `2 0 1` of the interop root CA.
    Root,
    /// `3 1 1` of another receiver's key.
    KeyOf(&'static str),
}

/// How a relay's delivery to a domain ended and how it was protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; the certificate matched a TLSA record.
    Verified,
    /// Delivered over TLS, certificate not authenticated.
    Untrusted,
    /// Delivered over TLS with an anonymous cipher suite.
    Anonymous,
    /// Delivered without TLS.
    Plaintext,
    Deferred,
}

/// One destination domain, `LABEL.interop.test`, and what must happen.
#[derive(Debug)]
pub struct Domain {
    pub label: &'static str,
    /// The [`Receiver`] its MX host points at.
    pub receiver: &'static str,
    pub record: Option<Record>,
    /// What the Postfix DANE relay does (and so must danegate, see
    /// [`Outcome`] comparisons in the test).
    pub reference: Outcome,
    /// The TLS protocol the receiver logs for both relays (when TLS).
    pub protocol: Option<&'static str>,
    /// danegate reaches it only through its legacy TLS engine.
    pub legacy: bool,
    /// What danegate's deferral says (a part of it).
    pub deferral: Option<&'static str>,
}

macro_rules! domains {
    ($( $label:literal => $rx:literal, $rec:expr, $out:ident, $proto:expr, $legacy:expr, $why:expr; )*) => {
        &[$( Domain {
            label: $label,
            receiver: $rx,
            record: $rec,
            reference: Outcome::$out,
            protocol: $proto,
            legacy: $legacy,
            deferral: $why,
        }, )*]
    };
}

const T13: Option<&str> = Some("TLSv1.3");
const T12: Option<&str> = Some("TLSv1.2");
const T11: Option<&str> = Some("TLSv1.1");
const OWN: Option<Record> = Some(Record::Own);
const ROOT: Option<Record> = Some(Record::Root);

pub const DOMAINS: &[Domain] = domains![
    "dane-tls13-p256" => "tls13-p256", OWN, Verified, T13, false, None;
    "notlsa-tls13-p256" => "tls13-p256", None, Untrusted, T13, false, None;
    "dane-tls12-gcm" => "tls12-gcm", OWN, Verified, T12, false, None;
    "notlsa-tls12-gcm" => "tls12-gcm", None, Untrusted, T12, false, None;
    "dane-rsa4096" => "rsa4096", OWN, Verified, T13, false, None;
    "notlsa-rsa4096" => "rsa4096", None, Untrusted, T13, false, None;
    "dane-p384" => "p384", OWN, Verified, T13, false, None;
    "notlsa-p384" => "p384", None, Untrusted, T13, false, None;
    "dane-ed25519" => "ed25519", OWN, Verified, T13, false, None;
    "notlsa-ed25519" => "ed25519", None, Untrusted, T13, false, None;
    "dane-ta-unordered" => "ta-unordered", ROOT, Verified, T13, false, None;
    "notlsa-ta-unordered" => "ta-unordered", None, Untrusted, T13, false, None;
    "dane-ta-leaf-only" => "ta-leaf-only", ROOT, Deferred, None, false,
        Some("no TLSA record of _25._tcp.mx.dane-ta-leaf-only.interop.test matches the certificate chain");
    "notlsa-ta-leaf-only" => "ta-leaf-only", None, Untrusted, T13, false, None;
    "dane-tls11" => "tls11", OWN, Deferred, None, true,
        Some("no TLS version in common with the server (it offers none of TLSv1.2 to TLSv1.3; [tls] min_version where TLS is required)");
    "notlsa-tls11" => "tls11", None, Anonymous, T11, true, None;
    "dane-cbc" => "cbc", OWN, Verified, T12, true, None;
    "notlsa-cbc" => "cbc", None, Untrusted, T12, true, None;
    "mismatch-cbc" => "cbc", Some(Record::KeyOf("tls13-p256")), Deferred, None, true,
        Some("no TLSA record of _25._tcp.mx.mismatch-cbc.interop.test matches the certificate chain");
    "dane-dhe-gcm" => "dhe-gcm", OWN, Verified, T12, true, None;
    "notlsa-dhe-gcm" => "dhe-gcm", None, Untrusted, T12, true, None;
    "dane-p521" => "p521", OWN, Verified, T13, true, None;
    "notlsa-p521" => "p521", None, Untrusted, T13, true, None;
    "dane-rsa1024" => "rsa1024", OWN, Verified, T13, true, None;
    "notlsa-rsa1024" => "rsa1024", None, Untrusted, T13, true, None;
    "dane-anon" => "anon", OWN, Deferred, None, true, Some("no cipher suite, key exchange or signature algorithm in common with the server");
    "notlsa-anon" => "anon", None, Anonymous, T12, true, None;
    "dane-cbc-replay" => "cbc-replay", OWN, Deferred, None, true,
        Some("the server's handshake signature does not verify with its certificate's key (it does not hold that key)");
    "notlsa-cbc-replay" => "cbc-replay", None, Plaintext, None, true, None;
];

impl Domain {
    pub fn name(&self) -> String {
        format!("{}.interop.test", self.label)
    }

    pub fn mx(&self) -> String {
        format!("mx.{}.interop.test", self.label)
    }

    pub fn rcpt(&self) -> String {
        format!("user@{}", self.name())
    }

    pub fn receiver(&self) -> &'static Receiver {
        receiver(self.receiver)
    }
}

pub fn receiver(name: &str) -> &'static Receiver {
    RECEIVERS
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no interop receiver {name}"))
}

/// The certificates of every receiver (their SAN: the MX host names of
/// every domain that points at it), by [`Receiver::cert_name`], and the
/// root as `interop:root`.
pub fn make_certs(dir: &Path) -> BTreeMap<String, HostCert> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let ca = Hierarchy::new();
    let mut out = BTreeMap::new();
    out.insert("interop:root".to_string(), interop_pki::save_root(dir, &ca));
    let mut made = BTreeMap::new();
    for r in RECEIVERS
        .iter()
        .filter(|r| !matches!(r.chain, Chain::Forged { .. }))
    {
        let names: Vec<String> = DOMAINS
            .iter()
            .filter(|d| d.receiver == r.name)
            .map(Domain::mx)
            .collect();
        let (hc, key, cert) = interop_pki::make_leaf(dir, r.name, &names, r.key, r.chain, &ca);
        made.insert(r.name, (key, cert));
        out.insert(r.cert_name(), hc);
    }
    for r in RECEIVERS {
        if let Chain::Forged { of } = r.chain {
            let (key, cert) = made
                .get(of)
                .unwrap_or_else(|| panic!("{} forges {of}, which is not made", r.name));
            out.insert(r.cert_name(), interop_pki::forge(dir, r.name, key, cert));
        }
    }
    out
}

/// The records of `interop.test.` (relative names): per domain an MX, its
/// host's address and, when the table says so, its TLSA record.
pub fn zone_records(certs: &BTreeMap<String, HostCert>) -> String {
    let cert = |name: String| {
        certs
            .get(&name)
            .unwrap_or_else(|| panic!("no interop certificate {name}"))
    };
    let mut s = String::new();
    for d in DOMAINS {
        let r = d.receiver();
        let l = d.label;
        let _ = writeln!(s, "{l} MX 10 mx.{l}\nmx.{l} A 127.0.25.{}", r.ip);
        let tlsa = match d.record {
            None => continue,
            Some(Record::Own) => format!("3 1 1 {}", cert(r.cert_name()).spki_sha256),
            Some(Record::KeyOf(other)) => {
                format!("3 1 1 {}", cert(receiver(other).cert_name()).spki_sha256)
            }
            Some(Record::Root) => format!("2 0 1 {}", cert("interop:root".into()).cert_sha256),
        };
        let _ = writeln!(s, "_25._tcp.mx.{l} TLSA {tlsa}");
    }
    s
}
