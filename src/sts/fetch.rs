//! Fetching a policy over HTTPS (RFC 8461 §3.3):
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`, with WebPKI
//! validation of the policy host, no redirects, no HTTP caching, a
//! `text/plain` body of at most 64 KiB, and a time limit.
//!
//! The HTTP client is reqwest over danegate's own rustls configuration
//! (`tls::webpki`) and danegate's own resolver (`[dns]`). The [`Fetch`]
//! trait lets tests put a table in its place. Parsing the body is
//! `policy`'s job, deciding when to fetch is `discover`'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::dns::{BoxFuture, Resolver};
use crate::sts::policy::{PolicyError, MAX_BODY};
use crate::sts::PolicyFailure;
use crate::tls::webpki::{certificate_problem, https_config, Roots};

/// Where the policy of `domain` is published.
pub fn url(domain: &str) -> String {
    format!("https://mta-sts.{domain}/.well-known/mta-sts.txt")
}

/// Why no policy could be had from the policy host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("{url}: the certificate of {host} is not valid: {cause}")]
    Certificate {
        url: String,
        host: String,
        cause: String,
    },
    #[error("{url}: no complete answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: answered HTTP {status} redirecting to {location:?}; a policy is not fetched through a redirect (RFC 8461 §3.3)")]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    #[error("{url}: answered HTTP {status}, not 200")]
    Status { url: String, status: u16 },
    #[error("{url}: Content-Type is {found:?}, not text/plain")]
    ContentType { url: String, found: String },
    #[error("{url}: the body is larger than the limit of {limit} octets")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: reading the body failed: {cause}")]
    Body { url: String, cause: String },
    #[error("{url}: invalid policy: {error}")]
    Invalid { url: String, error: PolicyError },
}

impl FetchError {
    /// The TLS-RPT result type (RFC 8460 §4.3.2.2) this failure counts as.
    pub fn kind(&self) -> PolicyFailure {
        match self {
            FetchError::Certificate { .. } => PolicyFailure::WebPkiInvalid,
            FetchError::Invalid { .. } => PolicyFailure::Invalid,
            _ => PolicyFailure::FetchError,
        }
    }
}

/// Fetches policy bodies. The body is returned unparsed.
pub trait Fetch: Send + Sync {
    fn fetch<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>>;
}

/// The real fetcher: HTTPS with reqwest.
pub struct HttpsFetcher {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpsFetcher {
    /// A client that trusts `roots`, resolves through `resolver` and
    /// gives up on a fetch after `timeout`.
    pub fn new(
        roots: &Roots,
        resolver: Arc<dyn Resolver>,
        timeout: Duration,
    ) -> Result<HttpsFetcher, String> {
        HttpsFetcher::on_port(roots, resolver, timeout, 443)
    }

    /// The same, connecting to `port` instead of HTTPS's 443 (the URL
    /// stays the RFC's): for tests that cannot bind port 443.
    pub fn on_port(
        roots: &Roots,
        resolver: Arc<dyn Resolver>,
        timeout: Duration,
        port: u16,
    ) -> Result<HttpsFetcher, String> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(https_config(roots))
            .dns_resolver(Arc::new(ViaResolver(resolver, port)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .http1_only()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("danegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTPS client for MTA-STS: {}", chain(&e)))?;
        Ok(HttpsFetcher { client, timeout })
    }

    async fn get(&self, domain: &str) -> Result<Vec<u8>, FetchError> {
        let url = url(domain);
        let host = format!("mta-sts.{domain}");
        let fail = |e: reqwest::Error| self.classify(&url, &host, e);
        let mut resp = self.client.get(&url).send().await.map_err(fail)?;
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(FetchError::Redirect {
                url,
                status,
                location,
            });
        }
        if status != 200 {
            return Err(FetchError::Status { url, status });
        }
        let found = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_text_plain(&found) {
            return Err(FetchError::ContentType { url, found });
        }
        let too_large = || FetchError::TooLarge {
            url: url.clone(),
            limit: MAX_BODY,
        };
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => return Err(self.timeout_error(&url)),
                Err(e) => {
                    return Err(FetchError::Body {
                        url,
                        cause: chain(&e),
                    })
                }
            }
        }
    }

    fn timeout_error(&self, url: &str) -> FetchError {
        FetchError::Timeout {
            url: url.to_owned(),
            secs: self.timeout.as_secs(),
        }
    }

    fn classify(&self, url: &str, host: &str, e: reqwest::Error) -> FetchError {
        if let Some(cause) = certificate_problem(&e) {
            return FetchError::Certificate {
                url: url.to_owned(),
                host: host.to_owned(),
                cause,
            };
        }
        if e.is_timeout() {
            return self.timeout_error(url);
        }
        FetchError::Connect {
            url: url.to_owned(),
            cause: chain(&e),
        }
    }
}

impl Fetch for HttpsFetcher {
    fn fetch<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(self.get(domain))
    }
}

/// `text/plain`, with or without parameters (`; charset=utf-8`).
fn is_text_plain(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// An error and its causes, "a: b: c", without repeating a cause that
/// its parent already quotes.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// reqwest's name resolution through danegate's resolver, so that a
/// policy host is found where `[dns]` says, as MX hosts are.
struct ViaResolver(Arc<dyn Resolver>, u16);

impl reqwest::dns::Resolve for ViaResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let port = self.1;
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            let mut addrs: Vec<SocketAddr> = Vec::new();
            let mut failure = None;
            match resolver.ipv6(&host).await {
                Ok(l) => addrs.extend(
                    l.records()
                        .iter()
                        .map(|a| SocketAddr::new((*a).into(), port)),
                ),
                Err(e) => failure = Some(e),
            }
            match resolver.ipv4(&host).await {
                Ok(l) => addrs.extend(
                    l.records()
                        .iter()
                        .map(|a| SocketAddr::new((*a).into(), port)),
                ),
                Err(e) => failure = Some(e),
            }
            if addrs.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = match failure {
                    Some(f) => Box::new(f),
                    None => format!("{host} has no address records").into(),
                };
                return Err(e);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            "text/plain",
            "text/plain; charset=utf-8",
            "Text/Plain ;charset=US-ASCII",
        ] {
            assert!(is_text_plain(ok), "{ok}");
        }
        for bad in [
            "",
            "text/html",
            "application/octet-stream",
            "text/plainx",
            "text",
        ] {
            assert!(!is_text_plain(bad), "{bad}");
        }
    }

    #[test]
    fn the_well_known_url() {
        assert_eq!(
            url("example.com"),
            "https://mta-sts.example.com/.well-known/mta-sts.txt"
        );
    }

    #[test]
    fn failures_count_as_tls_rpt_result_types() {
        let u = || "https://mta-sts.example.com/.well-known/mta-sts.txt".to_owned();
        let cert = FetchError::Certificate {
            url: u(),
            host: "mta-sts.example.com".into(),
            cause: "x".into(),
        };
        assert_eq!(cert.kind(), PolicyFailure::WebPkiInvalid);
        let redirect = FetchError::Redirect {
            url: u(),
            status: 301,
            location: "https://elsewhere.example/".into(),
        };
        assert_eq!(redirect.kind(), PolicyFailure::FetchError);
        assert_eq!(
            redirect.to_string(),
            "https://mta-sts.example.com/.well-known/mta-sts.txt: answered HTTP 301 redirecting to \"https://elsewhere.example/\"; a policy is not fetched through a redirect (RFC 8461 §3.3)"
        );
        let invalid = FetchError::Invalid {
            url: u(),
            error: crate::sts::policy::parse(b"version: STSv1\nmode: x\n").unwrap_err(),
        };
        assert_eq!(invalid.kind(), PolicyFailure::Invalid);
        assert_eq!(
            invalid.to_string(),
            "https://mta-sts.example.com/.well-known/mta-sts.txt: invalid policy: line 2: mode \"x\" is not one of \"enforce\", \"testing\", \"none\""
        );
    }
}
