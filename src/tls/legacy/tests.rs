//! Whole legacy handshakes against in-process OpenSSL servers over
//! in-memory pipes: what is negotiated, what the verifier decides, and the
//! failure texts.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{NameType, SslVersion};
use openssl::x509::X509;
use sha2::{Digest, Sha256};

use super::*;
use crate::dns::Tlsa;
use crate::tls::dane::{DaneVerifier, ReferenceIds};
use crate::tls::testpki::{self, ServerTls, TestKey};
use crate::tls::UnauthenticatedVerifier;

const HOST: &str = "mx.example.net";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn server(kind: TestKey) -> (X509, PKey<Private>) {
    let key = testpki::key(kind);
    (testpki::certificate(&key, HOST), key)
}

fn spki_record(cert: &X509) -> Tlsa {
    let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
    Tlsa {
        usage: 3,
        selector: 1,
        mtype: 1,
        data: Sha256::digest(spki).to_vec(),
    }
}

fn dane(records: Vec<Tlsa>) -> Arc<DaneVerifier> {
    let ids = ReferenceIds {
        tlsa_base: HOST.into(),
        mx_host: HOST.into(),
        nexthop: "example.net".into(),
    };
    Arc::new(DaneVerifier::new(records, 25, ids, crate::tls::provider()))
}

fn mandatory() -> Floor {
    Floor::Mandatory {
        min_version: TlsVersion::Tls1_2,
    }
}

fn opportunistic() -> Floor {
    Floor::Opportunistic {
        min_version: TlsVersion::Tls1_0,
    }
}

fn unauthenticated(floor: Floor) -> LegacyConfig {
    LegacyConfig {
        verifier: Arc::new(UnauthenticatedVerifier::new(crate::tls::provider())),
        authenticate: false,
        floor,
    }
}

/// Runs both ends; the client's result and what the server saw (the SNI
/// it was given, or its error).
async fn handshake(
    tls: ServerTls<'_>,
    config: &LegacyConfig,
) -> (
    Result<Negotiated, LegacyFailure>,
    Result<Option<String>, String>,
) {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let (client, server) = tokio::join!(connect(c, config, Some(HOST), IP), async {
        testpki::accept(s, &tls)
            .await
            .map(|s| s.ssl().servername(NameType::HOST_NAME).map(str::to_owned))
    });
    (client.map(|(_, n)| n), server)
}

const TLS12_ONLY: Option<SslVersion> = Some(SslVersion::TLS1_2);

#[tokio::test]
async fn cbc_only_server_is_verified_by_the_dane_verifier() {
    let (cert, key) = server(TestKey::Rsa(2048));
    let v = dane(vec![spki_record(&cert)]);
    let config = LegacyConfig {
        verifier: v.clone(),
        authenticate: true,
        floor: mandatory(),
    };
    let mut tls = ServerTls::new(&cert, &key);
    tls.max = TLS12_ONLY;
    tls.ciphers = Some("ECDHE-RSA-AES256-SHA");
    let (client, server) = handshake(tls, &config).await;
    assert_eq!(
        client,
        Ok(Negotiated {
            protocol: "TLSv1.2".into(),
            cipher: "ECDHE-RSA-AES256-SHA".into(),
            anonymous: false,
        })
    );
    // SNI is the TLSA base domain.
    assert_eq!(server, Ok(Some(HOST.to_owned())));
    let matched = v.matched().expect("the DANE verifier matched");
    assert_eq!((matched.usage, matched.depth), (3, 0));
}

#[tokio::test]
async fn a_mismatch_is_refused_in_the_handshake_with_the_verifiers_words() {
    let (cert, key) = server(TestKey::Rsa(2048));
    let (other, _) = server(TestKey::Ec("P-256"));
    let v = dane(vec![spki_record(&other)]);
    let config = LegacyConfig {
        verifier: v.clone(),
        authenticate: true,
        floor: mandatory(),
    };
    let mut tls = ServerTls::new(&cert, &key);
    tls.max = TLS12_ONLY;
    tls.ciphers = Some("ECDHE-RSA-AES256-SHA");
    let (client, server) = handshake(tls, &config).await;
    let err = client.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no TLSA record of _25._tcp.mx.example.net matches the certificate chain"
    );
    assert!(err.is_verification());
    assert!(server.is_err(), "the handshake completed: {server:?}");
    assert!(v.failure().is_some() && v.matched().is_none());
}

#[tokio::test]
async fn a_replayed_certificate_fails_the_signature_check() {
    let (cert, key) = server(TestKey::Rsa(2048));
    let forged = testpki::forged(&key);
    let v = dane(vec![spki_record(&cert)]);
    let config = LegacyConfig {
        verifier: v.clone(),
        authenticate: true,
        floor: mandatory(),
    };
    let mut tls = ServerTls::new(&cert, &forged);
    tls.max = TLS12_ONLY;
    tls.ciphers = Some("ECDHE-RSA-AES256-SHA");
    let (client, server) = handshake(tls, &config).await;
    assert_eq!(client, Err(LegacyFailure::BadSignature));
    assert!(server.is_err());
    // The chain itself matched: only the signature gave the replay away.
    assert!(v.matched().is_some());
    // TLS 1.3 (CertificateVerify) too.
    let mut tls = ServerTls::new(&cert, &forged);
    tls.min = Some(SslVersion::TLS1_3);
    let (client, _) = handshake(tls, &config).await;
    assert_eq!(client, Err(LegacyFailure::BadSignature));
}

#[tokio::test]
async fn tls11_only_server_no_version_in_common_where_tls_is_required() {
    let (cert, key) = server(TestKey::Rsa(2048));
    let v = dane(vec![spki_record(&cert)]);
    let config = LegacyConfig {
        verifier: v,
        authenticate: true,
        floor: mandatory(),
    };
    let mut tls = ServerTls::new(&cert, &key);
    tls.max = Some(SslVersion::TLS1_1);
    let (client, _) = handshake(tls, &config).await;
    assert_eq!(
        client.unwrap_err().to_string(),
        "no TLS version in common with the server (it offers none of TLSv1.2 to TLSv1.3; [tls] min_version where TLS is required)"
    );
    // Opportunistic: TLS 1.1 rather than plaintext.
    let mut tls = ServerTls::new(&cert, &key);
    tls.max = Some(SslVersion::TLS1_1);
    let (client, _) = handshake(tls, &unauthenticated(opportunistic())).await;
    let n = client.unwrap();
    assert_eq!(n.protocol, "TLSv1.1");
    assert!(!n.anonymous);
}

#[tokio::test]
async fn anonymous_suites_only_when_nothing_is_authenticated() {
    let (cert, key) = server(TestKey::Rsa(2048));
    let anon = |tls: &mut ServerTls<'_>| {
        tls.max = TLS12_ONLY;
        tls.ciphers = Some("aNULL:!eNULL:@SECLEVEL=0");
    };
    let mut tls = ServerTls::new(&cert, &key);
    anon(&mut tls);
    let config = LegacyConfig {
        verifier: dane(vec![spki_record(&cert)]),
        authenticate: true,
        floor: mandatory(),
    };
    let (client, _) = handshake(tls, &config).await;
    assert_eq!(
        client.unwrap_err().to_string(),
        "no cipher suite, key exchange or signature algorithm in common with the server (it accepts none that OpenSSL offers from TLSv1.2 on at security level 2, anonymous suites excluded)"
    );
    let mut tls = ServerTls::new(&cert, &key);
    anon(&mut tls);
    let (client, _) = handshake(tls, &unauthenticated(opportunistic())).await;
    let n = client.unwrap();
    assert!(n.anonymous, "{n:?}");
    assert_eq!(n.protocol, "TLSv1.2");
    assert!(
        n.cipher.starts_with("AECDH-") || n.cipher.starts_with("ADH-"),
        "{n:?}"
    );
}

#[tokio::test]
async fn keys_the_primary_engine_lacks_verify_under_dane() {
    for kind in [TestKey::Ec("P-521"), TestKey::Rsa(1024), TestKey::Ed448] {
        let (cert, key) = server(kind);
        let v = dane(vec![spki_record(&cert)]);
        let config = LegacyConfig {
            verifier: v.clone(),
            authenticate: true,
            floor: mandatory(),
        };
        let (client, server) = handshake(ServerTls::new(&cert, &key), &config).await;
        let n = client.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(n.protocol, "TLSv1.3", "{kind:?}");
        assert!(server.is_ok(), "{kind:?}");
        assert!(v.matched().is_some(), "{kind:?}");
    }
}

#[tokio::test]
async fn dhe_only_server() {
    let (cert, key) = server(TestKey::Rsa(2048));
    let mut tls = ServerTls::new(&cert, &key);
    tls.max = TLS12_ONLY;
    tls.ciphers = Some("DHE-RSA-AES256-GCM-SHA384");
    let config = LegacyConfig {
        verifier: dane(vec![spki_record(&cert)]),
        authenticate: true,
        floor: mandatory(),
    };
    let (client, _) = handshake(tls, &config).await;
    assert_eq!(client.unwrap().cipher, "DHE-RSA-AES256-GCM-SHA384");
}

#[test]
fn cipher_lists() {
    let mut c = unauthenticated(opportunistic());
    assert_eq!(c.cipher_list(), "ALL:!eNULL:+aNULL:@SECLEVEL=0");
    c.authenticate = true;
    c.floor = mandatory();
    assert_eq!(c.cipher_list(), "ALL:!eNULL:!aNULL:@SECLEVEL=2");
    // OpenSSL accepts both.
    for auth in [false, true] {
        c.authenticate = auth;
        context(&c).unwrap();
    }
}
