//! MTA-STS policy fetches over real HTTPS (RFC 8461 §3.3): an
//! in-process HTTPS server with certificates of a test CA made by rcgen,
//! reqwest with danegate's WebPKI configuration on the other side. Every
//! refusal the RFC asks for: redirects, other statuses, other content
//! types, oversized bodies (announced or not), untrusted or misnamed
//! certificates, a server that stalls, nothing listening.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use common::{bounded, TableResolver};
use danegate::dns::Security;
use danegate::sts::fetch::{Fetch, FetchError, HttpsFetcher};
use danegate::sts::PolicyFailure;
use danegate::tls::webpki::Roots;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const DOMAIN: &str = "example.com";
const URL: &str = "https://mta-sts.example.com/.well-known/mta-sts.txt";
const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 86400\r\n";

/// A test CA and certificates it issues.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "danegate test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    fn roots(&self) -> Roots {
        Roots::from_pem(self.ca.pem().as_bytes()).unwrap()
    }

    /// A leaf for `names`, issued by the CA.
    fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (
            vec![cert.der().clone(), self.ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// A self-signed certificate for `names` (no CA behind it).
fn self_signed(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    (
        vec![ck.cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der())),
    )
}

/// What the server does after reading the request.
#[derive(Clone)]
enum Answer {
    /// These bytes, then close.
    Raw(Vec<u8>),
    /// Nothing, ever.
    Stall,
}

fn http(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Answer::Raw(bytes)
}

fn ok_text(body: &[u8]) -> Answer {
    let len = body.len().to_string();
    http(
        "200 OK",
        &[
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", &len),
        ],
        body,
    )
}

/// Serves `answer` to every connection with `identity`; returns its port
/// and the requests it read.
async fn serve(
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    answer: Answer,
) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let config = rustls::ServerConfig::builder_with_provider(danegate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.0, identity.1)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let answer = answer.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).into_owned());
                match answer {
                    Answer::Raw(bytes) => {
                        let _ = tls.write_all(&bytes).await;
                        let _ = tls.shutdown().await;
                    }
                    Answer::Stall => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    (port, seen)
}

fn fetcher(roots: &Roots, port: u16, timeout: Duration) -> HttpsFetcher {
    let dns = TableResolver::new().host(
        "mta-sts.example.com",
        &[Ipv4Addr::LOCALHOST],
        Security::Insecure,
    );
    HttpsFetcher::on_port(roots, Arc::new(dns), timeout, port).unwrap()
}

async fn fetch_from(identity_names: &[&str], answer: Answer) -> Result<Vec<u8>, FetchError> {
    let pki = Pki::new();
    let (port, _) = serve(pki.leaf(identity_names), answer).await;
    let f = fetcher(&pki.roots(), port, Duration::from_secs(5));
    bounded("the fetch", f.fetch(DOMAIN)).await
}

#[tokio::test]
async fn a_valid_policy_is_fetched_with_a_plain_get() {
    let pki = Pki::new();
    let (port, seen) = serve(
        pki.leaf(&["mta-sts.example.com"]),
        ok_text(POLICY.as_bytes()),
    )
    .await;
    let f = fetcher(&pki.roots(), port, Duration::from_secs(5));
    let body = bounded("the fetch", f.fetch(DOMAIN)).await.unwrap();
    assert_eq!(body, POLICY.as_bytes());
    let req = seen.lock().unwrap()[0].clone();
    assert!(
        req.starts_with("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.to_ascii_lowercase()
            .contains("\r\nhost: mta-sts.example.com"),
        "{req}"
    );
}

#[tokio::test]
async fn a_wildcard_certificate_for_the_policy_host_is_valid() {
    let got = fetch_from(&["*.example.com"], ok_text(POLICY.as_bytes())).await;
    assert_eq!(got.unwrap(), POLICY.as_bytes());
}

#[tokio::test]
async fn a_redirect_is_refused_and_not_followed() {
    let got = fetch_from(
        &["mta-sts.example.com"],
        http(
            "301 Moved Permanently",
            &[
                ("Location", "https://policy.example.net/sts.txt"),
                ("Content-Length", "0"),
            ],
            b"",
        ),
    )
    .await;
    let e = got.unwrap_err();
    assert_eq!(
        e,
        FetchError::Redirect {
            url: URL.into(),
            status: 301,
            location: "https://policy.example.net/sts.txt".into()
        }
    );
    assert_eq!(e.kind(), PolicyFailure::FetchError);
}

#[tokio::test]
async fn statuses_other_than_200_are_refused() {
    for status in [
        "404 Not Found",
        "500 Internal Server Error",
        "204 No Content",
    ] {
        let got = fetch_from(
            &["mta-sts.example.com"],
            http(status, &[("Content-Length", "0")], b""),
        )
        .await;
        let code: u16 = status[..3].parse().unwrap();
        assert_eq!(
            got,
            Err(FetchError::Status {
                url: URL.into(),
                status: code
            }),
            "{status}"
        );
    }
}

#[tokio::test]
async fn other_content_types_are_refused() {
    for ct in ["text/html", "application/octet-stream"] {
        let len = POLICY.len().to_string();
        let got = fetch_from(
            &["mta-sts.example.com"],
            http(
                "200 OK",
                &[("Content-Type", ct), ("Content-Length", &len)],
                POLICY.as_bytes(),
            ),
        )
        .await;
        assert_eq!(
            got,
            Err(FetchError::ContentType {
                url: URL.into(),
                found: ct.into()
            }),
            "{ct}"
        );
    }
    let len = POLICY.len().to_string();
    let got = fetch_from(
        &["mta-sts.example.com"],
        http("200 OK", &[("Content-Length", &len)], POLICY.as_bytes()),
    )
    .await;
    assert_eq!(
        got,
        Err(FetchError::ContentType {
            url: URL.into(),
            found: String::new()
        })
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_announced_or_not() {
    let big = vec![b'x'; 64 * 1024 + 1];
    let too_large = Err(FetchError::TooLarge {
        url: URL.into(),
        limit: 65536,
    });
    // Announced by Content-Length.
    assert_eq!(
        fetch_from(&["mta-sts.example.com"], ok_text(&big)).await,
        too_large
    );
    // Not announced: the body ends when the connection closes.
    let unannounced = http("200 OK", &[("Content-Type", "text/plain")], &big);
    assert_eq!(
        fetch_from(&["mta-sts.example.com"], unannounced).await,
        too_large
    );
    // Exactly the limit is fine.
    let limit = vec![b'x'; 64 * 1024];
    let exact = http("200 OK", &[("Content-Type", "text/plain")], &limit);
    assert_eq!(
        fetch_from(&["mta-sts.example.com"], exact)
            .await
            .unwrap()
            .len(),
        65536
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_webpki_invalid() {
    let e = fetch_from(&["www.example.com"], ok_text(POLICY.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), PolicyFailure::WebPkiInvalid, "{e}");
    assert_eq!(
        e.to_string(),
        format!("{URL}: the certificate of mta-sts.example.com is not valid: the certificate is not valid for the name (no matching SAN dNSName)")
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_webpki_invalid() {
    let pki = Pki::new();
    let (port, _) = serve(
        self_signed(&["mta-sts.example.com"]),
        ok_text(POLICY.as_bytes()),
    )
    .await;
    let f = fetcher(&pki.roots(), port, Duration::from_secs(5));
    let e = bounded("the fetch", f.fetch(DOMAIN)).await.unwrap_err();
    assert_eq!(e.kind(), PolicyFailure::WebPkiInvalid, "{e}");
    assert!(
        e.to_string().ends_with("does not lead to a trusted root"),
        "{e}"
    );
    // Without any root, even the CA's certificate fails.
    let (port, _) = serve(
        pki.leaf(&["mta-sts.example.com"]),
        ok_text(POLICY.as_bytes()),
    )
    .await;
    let f = fetcher(&Roots::none(), port, Duration::from_secs(5));
    let e = bounded("the fetch", f.fetch(DOMAIN)).await.unwrap_err();
    assert_eq!(e.kind(), PolicyFailure::WebPkiInvalid, "{e}");
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let pki = Pki::new();
    let (port, _) = serve(pki.leaf(&["mta-sts.example.com"]), Answer::Stall).await;
    let f = fetcher(&pki.roots(), port, Duration::from_secs(1));
    let e = bounded("the fetch", f.fetch(DOMAIN)).await.unwrap_err();
    assert_eq!(
        e,
        FetchError::Timeout {
            url: URL.into(),
            secs: 1
        }
    );
}

#[tokio::test]
async fn nothing_listening_is_a_fetch_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = fetcher(&Pki::new().roots(), port, Duration::from_secs(2));
    let e = bounded("the fetch", f.fetch(DOMAIN)).await.unwrap_err();
    assert!(matches!(e, FetchError::Connect { .. }), "{e:?}");
    assert_eq!(e.kind(), PolicyFailure::FetchError);
}

#[tokio::test]
async fn a_policy_host_without_address_is_a_fetch_error() {
    let f = HttpsFetcher::new(
        &Pki::new().roots(),
        Arc::new(TableResolver::new()),
        Duration::from_secs(2),
    )
    .unwrap();
    let e = bounded("the fetch", f.fetch(DOMAIN)).await.unwrap_err();
    assert!(matches!(e, FetchError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("mta-sts.example.com"), "{e}");
}
