//! Prometheus metrics (prometheus-client, OpenMetrics text format) and the
//! small HTTP endpoint that serves them (`[metrics] listen`).
//!
//! One process-wide registry: counters outlive configuration reloads, and
//! every part of danegate counts into it through [`global`]. This module
//! only counts and serves; what is counted is decided where it happens.
//!
//! | metric | labels |
//! |---|---|
//! | `danegate_connections_total` | `result`: accepted, not_allowed, busy, shutting_down |
//! | `danegate_sessions_active` | |
//! | `danegate_transactions_total` | `outcome`: delivered, deferred, rejected |
//! | `danegate_recipients_total` | `outcome`, `reason`: none, dane_mismatch, sts_certificate, sts_starttls_missing, sts_mx_not_allowed, starttls_missing, tls_failed, dns_failed, dns_bogus, connect_failed, connection_lost, remote_4xx, remote_5xx, policy, no_mail_domain, other_domain, message_refused, client_gone, other |
//! | `danegate_tls_connections_total` | `state`: verified_dane, verified_sts, trusted, untrusted, anonymous, plaintext |
//! | `danegate_tls_legacy_connections_total` | `state`, `protocol` (`TLSv1.2`), `cipher` (OpenSSL's name): the outbound connections the legacy TLS engine (OpenSSL) made |
//! | `danegate_tls_fallbacks_total` | `reason`: version, parameters, key: rustls handshakes that failed for lack of anything in common with the server (tried again with the legacy engine when `[tls] legacy` is on) |
//! | `danegate_dane_results_total` | `result` (per host tried): ok, mismatch, unusable, not_applicable, insecure, lookup_failed |
//! | `danegate_sts_policy_fetches_total` | `result` (MTA-STS policy fetches): ok, sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid |
//! | `danegate_sts_results_total` | `result` (per host tried under an MTA-STS policy): verified, certificate_invalid, starttls_missing, mx_not_allowed, testing_would_defer |
//! | `danegate_would_defer_total` | `reason` (test mode: what enforcement would have deferred) |
//! | `danegate_dns_lookup_seconds` | histogram of DNS lookups that were not cached |
//! | `danegate_relay_seconds` | histogram of transactions, MAIL FROM to the final reply |

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeReasonLabel {
    pub outcome: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LegacyLabel {
    pub state: String,
    pub protocol: String,
    pub cipher: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    connections: Family<ResultLabel, Counter>,
    pub sessions_active: Gauge,
    transactions: Family<OutcomeLabel, Counter>,
    recipients: Family<OutcomeReasonLabel, Counter>,
    tls: Family<StateLabel, Counter>,
    tls_legacy: Family<LegacyLabel, Counter>,
    tls_fallbacks: Family<ReasonLabel, Counter>,
    dane: Family<ResultLabel, Counter>,
    would_defer: Family<ReasonLabel, Counter>,
    sts_fetches: Family<ResultLabel, Counter>,
    sts: Family<ResultLabel, Counter>,
    dns_seconds: Histogram,
    relay_seconds: Histogram,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("danegate");
        let connections = Family::<ResultLabel, Counter>::default();
        registry.register(
            "connections",
            "Inbound connections by result",
            connections.clone(),
        );
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Inbound sessions in progress",
            sessions_active.clone(),
        );
        let transactions = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "transactions",
            "Mail transactions by outcome",
            transactions.clone(),
        );
        let recipients = Family::<OutcomeReasonLabel, Counter>::default();
        registry.register(
            "recipients",
            "Recipients by outcome and reason",
            recipients.clone(),
        );
        let tls = Family::<StateLabel, Counter>::default();
        registry.register(
            "tls_connections",
            "Outbound connections by TLS state",
            tls.clone(),
        );
        let tls_legacy = Family::<LegacyLabel, Counter>::default();
        registry.register(
            "tls_legacy_connections",
            "Outbound connections made by the legacy TLS engine (OpenSSL), by TLS state, protocol and cipher",
            tls_legacy.clone(),
        );
        let tls_fallbacks = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tls_fallbacks",
            "rustls handshakes that failed for lack of a common version, cipher suite, key exchange or signature algorithm",
            tls_fallbacks.clone(),
        );
        let dane = Family::<ResultLabel, Counter>::default();
        registry.register(
            "dane_results",
            "DANE results per destination host tried",
            dane.clone(),
        );
        let would_defer = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "would_defer",
            "Test mode: deliveries enforcement would have deferred",
            would_defer.clone(),
        );
        let sts_fetches = Family::<ResultLabel, Counter>::default();
        registry.register(
            "sts_policy_fetches",
            "MTA-STS policy fetches by result (TLS-RPT result types for failures)",
            sts_fetches.clone(),
        );
        let sts = Family::<ResultLabel, Counter>::default();
        registry.register(
            "sts_results",
            "MTA-STS results per destination host tried under a policy",
            sts.clone(),
        );
        let dns_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "dns_lookup_seconds",
            "DNS lookups not answered from the cache",
            dns_seconds.clone(),
        );
        let relay_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 16));
        registry.register(
            "relay_seconds",
            "Transactions, from MAIL FROM to the final reply",
            relay_seconds.clone(),
        );
        Metrics {
            registry,
            connections,
            sessions_active,
            transactions,
            recipients,
            tls,
            tls_legacy,
            tls_fallbacks,
            dane,
            would_defer,
            sts_fetches,
            sts,
            dns_seconds,
            relay_seconds,
        }
    }

    pub fn connection(&self, result: &str) {
        self.connections
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn transaction(&self, outcome: &str, elapsed: Duration) {
        self.transactions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
        self.relay_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn recipient(&self, outcome: &str, reason: &str) {
        self.recipients
            .get_or_create(&OutcomeReasonLabel {
                outcome: outcome.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn tls(&self, state: &str) {
        self.tls
            .get_or_create(&StateLabel {
                state: state.into(),
            })
            .inc();
    }

    /// A connection the legacy TLS engine made, in its TLS state.
    pub fn tls_legacy(&self, state: &str, protocol: &str, cipher: &str) {
        self.tls_legacy
            .get_or_create(&LegacyLabel {
                state: state.into(),
                protocol: protocol.into(),
                cipher: cipher.into(),
            })
            .inc();
    }

    /// A rustls handshake that had nothing in common with the server.
    pub fn tls_fallback(&self, reason: &str) {
        self.tls_fallbacks
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn dane(&self, result: &str) {
        self.dane
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn would_defer(&self, reason: &str) {
        self.would_defer
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn sts_fetch(&self, result: &str) {
        self.sts_fetches
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn sts(&self, result: &str) {
        self.sts
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn dns_lookup(&self, elapsed: Duration) {
        self.dns_seconds.observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
/// One inbound session in `sessions_active`: counted up when made, down
/// when dropped, so the gauge is right however a session ends.
pub struct ActiveSession(());

impl ActiveSession {
    #[allow(clippy::new_without_default)]
    pub fn new() -> ActiveSession {
        global().sessions_active.inc();
        ActiveSession(())
    }
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        global().sessions_active.dec();
    }
}

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Longest request head read from a scraper.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves `GET /metrics` (any path, in fact) until the task is dropped.
pub async fn serve(listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!("metrics on http://{addr}/metrics");
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream)).await;
                });
            }
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    // Read the request head (bounded); its content does not matter.
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut filled = 0;
    while filled < buf.len() {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
        if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let body = global().encode();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_counted_down_however_it_ends() {
        let active = || global().sessions_active.get();
        let before = active();
        {
            let _s = ActiveSession::new();
            assert_eq!(active(), before + 1);
        }
        assert_eq!(active(), before);
        let panicked = std::panic::catch_unwind(|| {
            let _s = ActiveSession::new();
            panic!("a bug in a session");
        });
        assert!(panicked.is_err());
        assert_eq!(active(), before);
    }
}
