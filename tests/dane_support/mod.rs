//! Fixtures for the DANE verifier tests (`dane_matrix`, `dane_handshake`):
//! a three-level PKI (root CA → intermediate CA → leaf) generated with
//! rcgen at test time, and TLSA records computed from it.
//!
//! The records are computed here from rcgen's own encodings (the key's
//! SubjectPublicKeyInfo, the certificate DER), not with the verifier's
//! code, so a matching bug cannot hide on both sides.
#![allow(dead_code)]

use std::sync::OnceLock;

use danegate::dns::Tlsa;
use danegate::tls::dane::ReferenceIds;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, PKCS_RSA_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256, Sha512};

/// The reference identifiers of every test: TLSA base and MX host
/// `mx1.example.net`, next hop `example.net`.
pub fn names() -> ReferenceIds {
    ReferenceIds {
        tlsa_base: "mx1.example.net".into(),
        mx_host: "mx1.example.net".into(),
        nexthop: "example.net".into(),
    }
}

pub const TLSA_NAME: &str = "_25._tcp.mx1.example.net";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    EcdsaP256,
    Rsa2048,
}

/// A fresh key pair. RSA keys come from the `rsa` crate (ring cannot
/// generate them) and are slow to make, so each test process makes two at
/// most: the one every RSA leaf uses, and [`impostor_key`]'s.
pub fn key(alg: Alg) -> KeyPair {
    match alg {
        Alg::EcdsaP256 => KeyPair::generate().expect("ECDSA key"),
        Alg::Rsa2048 => rsa_key(0),
    }
}

/// A key of the same algorithm that no certificate of the test PKIs holds.
pub fn impostor_key(alg: Alg) -> KeyPair {
    match alg {
        Alg::EcdsaP256 => key(Alg::EcdsaP256),
        Alg::Rsa2048 => rsa_key(1),
    }
}

fn rsa_key(slot: usize) -> KeyPair {
    static RSA: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    let pkcs8 = RSA[slot].get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA");
        key.to_pkcs8_der().expect("PKCS#8").as_bytes().to_vec()
    });
    let der = PrivatePkcs8KeyDer::from(pkcs8.clone());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256).expect("RSA key pair")
}

/// A key pair as rustls loads it.
pub fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// A certificate with its key.
pub struct Issued {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Issued {
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub fn spki(&self) -> Vec<u8> {
        self.key.public_key_der()
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        private_key(&self.key)
    }
}

/// How the PKI is made; `Default` is the well-formed one.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The leaf's SAN dNSNames.
    pub leaf_sans: Vec<String>,
    /// The leaf's subject CN, if any.
    pub leaf_cn: Option<String>,
    /// The leaf expired in 2001.
    pub leaf_expired: bool,
    /// The intermediate has CA basic constraints.
    pub intermediate_is_ca: bool,
    pub leaf_alg: Alg,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            leaf_sans: vec!["mx1.example.net".into()],
            leaf_cn: None,
            leaf_expired: false,
            intermediate_is_ca: true,
            leaf_alg: Alg::EcdsaP256,
        }
    }
}

pub struct Pki {
    pub root: Issued,
    pub intermediate: Issued,
    pub leaf: Issued,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

impl Pki {
    pub fn new() -> Pki {
        Pki::with(Spec::default())
    }

    pub fn with(spec: Spec) -> Pki {
        let root_key = key(Alg::EcdsaP256);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn("Example Test Root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = Issued {
            cert: params.self_signed(&root_key).unwrap(),
            key: root_key,
        };

        let int_key = key(Alg::EcdsaP256);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn("Example Test Intermediate");
        if spec.intermediate_is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let intermediate = Issued {
            cert: params.signed_by(&int_key, &root.cert, &root.key).unwrap(),
            key: int_key,
        };

        let leaf_key = key(spec.leaf_alg);
        let mut params = CertificateParams::new(spec.leaf_sans.clone()).unwrap();
        params.distinguished_name = match &spec.leaf_cn {
            Some(cn) => dn(cn),
            None => DistinguishedName::new(),
        };
        if spec.leaf_expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let leaf = Issued {
            cert: params
                .signed_by(&leaf_key, &intermediate.cert, &intermediate.key)
                .unwrap(),
            key: leaf_key,
        };
        Pki {
            root,
            intermediate,
            leaf,
        }
    }

    pub fn get(&self, which: Which) -> &Issued {
        match which {
            Which::Leaf => &self.leaf,
            Which::Intermediate => &self.intermediate,
            Which::Root => &self.root,
        }
    }

    /// A TLSA record for one of the certificates.
    pub fn tlsa(&self, which: Which, usage: u8, selector: u8, mtype: u8) -> Tlsa {
        tlsa_for(self.get(which), usage, selector, mtype)
    }

    /// The presented chain of a shape: (leaf, the rest).
    pub fn chain(&self, shape: Shape) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>) {
        let (i, r) = (self.intermediate.der(), self.root.der());
        let rest = match shape {
            Shape::LeafOnly => vec![],
            Shape::LeafIntermediate => vec![i],
            Shape::LeafIntermediateRoot => vec![i, r],
            Shape::Unordered => vec![r, i],
        };
        (self.leaf.der(), rest)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Leaf,
    Intermediate,
    Root,
}

/// The chain as the server presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    LeafOnly,
    LeafIntermediate,
    LeafIntermediateRoot,
    /// Leaf, then the root before the leaf's issuer.
    Unordered,
}

/// A TLSA record of `usage selector mtype` for a certificate.
pub fn tlsa_for(issued: &Issued, usage: u8, selector: u8, mtype: u8) -> Tlsa {
    let selected = match selector {
        0 => issued.der().to_vec(),
        1 => issued.spki(),
        _ => panic!("selector {selector}"),
    };
    let data = match mtype {
        0 => selected,
        1 => Sha256::digest(&selected).to_vec(),
        2 => Sha512::digest(&selected).to_vec(),
        _ => panic!("matching type {mtype}"),
    };
    Tlsa {
        usage,
        selector,
        mtype,
        data,
    }
}

/// The same record with its last data byte flipped.
pub fn corrupt(mut record: Tlsa) -> Tlsa {
    let last = record.data.len() - 1;
    record.data[last] ^= 0x01;
    record
}
