//! The signature algorithms certificate paths are verified with (DANE-TA):
//! rustls-webpki's *ring* set, plus ECDSA on P-521 (with SHA-256, -384 and
//! -512), which *ring* lacks and OpenSSL-based MTAs accept, checked with
//! OpenSSL. Both TLS engines judge chains with this one list, so a chain
//! verifies or fails the same whichever engine carried the handshake.
//!
//! Deliberately absent, as in OpenSSL at the security level Postfix runs
//! with: RSA keys below 2048 bits and SHA-1 signatures in a path.

use std::sync::LazyLock;

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};

/// ECDSA on P-521 with one digest, through OpenSSL.
#[derive(Debug)]
struct EcdsaP521 {
    digest: fn() -> MessageDigest,
    signature: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for EcdsaP521 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let verified = (|| -> Result<bool, openssl::error::ErrorStack> {
            let group = EcGroup::from_curve_name(Nid::SECP521R1)?;
            let mut ctx = BigNumContext::new()?;
            let point = EcPoint::from_bytes(&group, public_key, &mut ctx)?;
            let key = EcKey::from_public_key(&group, &point)?;
            let sig = EcdsaSig::from_der(signature)?;
            let digest = openssl::hash::hash((self.digest)(), message)?;
            sig.verify(&digest, &key)
        })();
        match verified {
            Ok(true) => Ok(()),
            _ => Err(InvalidSignature),
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature
    }
}

static ECDSA_P521_SHA256: EcdsaP521 = EcdsaP521 {
    digest: MessageDigest::sha256,
    signature: alg_id::ECDSA_SHA256,
};
static ECDSA_P521_SHA384: EcdsaP521 = EcdsaP521 {
    digest: MessageDigest::sha384,
    signature: alg_id::ECDSA_SHA384,
};
static ECDSA_P521_SHA512: EcdsaP521 = EcdsaP521 {
    digest: MessageDigest::sha512,
    signature: alg_id::ECDSA_SHA512,
};

static ALL: LazyLock<Vec<&'static dyn SignatureVerificationAlgorithm>> = LazyLock::new(|| {
    let mut all: Vec<&'static dyn SignatureVerificationAlgorithm> =
        webpki::ALL_VERIFICATION_ALGS.to_vec();
    all.extend([
        &ECDSA_P521_SHA256 as &dyn SignatureVerificationAlgorithm,
        &ECDSA_P521_SHA384,
        &ECDSA_P521_SHA512,
    ]);
    all
});

/// Every algorithm a certificate path may be signed with.
pub fn chain_algorithms() -> &'static [&'static dyn SignatureVerificationAlgorithm] {
    &ALL
}

#[cfg(test)]
mod tests {
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
    use openssl::x509::X509;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use sha2::{Digest, Sha256};

    use crate::dns::Tlsa;
    use crate::tls::dane::{verify_chain, ReferenceIds};
    use crate::tls::testpki::{self, TestKey};

    /// A P-256 leaf issued by a P-521 CA with each digest: `2 0 1` of the
    /// CA matches and the path verifies; a tampered signature does not.
    #[test]
    fn dane_ta_path_signed_with_p521() {
        let ca_key = testpki::key(TestKey::Ec("P-521"));
        let mut ca = X509::builder().unwrap();
        let template = testpki::certificate(&ca_key, "P-521 CA");
        ca.set_version(2).unwrap();
        ca.set_serial_number(template.serial_number()).unwrap();
        ca.set_subject_name(template.subject_name()).unwrap();
        ca.set_issuer_name(template.subject_name()).unwrap();
        ca.set_pubkey(&ca_key).unwrap();
        ca.set_not_before(template.not_before()).unwrap();
        ca.set_not_after(template.not_after()).unwrap();
        ca.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        ca.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap())
            .unwrap();
        ca.sign(&ca_key, MessageDigest::sha512()).unwrap();
        let ca = ca.build();
        let names = ReferenceIds {
            tlsa_base: "mx.example.net".into(),
            mx_host: "mx.example.net".into(),
            nexthop: "example.net".into(),
        };
        let record = Tlsa {
            usage: 2,
            selector: 0,
            mtype: 1,
            data: Sha256::digest(ca.to_der().unwrap()).to_vec(),
        };
        for digest in [
            MessageDigest::sha256(),
            MessageDigest::sha384(),
            MessageDigest::sha512(),
        ] {
            let leaf_key = testpki::key(TestKey::Ec("P-256"));
            let t = testpki::certificate(&leaf_key, "mx.example.net");
            let mut leaf = X509::builder().unwrap();
            leaf.set_version(2).unwrap();
            leaf.set_serial_number(t.serial_number()).unwrap();
            leaf.set_subject_name(t.subject_name()).unwrap();
            leaf.set_issuer_name(ca.subject_name()).unwrap();
            leaf.set_pubkey(&leaf_key).unwrap();
            leaf.set_not_before(t.not_before()).unwrap();
            leaf.set_not_after(t.not_after()).unwrap();
            let san = SubjectAlternativeName::new()
                .dns("mx.example.net")
                .build(&leaf.x509v3_context(Some(&ca), None))
                .unwrap();
            leaf.append_extension(san).unwrap();
            leaf.sign(&ca_key, digest).unwrap();
            let mut der = leaf.build().to_der().unwrap();
            let chain = [CertificateDer::from(ca.to_der().unwrap())];
            let m = verify_chain(
                std::slice::from_ref(&record),
                25,
                &names,
                &CertificateDer::from(der.clone()),
                &chain,
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((m.usage, m.depth), (2, 1));
            // The signature is the last bytes of the DER: spoil it.
            let last = der.len() - 2;
            der[last] ^= 1;
            let e = verify_chain(
                std::slice::from_ref(&record),
                25,
                &names,
                &CertificateDer::from(der),
                &chain,
                UnixTime::now(),
            )
            .unwrap_err();
            assert_eq!(
                e.to_string(),
                "DANE-TA path to the matched trust anchor does not verify: a certificate signature does not verify"
            );
        }
    }
}
