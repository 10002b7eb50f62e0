//! The certificates of the TLS interoperability receivers (`interop.rs`):
//! every key type an OpenSSL-based MTA meets (RSA 1024/2048/4096, ECDSA
//! P-256/P-384/P-521, Ed25519), a CA hierarchy for DANE-TA (root →
//! intermediate → leaf) presented in and out of order, and a *forged* key:
//! the public half of another receiver's RSA certificate with a private
//! half that does not belong to it, so that a server can present a
//! certificate whose TLSA record matches while it cannot sign with its key
//! (a replayed certificate).
//!
//! Made with the `openssl` crate (rcgen's ring backend makes neither RSA
//! nor P-521 keys). Files go to `certs/interop/` in the lab directory;
//! digests are SHA-256 of the DER, as the zones publish them.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509};

use crate::lab::write_file;
use crate::zones::{HostCert, Issuer};

/// A key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Rsa(u32),
    /// An ECDSA key on the named curve: "P-256", "P-384", "P-521".
    Ec(&'static str),
    Ed25519,
}

impl Key {
    fn generate(self) -> PKey<Private> {
        match self {
            Key::Rsa(bits) => {
                PKey::from_rsa(Rsa::generate(bits).expect("RSA key")).expect("RSA pkey")
            }
            Key::Ec(curve) => {
                let nid = match curve {
                    "P-256" => Nid::X9_62_PRIME256V1,
                    "P-384" => Nid::SECP384R1,
                    "P-521" => Nid::SECP521R1,
                    other => panic!("unknown curve {other}"),
                };
                let group = EcGroup::from_curve_name(nid).expect("EC group");
                PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("EC pkey")
            }
            Key::Ed25519 => PKey::generate_ed25519().expect("Ed25519 key"),
        }
    }

    /// Ed25519 signs the message itself, no digest.
    fn digest(key: &PKey<Private>) -> MessageDigest {
        if key.id() == openssl::pkey::Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        }
    }
}

/// A certificate authority of the interop hierarchy.
pub struct Authority {
    pub key: PKey<Private>,
    pub cert: X509,
}

/// The interop hierarchy: a root and an intermediate it signed.
pub struct Hierarchy {
    pub root: Authority,
    pub intermediate: Authority,
}

impl Hierarchy {
    pub fn new() -> Hierarchy {
        let root_key = Key::Rsa(2048).generate();
        let root = build("danegate interop root CA", &[], &root_key, None, Role::Ca);
        let root = Authority {
            key: root_key,
            cert: root,
        };
        let key = Key::Ec("P-256").generate();
        let cert = build(
            "danegate interop intermediate CA",
            &[],
            &key,
            Some(&root),
            Role::Ca,
        );
        Hierarchy {
            root,
            intermediate: Authority { key, cert },
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Ca,
    Server,
}

/// An X.509 v3 certificate for `cn` with `names` as SAN dNSNames, valid
/// from a day ago for 30 days, self-signed or signed by `issuer`.
fn build(
    cn: &str,
    names: &[String],
    key: &PKey<Private>,
    issuer: Option<&Authority>,
    role: Role,
) -> X509 {
    let mut subject = X509Name::builder().expect("name");
    subject.append_entry_by_text("CN", cn).expect("CN");
    let subject = subject.build();
    let mut b = X509::builder().expect("x509 builder");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(120, MsbOption::MAYBE_ZERO, false)
        .expect("serial");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&subject).expect("subject");
    b.set_issuer_name(issuer.map_or(&subject, |i| i.cert.subject_name()))
        .expect("issuer");
    b.set_pubkey(key).expect("pubkey");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now - 86_400).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(now + 30 * 86_400).expect("time"))
        .expect("not after");
    match role {
        Role::Ca => {
            let bc = BasicConstraints::new().critical().ca().build().expect("bc");
            b.append_extension(bc).expect("bc");
            let ku = KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .expect("ku");
            b.append_extension(ku).expect("ku");
        }
        Role::Server => {
            let mut san = SubjectAlternativeName::new();
            for n in names {
                san.dns(n);
            }
            let ctx = b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None);
            let san = san.build(&ctx).expect("san");
            b.append_extension(san).expect("san");
            let eku = ExtendedKeyUsage::new().server_auth().build().expect("eku");
            b.append_extension(eku).expect("eku");
        }
    }
    let signer = issuer.map_or(key, |i| &i.key);
    b.sign(signer, Key::digest(signer)).expect("sign");
    b.build()
}

/// How a receiver's chain file is put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// A self-signed certificate (DANE-EE).
    SelfSigned,
    /// Issued by the intermediate; sent as leaf, root, intermediate (not
    /// in issuing order).
    Unordered,
    /// Issued by the intermediate; sent alone (the intermediate omitted).
    LeafOnly,
    /// The certificate of the named receiver (RSA) with a private key that
    /// shares its public modulus and exponent but not its private
    /// exponent: the server cannot sign for the certificate it presents.
    Forged { of: &'static str },
}

/// Makes the leaf for `host` (SAN: every name in `names`) under `dir`:
/// `HOST.key.pem` and `HOST.cert.pem` (the chain as the server sends it).
pub fn make_leaf(
    dir: &Path,
    host: &str,
    names: &[String],
    key: Key,
    chain: Chain,
    ca: &Hierarchy,
) -> (HostCert, PKey<Private>, X509) {
    let pkey = key.generate();
    let (cert, issuer, sent): (X509, Issuer, Vec<&X509>) = match chain {
        Chain::SelfSigned => {
            let c = build(host, names, &pkey, None, Role::Server);
            (c, Issuer::SelfSigned, Vec::new())
        }
        Chain::Unordered => {
            let c = build(host, names, &pkey, Some(&ca.intermediate), Role::Server);
            (
                c,
                Issuer::InteropCa,
                vec![&ca.root.cert, &ca.intermediate.cert],
            )
        }
        Chain::LeafOnly => {
            let c = build(host, names, &pkey, Some(&ca.intermediate), Role::Server);
            (c, Issuer::InteropCa, Vec::new())
        }
        Chain::Forged { .. } => panic!("forged keys come from `forge`"),
    };
    let mut pem = cert.to_pem().expect("pem");
    for c in sent {
        pem.extend(c.to_pem().expect("pem"));
    }
    let hc = save(dir, host, issuer, &pkey, &cert, &pem);
    (hc, pkey, cert)
}

/// A receiver presenting `cert` (whose real key is `real`) with a forged
/// private key: same modulus and public exponent, the private exponent and
/// primes of another key. OpenSSL accepts it (it compares public halves
/// only) and signs with it; no signature verifies.
pub fn forge(dir: &Path, host: &str, real: &PKey<Private>, cert: &X509) -> HostCert {
    let real = real.rsa().expect("a forged key needs an RSA certificate");
    let other = Rsa::generate(real.size() * 8).expect("RSA key");
    let dup = |b: &openssl::bn::BigNumRef| b.to_owned().expect("bn");
    let forged = Rsa::from_private_components(
        dup(real.n()),
        dup(real.e()),
        dup(other.d()),
        dup(other.p().expect("p")),
        dup(other.q().expect("q")),
        dup(other.dmp1().expect("dmp1")),
        dup(other.dmq1().expect("dmq1")),
        dup(other.iqmp().expect("iqmp")),
    )
    .expect("forged RSA key");
    let pkey = PKey::from_rsa(forged).expect("pkey");
    let pem = cert.to_pem().expect("pem");
    save(dir, host, Issuer::SelfSigned, &pkey, cert, &pem)
}

fn save(
    dir: &Path,
    host: &str,
    issuer: Issuer,
    key: &PKey<Private>,
    cert: &X509,
    chain_pem: &[u8],
) -> HostCert {
    let key_pem = dir.join(format!("{host}.key.pem"));
    let chain = dir.join(format!("{host}.cert.pem"));
    write_file(&key_pem, key.private_key_to_pem_pkcs8().expect("key pem"));
    write_file(&chain, chain_pem);
    let spki = cert
        .public_key()
        .expect("pubkey")
        .public_key_to_der()
        .expect("spki");
    HostCert {
        name: host.to_string(),
        issuer,
        key_pem,
        chain_pem: chain,
        spki_sha256: hex(&openssl::sha::sha256(&spki)),
        cert_sha256: hex(&openssl::sha::sha256(&cert.to_der().expect("der"))),
    }
}

/// The root CA as a lab certificate (for `2 0 1` records and `lab.cert`).
pub fn save_root(dir: &Path, ca: &Hierarchy) -> HostCert {
    let pem = ca.root.cert.to_pem().expect("pem");
    save(
        dir,
        "interop-root",
        Issuer::SelfSigned,
        &ca.root.key,
        &ca.root.cert,
        &pem,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
