//! Full in-memory TLS handshakes between danegate's client configuration
//! with a `DaneVerifier` and a rustls server: DANE-EE and DANE-TA against
//! RSA and ECDSA servers over TLS 1.3 and 1.2, a TLSA mismatch, and a
//! server that replays a matching certificate without its private key
//! (the handshake signature must fail, whatever the records say).

mod dane_support;

use std::sync::Arc;

use dane_support::{impostor_key, names, private_key, Alg, Pki, Spec, Which, TLSA_NAME};
use danegate::dns::Tlsa;
use danegate::tls::dane::{DaneFailure, DaneMatch, DaneVerifier};
use danegate::tls::{client_config, provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConnection, ProtocolVersion, ServerConfig, ServerConnection,
    SupportedProtocolVersion,
};

const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;

/// Serves one chain with one key, whether or not they belong together
/// (`with_single_cert` would refuse a mismatched pair).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    version: &'static SupportedProtocolVersion,
) -> ServerConnection {
    let provider = provider();
    let signing_key = provider.key_provider.load_private_key(key).unwrap();
    let certified = CertifiedKey::new(chain, signing_key);
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
    ServerConnection::new(Arc::new(config)).unwrap()
}

/// Runs the handshake to its end; the client's error, if any.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let mut slice = buf.as_slice();
        while !slice.is_empty() {
            server.read_tls(&mut slice).unwrap();
        }
        // A server error is sent to the client as an alert; the client's
        // own error is the verdict under test.
        let _ = server.process_new_packets();
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let mut slice = buf.as_slice();
        while !slice.is_empty() {
            client.read_tls(&mut slice).unwrap();
        }
        client.process_new_packets()?;
    }
    panic!("handshake did not finish");
}

struct Outcome {
    result: Result<(), rustls::Error>,
    verifier: Arc<DaneVerifier>,
    version: Option<ProtocolVersion>,
}

fn connect(
    records: Vec<Tlsa>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    version: &'static SupportedProtocolVersion,
) -> Outcome {
    let verifier = Arc::new(DaneVerifier::new(records, 25, names(), provider()));
    let sni = ServerName::try_from("mx1.example.net").unwrap();
    let mut client = ClientConnection::new(
        client_config(verifier.clone(), danegate::tls::version::TlsVersion::Tls1_2),
        sni,
    )
    .unwrap();
    let mut server = server(chain, key, version);
    let result = handshake(&mut client, &mut server);
    Outcome {
        result,
        verifier,
        version: client.protocol_version(),
    }
}

fn full_chain(pki: &Pki) -> Vec<CertificateDer<'static>> {
    vec![pki.leaf.der(), pki.intermediate.der(), pki.root.der()]
}

fn expect_match(record: &Tlsa, depth: usize) -> Option<DaneMatch> {
    Some(DaneMatch {
        usage: record.usage,
        selector: record.selector,
        mtype: record.mtype,
        data: record.data.clone(),
        depth,
        from_dns: false,
    })
}

#[test]
fn dane_ee_and_ta_against_rsa_and_ecdsa_servers() {
    for alg in [Alg::EcdsaP256, Alg::Rsa2048] {
        let pki = Pki::with(Spec {
            leaf_alg: alg,
            ..Spec::default()
        });
        let cases = [
            (pki.tlsa(Which::Leaf, 3, 1, 1), 0),
            (pki.tlsa(Which::Leaf, 3, 0, 2), 0),
            (pki.tlsa(Which::Root, 2, 1, 1), 2),
            (pki.tlsa(Which::Intermediate, 2, 0, 1), 1),
        ];
        for (record, depth) in cases {
            for (version, name) in [
                (TLS13, ProtocolVersion::TLSv1_3),
                (TLS12, ProtocolVersion::TLSv1_2),
            ] {
                let out = connect(
                    vec![record.clone()],
                    full_chain(&pki),
                    pki.leaf.private_key(),
                    version,
                );
                let what = format!("{alg:?} {name:?} {}", record);
                assert_eq!(out.result, Ok(()), "{what}");
                assert_eq!(out.version, Some(name), "{what}");
                assert_eq!(
                    out.verifier.matched(),
                    expect_match(&record, depth),
                    "{what}"
                );
                assert_eq!(out.verifier.failure(), None, "{what}");
            }
        }
    }
}

#[test]
fn tlsa_mismatch_fails_the_handshake() {
    let pki = Pki::new();
    let other = Pki::new();
    let record = other.tlsa(Which::Leaf, 3, 1, 1);
    for version in [TLS13, TLS12] {
        let out = connect(
            vec![record.clone()],
            full_chain(&pki),
            pki.leaf.private_key(),
            version,
        );
        let want = DaneFailure::NoMatch {
            tlsa_name: TLSA_NAME.into(),
        };
        match out.result {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
                let failure = other.0.downcast_ref::<DaneFailure>();
                assert_eq!(failure, Some(&want));
            }
            res => panic!("{res:?}"),
        }
        assert_eq!(out.verifier.failure(), Some(want));
        assert_eq!(out.verifier.matched(), None);
    }
}

/// A server presenting the real chain (which the records match) but
/// holding another key of the same algorithm: the chain verdict is
/// "matched", and the handshake still fails on the server's signature.
#[test]
fn replayed_certificate_without_its_key_fails() {
    for alg in [Alg::EcdsaP256, Alg::Rsa2048] {
        let pki = Pki::with(Spec {
            leaf_alg: alg,
            ..Spec::default()
        });
        let impostor = private_key(&impostor_key(alg));
        for (record, depth) in [
            (pki.tlsa(Which::Leaf, 3, 1, 1), 0),
            (pki.tlsa(Which::Root, 2, 0, 2), 2),
        ] {
            for version in [TLS13, TLS12] {
                let out = connect(
                    vec![record.clone()],
                    full_chain(&pki),
                    impostor.clone_key(),
                    version,
                );
                let what = format!("{alg:?} {:?} {record}", version.version);
                assert_eq!(
                    out.result,
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::BadSignature
                    )),
                    "{what}"
                );
                // The chain matched: only the signature check stopped it.
                assert_eq!(
                    out.verifier.matched(),
                    expect_match(&record, depth),
                    "{what}"
                );
                assert_eq!(out.verifier.failure(), None, "{what}");
            }
        }
    }
}
