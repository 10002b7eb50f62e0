//! The legacy TLS engine: OpenSSL (the `openssl` crate, tokio-openssl), for
//! the servers rustls cannot talk to: TLS 1.0 and 1.1, CBC and DHE cipher
//! suites, anonymous suites, keys rustls with *ring* does not verify (RSA
//! below 2048 bits, ECDSA P-521, Ed448). It is the same library, with the
//! same settings, an OpenSSL-based MTA such as Postfix uses.
//!
//! It is never the first choice: the connection code tries rustls first and
//! comes here only when that handshake failed for lack of a common
//! protocol version, cipher suite, key exchange or signature algorithm
//! ([`crate::tls::fallback`]). Protection does not change with the engine:
//! - the certificate chain the server presented (leaf first, the rest as
//!   sent) is judged *inside the handshake* by the very rustls verifier the
//!   primary engine would have used (DANE, or unauthenticated), through
//!   OpenSSL's verify callback; its verdict is final (OpenSSL's own chain
//!   checks are ignored: it has no trust store here);
//! - OpenSSL verifies the handshake signatures (ServerKeyExchange,
//!   CertificateVerify) with the leaf's key, as it always does;
//! - where a certificate must be verified, anonymous cipher suites are
//!   not offered and a handshake that ends without a judged certificate is
//!   refused;
//! - no session is resumed (none is ever given to OpenSSL, and no tickets
//!   are asked for), so each connection is judged afresh.
//!
//! What differs is the floor: where TLS is required ([`Floor::Mandatory`])
//! the protocol version is at least `[tls] min_version` and OpenSSL's
//! security level is 2 (no RSA/DH below 2048 bits for key exchange, no
//! SHA-1 signatures: Debian's default, which Postfix inherits);
//! opportunistic connections ([`Floor::Opportunistic`]) take whatever both
//! sides can do down to `[tls] opportunistic_min_version` at security level
//! 0, anonymous suites last, because the alternative is plaintext.

mod failure;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use openssl::ssl::{Ssl, SslContext, SslMethod, SslOptions, SslRef, SslVerifyMode, SslVersion};
use openssl::x509::{X509StoreContext, X509StoreContextRef};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

pub use failure::LegacyFailure;

use super::version::TlsVersion;

/// Which floor applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// TLS is required (DANE, TLS required without authentication, and
    /// any later policy that requires TLS): `min_version`, security level 2.
    Mandatory { min_version: TlsVersion },
    /// TLS is optional (plaintext is the alternative): anything from
    /// `min_version` on, security level 0, anonymous suites last.
    Opportunistic { min_version: TlsVersion },
}

impl Floor {
    /// The floor for a connection that requires TLS or not, from `[tls]`.
    pub fn for_policy(required: bool, tls: &crate::config::Tls) -> Floor {
        if required {
            Floor::Mandatory {
                min_version: tls.min_version,
            }
        } else {
            Floor::Opportunistic {
                min_version: tls.opportunistic_min_version,
            }
        }
    }

    fn min_version(self) -> TlsVersion {
        match self {
            Floor::Mandatory { min_version } | Floor::Opportunistic { min_version } => min_version,
        }
    }

    fn security_level(self) -> u32 {
        match self {
            Floor::Mandatory { .. } => 2,
            Floor::Opportunistic { .. } => 0,
        }
    }
}

/// How one legacy handshake judges the server.
#[derive(Clone)]
pub struct LegacyConfig {
    /// The verifier the primary engine uses for this connection; it judges
    /// the presented chain.
    pub verifier: Arc<dyn ServerCertVerifier>,
    /// The certificate must be verified (DANE, WebPKI): no anonymous
    /// suites, and no handshake completes without the verifier's yes.
    pub authenticate: bool,
    pub floor: Floor,
}

impl std::fmt::Debug for LegacyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyConfig")
            .field("authenticate", &self.authenticate)
            .field("floor", &self.floor)
            .finish()
    }
}

impl LegacyConfig {
    /// DANE: the chain must match the host's TLSA records.
    pub fn dane(verifier: Arc<super::dane::DaneVerifier>, floor: Floor) -> LegacyConfig {
        LegacyConfig {
            verifier,
            authenticate: true,
            floor,
        }
    }

    /// MTA-STS: the chain must be valid for the MX host name under the
    /// WebPKI (`enforce`), or is only observed (`testing`).
    pub fn sts(
        verifier: Arc<super::webpki::StsVerifier>,
        enforce: bool,
        floor: Floor,
    ) -> LegacyConfig {
        LegacyConfig {
            verifier,
            authenticate: enforce,
            floor,
        }
    }

    /// No authentication: opportunistic TLS, or TLS required without it.
    pub fn unauthenticated(floor: Floor) -> LegacyConfig {
        LegacyConfig {
            verifier: Arc::new(super::UnauthenticatedVerifier::new(super::provider())),
            authenticate: false,
            floor,
        }
    }

    /// The TLS 1.2-and-below cipher list offered: everything OpenSSL has
    /// but NULL encryption, in OpenSSL's order (ECDHE and AEAD first);
    /// anonymous suites last, and only when nothing is authenticated.
    fn cipher_list(&self) -> String {
        let anonymous = if self.authenticate {
            "!aNULL"
        } else {
            "+aNULL"
        };
        format!(
            "ALL:!eNULL:{anonymous}:@SECLEVEL={}",
            self.floor.security_level()
        )
    }
}

/// What a legacy handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.2`, as OpenSSL names it.
    pub protocol: String,
    /// OpenSSL's name, e.g. `ECDHE-RSA-AES256-SHA`, `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// No server certificate (an anonymous cipher suite).
    pub anonymous: bool,
}

/// The verifier's verdict on the presented chain, once it was asked.
type Verdict = Arc<Mutex<Option<Result<(), rustls::Error>>>>;

fn ossl_version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls1_0 => SslVersion::TLS1,
        TlsVersion::Tls1_1 => SslVersion::TLS1_1,
        TlsVersion::Tls1_2 => SslVersion::TLS1_2,
        TlsVersion::Tls1_3 => SslVersion::TLS1_3,
    }
}

/// The client context for one handshake.
fn context(config: &LegacyConfig) -> Result<SslContext, openssl::error::ErrorStack> {
    let mut b = SslContext::builder(SslMethod::tls_client())?;
    b.set_min_proto_version(Some(ossl_version(config.floor.min_version())))?;
    b.set_max_proto_version(None)?;
    b.set_cipher_list(&config.cipher_list())?;
    b.set_security_level(config.floor.security_level());
    b.set_options(
        SslOptions::NO_TICKET | SslOptions::NO_COMPRESSION | SslOptions::NO_RENEGOTIATION,
    );
    Ok(b.build())
}

/// Runs the TLS handshake over `plain` with OpenSSL, presenting `sni`
/// (none for an address literal; `ip` names the server to the verifier
/// then). The verifier in `config` judges the presented chain inside the
/// handshake.
pub async fn connect<S>(
    plain: S,
    config: &LegacyConfig,
    sni: Option<&str>,
    ip: IpAddr,
) -> Result<(SslStream<S>, Negotiated), LegacyFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let internal = |e: openssl::error::ErrorStack| LegacyFailure::Other(e.to_string());
    let ctx = context(config).map_err(internal)?;
    let mut ssl = Ssl::new(&ctx).map_err(internal)?;
    let server_name = sni
        .and_then(|n| ServerName::try_from(n.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(ip.into()));
    if let (Some(name), ServerName::DnsName(_)) = (sni, &server_name) {
        ssl.set_hostname(name).map_err(internal)?;
    }
    let verdict: Verdict = Arc::default();
    let judge = judge(config.verifier.clone(), server_name, verdict.clone());
    ssl.set_verify_callback(SslVerifyMode::PEER, judge);
    let mut stream = SslStream::new(ssl, plain).map_err(internal)?;
    let handshake = Pin::new(&mut stream).connect().await;
    let judged = verdict
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    if let Err(e) = handshake {
        return Err(failure::classify(&e, judged, config));
    }
    let ssl = stream.ssl();
    let negotiated = negotiated(ssl);
    if config.authenticate && (negotiated.anonymous || !matches!(judged, Some(Ok(())))) {
        // Never happens with the cipher list above; never to be taken for
        // a verified connection if it did.
        return Err(LegacyFailure::Other(
            "handshake completed without a verified certificate".into(),
        ));
    }
    Ok((stream, negotiated))
}

fn negotiated(ssl: &SslRef) -> Negotiated {
    Negotiated {
        protocol: ssl.version_str().to_owned(),
        cipher: ssl
            .current_cipher()
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "unknown".into()),
        anonymous: ssl.peer_certificate().is_none(),
    }
}

/// The verify callback: on its first call, asks `verifier` about the chain
/// the server presented (OpenSSL calls it once per certificate of the
/// chain it tried to build; the first call decides, later calls repeat
/// the verdict). OpenSSL's own opinion (`preverify_ok`) is ignored: it has
/// no trust anchors here, the verifier is the judge.
fn judge(
    verifier: Arc<dyn ServerCertVerifier>,
    server_name: ServerName<'static>,
    verdict: Verdict,
) -> impl Fn(bool, &mut X509StoreContextRef) -> bool + Send + Sync + 'static {
    move |_preverify_ok, x509| {
        let mut slot = verdict
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(v) = slot.as_ref() {
            return v.is_ok();
        }
        let result = match presented_chain(x509) {
            Some((leaf, rest)) => verifier
                .verify_server_cert(&leaf, &rest, &server_name, &[], UnixTime::now())
                .map(|_| ()),
            None => Err(rustls::Error::NoCertificatesPresented),
        };
        let ok = result.is_ok();
        *slot = Some(result);
        ok
    }
}

/// The chain as the server sent it: leaf, then the rest in its order.
fn presented_chain(
    x509: &X509StoreContextRef,
) -> Option<(CertificateDer<'static>, Vec<CertificateDer<'static>>)> {
    let idx = X509StoreContext::ssl_idx().ok()?;
    let ssl = x509.ex_data(idx)?;
    let chain = ssl.peer_cert_chain()?;
    let mut ders = chain
        .iter()
        .filter_map(|c| c.to_der().ok())
        .map(CertificateDer::from);
    let leaf = ders.next()?;
    Some((leaf, ders.collect()))
}

#[cfg(test)]
mod tests;
