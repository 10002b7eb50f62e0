//! The outbound connection's byte stream before and after STARTTLS, and
//! the handshake that upgrades it. The SMTP client drives the protocol
//! around it (STARTTLS, its reply, the timeout); this file holds the
//! rustls and tokio-rustls types it needs, so that the client names none.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::TlsState;

/// A stream before or after STARTTLS.
pub enum MaybeTls<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while the handshake owns the stream.
    Gone,
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
            MaybeTls::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
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
            _ => None,
        }
    }
}

/// Runs the TLS handshake over `plain` (after the server's 220 to
/// STARTTLS), presenting `sni` (the peer's address when there is no name).
/// Returns the upgraded stream and its (not yet authenticated) state, or
/// the cause of the failure in words for the operator. The verifier
/// inside `config` decides whether the certificate is acceptable.
pub async fn upgrade<S>(
    plain: S,
    config: &Arc<ClientConfig>,
    sni: Option<&str>,
    ip: IpAddr,
) -> Result<(MaybeTls<S>, TlsState), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = sni
        .and_then(|n| ServerName::try_from(n.to_owned()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(ip.into()));
    let connector = TlsConnector::from(config.clone());
    let stream = connector
        .connect(name, plain)
        .await
        .map_err(|e| tls_cause(&e))?;
    let state = TlsState::untrusted(stream.get_ref().1);
    Ok((MaybeTls::Tls(Box::new(stream)), state))
}

fn tls_cause(e: &io::Error) -> String {
    use rustls::{CertificateError, Error as TlsError};
    match e.get_ref() {
        Some(inner) => match inner.downcast_ref::<TlsError>() {
            // The handshake signature does not verify with the presented
            // certificate's key: the server does not hold that key.
            Some(TlsError::InvalidCertificate(CertificateError::BadSignature)) => {
                "the server's handshake signature does not verify with its certificate's key (it does not hold that key)".into()
            }
            _ => inner.to_string(),
        },
        None => e.to_string(),
    }
}
