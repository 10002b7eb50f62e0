//! Test fixtures: certificates of every key type and in-process OpenSSL
//! servers with chosen TLS settings (versions, cipher suites, security
//! level, a key that does not belong to the certificate), so that both TLS
//! engines can be driven through whole handshakes over in-memory pipes.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVersion};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Name, X509};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    Rsa(u32),
    Ec(&'static str),
    Ed25519,
    Ed448,
}

pub fn key(kind: TestKey) -> PKey<Private> {
    match kind {
        TestKey::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap(),
        TestKey::Ec(curve) => {
            let nid = match curve {
                "P-256" => Nid::X9_62_PRIME256V1,
                "P-384" => Nid::SECP384R1,
                "P-521" => Nid::SECP521R1,
                other => panic!("curve {other}"),
            };
            let group = EcGroup::from_curve_name(nid).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        }
        TestKey::Ed25519 => PKey::generate_ed25519().unwrap(),
        TestKey::Ed448 => PKey::generate_ed448().unwrap(),
    }
}

/// A self-signed certificate for `name` (SAN dNSName), DER, and its key.
pub fn self_signed(kind: TestKey, name: &str) -> (Vec<u8>, PKey<Private>) {
    let k = key(kind);
    let cert = certificate(&k, name);
    (cert.to_der().unwrap(), k)
}

pub fn certificate(k: &PKey<Private>, name: &str) -> X509 {
    let mut subject = X509Name::builder().unwrap();
    subject.append_entry_by_text("CN", name).unwrap();
    let subject = subject.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(100, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(&subject).unwrap();
    b.set_pubkey(k).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + 86_400).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns(name)
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    let digest = if matches!(k.id(), Id::ED25519 | Id::ED448) {
        MessageDigest::null()
    } else {
        MessageDigest::sha256()
    };
    b.sign(k, digest).unwrap();
    b.build()
}

/// A private key with the public half of `real` (RSA) and the private
/// half of another key: OpenSSL loads it next to `real`'s certificate and
/// signs garbage with it, as a server replaying a certificate would.
pub fn forged(real: &PKey<Private>) -> PKey<Private> {
    let real = real.rsa().unwrap();
    let other = Rsa::generate(real.size() * 8).unwrap();
    let d = |b: &openssl::bn::BigNumRef| b.to_owned().unwrap();
    let forged = Rsa::from_private_components(
        d(real.n()),
        d(real.e()),
        d(other.d()),
        d(other.p().unwrap()),
        d(other.q().unwrap()),
        d(other.dmp1().unwrap()),
        d(other.dmq1().unwrap()),
        d(other.iqmp().unwrap()),
    )
    .unwrap();
    PKey::from_rsa(forged).unwrap()
}

/// What an in-process OpenSSL server offers.
pub struct ServerTls<'a> {
    pub cert: &'a X509,
    pub key: &'a PKey<Private>,
    pub min: Option<SslVersion>,
    pub max: Option<SslVersion>,
    /// TLS 1.2 and below (OpenSSL cipher string, may carry `@SECLEVEL=`).
    pub ciphers: Option<&'a str>,
}

impl<'a> ServerTls<'a> {
    pub fn new(cert: &'a X509, key: &'a PKey<Private>) -> Self {
        ServerTls {
            cert,
            key,
            min: None,
            max: None,
            ciphers: None,
        }
    }
}

/// Accepts one TLS handshake on `io` as the server `tls` describes; the
/// result (the stream, or OpenSSL's error text).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    tls: &ServerTls<'_>,
) -> Result<SslStream<S>, String> {
    let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
    // Like a receiver whose operator lowered OpenSSL's floor (Postfix's
    // `@SECLEVEL=0` in a cipher list): every key size and version works.
    b.set_security_level(0);
    // DHE suites need parameters (RFC 5114's 2048-bit group).
    b.set_tmp_dh(&openssl::dh::Dh::get_2048_256().unwrap())
        .unwrap();
    b.set_min_proto_version(tls.min.or(Some(SslVersion::TLS1)))
        .unwrap();
    b.set_max_proto_version(tls.max).unwrap();
    b.set_cipher_list(tls.ciphers.unwrap_or("ALL:@SECLEVEL=0"))
        .unwrap();
    // The forged key shares the certificate's public half, so OpenSSL's
    // pairing check passes.
    b.set_private_key(tls.key).unwrap();
    b.set_certificate(tls.cert).unwrap();
    let ctx = b.build();
    let ssl = Ssl::new(&ctx).unwrap();
    let mut s = SslStream::new(ssl, io).unwrap();
    std::pin::Pin::new(&mut s)
        .accept()
        .await
        .map_err(|e| e.to_string())?;
    Ok(s)
}
