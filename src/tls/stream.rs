//! The outbound connection's byte stream before and after STARTTLS, and
//! the handshake that upgrades it, with either TLS engine: rustls (the
//! primary one) or OpenSSL (the legacy one, [`super::legacy`]). The SMTP
//! client drives the protocol around it (STARTTLS, its reply, the timeout)
//! and hands over a [`Connector`]; this file holds the engines' stream
//! types, so that the client names none.
//!
//! A [`Connector`] remembers why a primary handshake failed when rustls
//! and the server had nothing in common ([`Connector::mismatch`]): that is
//! what the connection code asks before it tries the legacy engine.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_openssl::SslStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::fallback::{self, Mismatch};
use super::legacy::{self, LegacyConfig};
use super::TlsState;

/// A stream before or after STARTTLS.
pub enum MaybeTls<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// TLS by the legacy engine (OpenSSL).
    Legacy(Box<SslStream<S>>),
    /// Only while the handshake owns the stream.
    Gone,
}

/// The engine and settings for one STARTTLS handshake.
#[derive(Clone)]
pub struct Connector {
    engine: Engine,
    /// Set when a primary handshake failed for lack of anything in common.
    mismatch: Arc<Mutex<Option<Mismatch>>>,
}

#[derive(Clone)]
enum Engine {
    Primary(Arc<ClientConfig>),
    Legacy(LegacyConfig),
}

impl Connector {
    /// rustls with this configuration (its verifier judges the chain).
    pub fn primary(config: Arc<ClientConfig>) -> Connector {
        Connector {
            engine: Engine::Primary(config),
            mismatch: Arc::default(),
        }
    }

    /// OpenSSL, judged by the verifier in `config`.
    pub fn legacy(config: LegacyConfig) -> Connector {
        Connector {
            engine: Engine::Legacy(config),
            mismatch: Arc::default(),
        }
    }

    /// After a failed handshake with the primary engine: what rustls and
    /// the server had no common ground on, when that was the cause (see
    /// [`fallback`]); `None` for any other failure.
    pub fn mismatch(&self) -> Option<Mismatch> {
        self.mismatch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Legacy(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Legacy(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Legacy(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Legacy(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl<S> MaybeTls<S> {
    /// The certificate chain the server presented (leaf first), when TLS
    /// is active.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        match self {
            MaybeTls::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect()),
            MaybeTls::Legacy(s) => s.ssl().peer_cert_chain().map(|chain| {
                chain
                    .iter()
                    .filter_map(|c| c.to_der().ok())
                    .map(CertificateDer::from)
                    .collect()
            }),
            _ => None,
        }
    }
}

/// Runs the TLS handshake over `plain` (after the server's 220 to
/// STARTTLS) with the connector's engine, presenting `sni` (the peer's
/// address when there is no name). Returns the upgraded stream and its
/// (not yet authenticated) state, or the cause of the failure in words for
/// the operator. The verifier in the connector decides whether the
/// certificate is acceptable.
pub async fn upgrade<S>(
    plain: S,
    connector: &Connector,
    sni: Option<&str>,
    ip: IpAddr,
) -> Result<(MaybeTls<S>, TlsState), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match &connector.engine {
        Engine::Primary(config) => {
            let name = sni
                .and_then(|n| ServerName::try_from(n.to_owned()).ok())
                .unwrap_or_else(|| ServerName::IpAddress(ip.into()));
            let stream = TlsConnector::from(config.clone())
                .connect(name, plain)
                .await
                .map_err(|e| {
                    let mismatch = rustls_error(&e).and_then(fallback::mismatch);
                    let cause = match &mismatch {
                        Some(m) => m.to_string(),
                        None => tls_cause(&e),
                    };
                    *connector
                        .mismatch
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = mismatch;
                    cause
                })?;
            let state = TlsState::untrusted(stream.get_ref().1);
            Ok((MaybeTls::Tls(Box::new(stream)), state))
        }
        Engine::Legacy(config) => {
            let (stream, negotiated) = legacy::connect(plain, config, sni, ip)
                .await
                .map_err(|e| e.to_string())?;
            Ok((
                MaybeTls::Legacy(Box::new(stream)),
                TlsState::legacy(&negotiated),
            ))
        }
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

fn tls_cause(e: &io::Error) -> String {
    use rustls::{CertificateError, Error as TlsError};
    match e.get_ref() {
        Some(inner) => match inner.downcast_ref::<TlsError>() {
            // The handshake signature does not verify with the presented
            // certificate's key, a key type rustls supports (others are a
            // `Mismatch`): the server does not hold that key.
            Some(TlsError::InvalidCertificate(CertificateError::BadSignature)) => {
                "the server's handshake signature does not verify with its certificate's key (it does not hold that key)".into()
            }
            _ => inner.to_string(),
        },
        None => e.to_string(),
    }
}
