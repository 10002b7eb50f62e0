//! The legacy TLS engine in the relay (issue 12), inside one process: a
//! client talks to danegate's inbound session; danegate connects over real
//! TCP and STARTTLS to a [`FakeDest`] whose TLS is OpenSSL with settings
//! rustls cannot meet (CBC suites only, anonymous suites only, TLS 1.1, a
//! key that does not belong to the certificate).
//!
//! Each test asserts the reply the legacy MTA gets, what the destination
//! saw on every connection (a failed rustls handshake, then the legacy
//! one; TLS, SNI, protocol and cipher as OpenSSL names them; whether a
//! MAIL ever arrived) and the log facts (the connection line, the summary
//! line's `tls=`, the retry).

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::*;
use danegate::dns::{Security, Tlsa};
use danegate::outbound::Context;
use openssl::pkey::{PKey, Private};
use openssl::ssl::SslVersion;
use openssl::x509::X509;
use sha2::{Digest, Sha256};

const MX: &str = "mx.example.test";
const CBC: &str = "ECDHE-RSA-AES256-SHA";
/// How the primary engine's failure reads against these servers.
const NOTHING_IN_COMMON: &str = "no TLS version or cipher suite in common with the server (the primary engine offers TLSv1.2 and TLSv1.3 with ECDHE and AEAD suites only)";

// ---------------------------------------------------------------------------
// Certificates, servers, DNS

/// An RSA key and a self-signed certificate for `MX` (OpenSSL).
fn rsa_identity() -> (X509, PKey<Private>) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::X509Name;
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", MX).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns(MX)
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (b.build(), key)
}

/// A key with `real`'s public half and another key's private half: the
/// server presents the certificate without holding its key.
fn forged(real: &PKey<Private>) -> PKey<Private> {
    let real = real.rsa().unwrap();
    let other = openssl::rsa::Rsa::generate(2048).unwrap();
    let d = |b: &openssl::bn::BigNumRef| b.to_owned().unwrap();
    PKey::from_rsa(
        openssl::rsa::Rsa::from_private_components(
            d(real.n()),
            d(real.e()),
            d(other.d()),
            d(other.p().unwrap()),
            d(other.q().unwrap()),
            d(other.dmp1().unwrap()),
            d(other.dmq1().unwrap()),
            d(other.iqmp().unwrap()),
        )
        .unwrap(),
    )
    .unwrap()
}

/// `3 1 1` of a certificate's key.
fn spki_record(cert: &X509) -> Tlsa {
    let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
    Tlsa {
        usage: 3,
        selector: 1,
        mtype: 1,
        data: Sha256::digest(spki).to_vec(),
    }
}

/// A destination whose TLS is OpenSSL: TLS 1.2 (or `max`) with `ciphers`.
async fn openssl_dest(cert: X509, key: PKey<Private>, max: SslVersion, ciphers: &str) -> FakeDest {
    FakeDest::start(DestScript {
        openssl: Some(Arc::new(OpensslServer {
            cert,
            key,
            max: Some(max),
            ciphers: ciphers.to_owned(),
        })),
        ..DestScript::default()
    })
    .await
}

/// `example.test` routed to `[mx.example.test]:PORT`, signed addresses,
/// `tlsa` at the TLSA name (None: a signed denial).
fn context(dest: &FakeDest, tlsa: Option<Vec<Tlsa>>, tls: &[&str]) -> Arc<Context> {
    let name = format!("_{}._tcp.{MX}", dest.port());
    let r = TableResolver::new().host(MX, &[Ipv4Addr::LOCALHOST], Security::Secure);
    let r = Arc::new(match tlsa {
        Some(records) => r.tlsa_secure(&name, records),
        None => r.tlsa_answer(&name, nodata(Security::Secure)),
    });
    let mut b = ConfigBuilder::new().route("example.test", &format!("[{MX}]:{}", dest.port()));
    for line in tls {
        b = b.tls(line);
    }
    b.context(&r)
}

// ---------------------------------------------------------------------------
// Sessions and assertions

fn message() -> Vec<u8> {
    b"Subject: legacy TLS\r\n\r\nHello through OpenSSL.\r\n".to_vec()
}

async fn delivered(ctx: &Arc<Context>) {
    delivered_with(ctx, &message(), QUEUED).await
}

/// The rustls attempt: STARTTLS accepted, no handshake completed, nothing
/// more said.
#[track_caller]
fn assert_failed_handshake(conn: &Conn) {
    assert!(!conn.tls, "{conn:#?}");
    assert_eq!(
        conn.commands(),
        ["EHLO relay.example.net", "STARTTLS"],
        "{conn:#?}"
    );
}

/// The connection that carried the message over TLS.
#[track_caller]
fn assert_carried_over_tls(conn: &Conn) {
    assert!(conn.tls, "{conn:#?}");
    let commands: Vec<(&str, bool)> = conn.commands_tls();
    assert_eq!(
        commands[..2],
        [("EHLO relay.example.net", false), ("STARTTLS", false)]
    );
    assert!(commands[2..].iter().all(|(_, tls)| *tls), "{conn:#?}");
    assert_eq!(conn.messages.len(), 1, "{conn:#?}");
    assert_eq!(conn.messages[0].content(), message());
}

#[track_caller]
fn assert_no_mail(conns: &[Conn]) {
    for conn in conns {
        assert!(
            !conn.commands().iter().any(|c| c.starts_with("MAIL")) && conn.messages.is_empty(),
            "the destination got a MAIL command: {conn:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// DANE through the legacy engine

#[tokio::test]
async fn dane_cbc_only_destination_is_verified_through_the_legacy_engine() {
    let logs = LogCapture::start();
    let (cert, key) = rsa_identity();
    let record = spki_record(&cert);
    let dest = openssl_dest(cert, key, SslVersion::TLS1_2, CBC).await;
    delivered(&context(&dest, Some(vec![record.clone()]), &[])).await;

    let conns = dest.wait_closed(2).await;
    assert_failed_handshake(&conns[0]);
    assert_carried_over_tls(&conns[1]);
    // SNI is the TLSA base domain, with either engine.
    assert_eq!(conns[1].sni.as_deref(), Some(MX));
    assert_eq!(conns[1].protocol.as_deref(), Some("TLSv1.2"));
    assert_eq!(conns[1].cipher.as_deref(), Some(CBC));
    let peer = dest.peer_as(MX);
    let hex: String = record.data[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let m = format!("DANE-EE 3 1 1 {hex}… at depth 0");
    logs.one(&format!(
        "TLS handshake with {peer} failed: {NOTHING_IN_COMMON}; trying again with the legacy TLS engine (OpenSSL)"
    ));
    logs.one(&format!(
        "Verified TLS connection established to {peer}: TLSv1.2 with cipher {CBC} by the legacy TLS engine (OpenSSL); matched {m}"
    ));
    let summary = logs.summary(RCPT);
    assert_eq!(summary.message, "delivered");
    assert_eq!(
        summary.field("tls"),
        Some(format!("verified(dane) legacy TLSv1.2 {CBC} ({m})").as_str())
    );
}

#[tokio::test]
async fn dane_mismatch_through_the_legacy_engine_is_refused_before_any_mail() {
    let logs = LogCapture::start();
    let (cert, key) = rsa_identity();
    let (other, _) = rsa_identity();
    let dest = openssl_dest(cert, key, SslVersion::TLS1_2, CBC).await;
    let ctx = context(&dest, Some(vec![spki_record(&other)]), &[]);
    let peer = dest.peer_as(MX);
    let want = format!(
        "451 4.7.5 TLS handshake with {peer} failed: no TLSA record of _{}._tcp.{MX} matches the certificate chain",
        dest.port()
    );
    refused(&ctx, &want).await;
    let conns = dest.wait_closed(2).await;
    assert_failed_handshake(&conns[0]);
    assert!(!conns[1].tls, "{:#?}", conns[1]);
    assert_no_mail(&conns);
    // Two connections: the legacy engine is not tried twice.
    assert_eq!(conns.len(), 2);
    assert!(!logs.contains("established"), "{}", logs.dump());
}

#[tokio::test]
async fn a_replayed_certificate_through_the_legacy_engine_is_refused() {
    let (cert, key) = rsa_identity();
    let record = spki_record(&cert);
    let dest = openssl_dest(cert, forged(&key), SslVersion::TLS1_2, CBC).await;
    let ctx = context(&dest, Some(vec![record]), &[]);
    let want = format!(
        "451 4.7.5 TLS handshake with {} failed: the server's handshake signature does not verify with its certificate's key (it does not hold that key)",
        dest.peer_as(MX)
    );
    refused(&ctx, &want).await;
    let conns = dest.wait_closed(2).await;
    assert_no_mail(&conns);
    assert!(conns.iter().all(|c| !c.tls), "{conns:#?}");
}

#[tokio::test]
async fn tls11_only_destination_under_dane_defers_for_the_floor() {
    let (cert, key) = rsa_identity();
    let record = spki_record(&cert);
    let dest = openssl_dest(cert, key, SslVersion::TLS1_1, "ALL:@SECLEVEL=0").await;
    let ctx = context(&dest, Some(vec![record]), &[]);
    let want = format!(
        "451 4.7.5 TLS handshake with {} failed: no TLS version in common with the server (it offers none of TLSv1.2 to TLSv1.3; [tls] min_version where TLS is required)",
        dest.peer_as(MX)
    );
    refused(&ctx, &want).await;
    assert_no_mail(&dest.wait_closed(2).await);
}

// ---------------------------------------------------------------------------
// Opportunistic TLS through the legacy engine

#[tokio::test]
async fn opportunistic_tls11_and_anonymous_destinations_get_tls_not_plaintext() {
    for (max, ciphers, want_tls) in [
        (
            SslVersion::TLS1_1,
            "ALL:@SECLEVEL=0",
            "untrusted legacy TLSv1.1 ECDHE-RSA-AES256-SHA",
        ),
        (
            SslVersion::TLS1_2,
            "aNULL:!eNULL:@SECLEVEL=0",
            "anonymous legacy TLSv1.2 ADH-AES256-GCM-SHA384",
        ),
    ] {
        let logs = LogCapture::start();
        let (cert, key) = rsa_identity();
        let dest = openssl_dest(cert, key, max, ciphers).await;
        delivered(&context(&dest, None, &[])).await;
        let conns = dest.wait_closed(2).await;
        assert_failed_handshake(&conns[0]);
        assert_carried_over_tls(&conns[1]);
        let summary = logs.summary(RCPT);
        assert_eq!(summary.field("tls"), Some(want_tls), "{ciphers}");
    }
}

// ---------------------------------------------------------------------------
// [tls] legacy = "off"

#[tokio::test]
async fn legacy_off_defers_dane_and_sends_opportunistic_mail_in_plaintext() {
    let (cert, key) = rsa_identity();
    let record = spki_record(&cert);
    let dest = openssl_dest(cert, key, SslVersion::TLS1_2, CBC).await;
    let off = ["legacy = \"off\""];
    let want = format!(
        "451 4.7.5 TLS handshake with {} failed: {NOTHING_IN_COMMON}; the legacy TLS engine is off ([tls] legacy)",
        dest.peer_as(MX)
    );
    refused(&context(&dest, Some(vec![record]), &off), &want).await;
    let conns = dest.wait_closed(1).await;
    assert_eq!(conns.len(), 1, "{conns:#?}");
    assert_failed_handshake(&conns[0]);

    // No TLSA: the failed handshake is retried in plaintext (Postfix's
    // `may`), as before there was a legacy engine.
    let logs = LogCapture::start();
    delivered(&context(&dest, None, &off)).await;
    let conns = dest.wait_closed(3).await;
    assert_failed_handshake(&conns[1]);
    assert!(!conns[2].tls);
    assert_eq!(conns[2].messages.len(), 1);
    assert_eq!(logs.summary(RCPT).field("tls"), Some("none"));
}

// ---------------------------------------------------------------------------
// What never reaches the legacy engine

#[tokio::test]
async fn a_handshake_broken_off_is_not_retried_with_the_legacy_engine() {
    let logs = LogCapture::start();
    let (cert, _) = rsa_identity();
    let dest = FakeDest::start(DestScript {
        break_tls: true,
        ..DestScript::default()
    })
    .await;
    let ctx = context(&dest, Some(vec![spki_record(&cert)]), &[]);
    let mut s = start_session(&ctx);
    let reply = rcpt_reply(&mut s.client).await;
    assert!(
        reply.starts_with("451 4.7.5 TLS handshake with "),
        "{reply}"
    );
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
    assert_eq!(dest.wait_closed(1).await.len(), 1);
    assert!(!logs.contains("legacy TLS engine"), "{}", logs.dump());
}
