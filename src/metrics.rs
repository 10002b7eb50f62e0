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
//! | `danegate_tlsrpt_reports_total` | `method`: https, mailto; `result`: sent, failed (TLS reports, RFC 8460, per destination and attempt) |
//! | `danegate_tlsrpt_outcomes_dropped_total` | | (TLS reporting: session outcomes not recorded because the state database did not keep up) |
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodResultLabel {
    pub method: String,
    pub result: String,
}

/// The metrics as a table: each field with its type, how it is made, its
/// name (under `danegate_`) and its help text. Declares [`Metrics`] and
/// `Metrics::new`, which registers every one.
macro_rules! metrics_table {
    ($($vis:vis $field:ident: $ty:ty = $make:expr, $name:literal, $help:literal;)*) => {
        pub struct Metrics {
            registry: Registry,
            $($vis $field: $ty,)*
        }

        impl Metrics {
            fn new() -> Metrics {
                let mut registry = Registry::with_prefix("danegate");
                $(
                    let $field: $ty = $make;
                    registry.register($name, $help, $field.clone());
                )*
                Metrics { registry, $($field,)* }
            }
        }
    };
}

#[rustfmt::skip]
metrics_table! {
    connections: Family<ResultLabel, Counter> = Family::<ResultLabel, Counter>::default(), "connections", "Inbound connections by result";
    pub sessions_active: Gauge = Gauge::default(), "sessions_active", "Inbound sessions in progress";
    transactions: Family<OutcomeLabel, Counter> = Family::<OutcomeLabel, Counter>::default(), "transactions", "Mail transactions by outcome";
    recipients: Family<OutcomeReasonLabel, Counter> = Family::<OutcomeReasonLabel, Counter>::default(), "recipients", "Recipients by outcome and reason";
    tls: Family<StateLabel, Counter> = Family::<StateLabel, Counter>::default(), "tls_connections", "Outbound connections by TLS state";
    tls_legacy: Family<LegacyLabel, Counter> = Family::<LegacyLabel, Counter>::default(), "tls_legacy_connections", "Outbound connections made by the legacy TLS engine (OpenSSL), by TLS state, protocol and cipher";
    tls_fallbacks: Family<ReasonLabel, Counter> = Family::<ReasonLabel, Counter>::default(), "tls_fallbacks", "rustls handshakes that failed for lack of a common version, cipher suite, key exchange or signature algorithm";
    dane: Family<ResultLabel, Counter> = Family::<ResultLabel, Counter>::default(), "dane_results", "DANE results per destination host tried";
    would_defer: Family<ReasonLabel, Counter> = Family::<ReasonLabel, Counter>::default(), "would_defer", "Test mode: deliveries enforcement would have deferred";
    sts_fetches: Family<ResultLabel, Counter> = Family::<ResultLabel, Counter>::default(), "sts_policy_fetches", "MTA-STS policy fetches by result (TLS-RPT result types for failures)";
    sts: Family<ResultLabel, Counter> = Family::<ResultLabel, Counter>::default(), "sts_results", "MTA-STS results per destination host tried under a policy";
    tlsrpt_reports: Family<MethodResultLabel, Counter> = Family::<MethodResultLabel, Counter>::default(), "tlsrpt_reports", "TLS reports (RFC 8460) sent and failed, per destination and attempt";
    tlsrpt_dropped: Counter = Counter::default(), "tlsrpt_outcomes_dropped", "TLS reporting: session outcomes not recorded (the state database did not keep up)";
    dns_seconds: Histogram = Histogram::new(exponential_buckets(0.0005, 2.0, 16)), "dns_lookup_seconds", "DNS lookups not answered from the cache";
    relay_seconds: Histogram = Histogram::new(exponential_buckets(0.005, 2.0, 16)), "relay_seconds", "Transactions, from MAIL FROM to the final reply";
}

impl Metrics {
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

    /// A TLS report sent (or not) to one destination.
    pub fn tlsrpt_report(&self, method: &str, result: &str) {
        self.tlsrpt_reports
            .get_or_create(&MethodResultLabel {
                method: method.into(),
                result: result.into(),
            })
            .inc();
    }

    pub fn tlsrpt_dropped(&self) {
        self.tlsrpt_dropped.inc();
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
