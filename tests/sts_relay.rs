//! MTA-STS end to end inside one process (RFC 8461 §4–5 with danegate's
//! precedence): a client talks to danegate's inbound session, danegate
//! plans `example.test` from a [`TableResolver`] whose `_mta-sts` TXT
//! record announces a policy, a table fetcher serves the policy (the
//! HTTPS fetch itself is `sts_fetch.rs`'s), and danegate connects over
//! real TCP and STARTTLS to a [`FakeDest`] presenting certificates of a
//! test CA that danegate trusts for MTA-STS.
//!
//! Each test asserts the reply the legacy MTA gets, what the destination
//! saw, and the log facts (connection line, warnings, summary line).

mod common;
mod dane_support;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use dane_support::{tlsa_for, Issued, Pki, Spec};
use danegate::config::Config;
use danegate::dns::{BoxFuture, Security};
use danegate::outbound::Context;
use danegate::state::Store;
use danegate::sts::cache::Cache;
use danegate::sts::discover::Settings;
use danegate::sts::fetch::{Fetch, FetchError};
use danegate::sts::Sts;
use danegate::tls::webpki::Roots;
use tracing::Level;

const MX: &str = "mx.example.test";
const TEST_NOTE: &str = " [test mode: nothing enforced]";

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 86400\n")
}

/// Serves one policy body and counts fetches.
struct Policies {
    body: String,
    fetches: AtomicUsize,
}

impl Fetch for Policies {
    fn fetch<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        assert_eq!(domain, "example.test");
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let body = self.body.clone().into_bytes();
        Box::pin(async move { Ok(body) })
    }
}

/// A CA-issued certificate for `sans` (the leaf of a test PKI) and the
/// roots that trust it.
fn issued(sans: &[&str]) -> (Pki, Roots) {
    let pki = Pki::with(Spec {
        leaf_sans: sans.iter().map(|s| s.to_string()).collect(),
        ..Spec::default()
    });
    let roots = Roots::from_pem(pki.root.cert.pem().as_bytes()).unwrap();
    (pki, roots)
}

/// A destination presenting the PKI's leaf with its intermediate.
fn presenting_chain(pki: &Pki) -> DestScript {
    DestScript {
        identity: Some(identity(
            vec![pki.leaf.der(), pki.intermediate.der()],
            pki.leaf.private_key(),
        )),
        ..DestScript::default()
    }
}

fn presenting(cert: &Issued) -> DestScript {
    DestScript {
        identity: Some(identity(vec![cert.der()], cert.private_key())),
        ..DestScript::default()
    }
}

/// `example.test` has MX `mx.example.test` (unsigned, as most MTA-STS
/// domains are) at 127.0.0.1 and announces policy id `id`.
fn resolver(id: &str) -> TableResolver {
    TableResolver::new()
        .mx_records("example.test", &[(10, MX)], Security::Insecure)
        .host(MX, &[Ipv4Addr::LOCALHOST], Security::Insecure)
        .txt_records(
            "_mta-sts.example.test",
            &[&format!("v=STSv1; id={id}"), "v=spf1 -all"],
            Security::Insecure,
        )
}

/// A context routing `example.test` through an MX lookup on the
/// destination's port, with `[policy]` lines, MTA-STS trusting `roots`
/// and serving `body`.
fn context(
    dest: &FakeDest,
    r: &Arc<TableResolver>,
    policy_lines: &[&str],
    roots: Roots,
    body: &str,
) -> (Arc<Context>, Arc<Policies>) {
    let mut b =
        ConfigBuilder::new().route("example.test", &format!("example.test:{}", dest.port()));
    for l in policy_lines {
        b = b.policy(l);
    }
    with_config(b.build(), r, roots, body)
}

fn with_config(
    config: Config,
    r: &Arc<TableResolver>,
    roots: Roots,
    body: &str,
) -> (Arc<Context>, Arc<Policies>) {
    let policies = Arc::new(Policies {
        body: body.to_owned(),
        fetches: AtomicUsize::new(0),
    });
    let sts = Arc::new(Sts::new(
        Cache::new(Store::in_memory()),
        r.clone(),
        policies.clone(),
        roots,
        Settings {
            enabled: config.mta_sts.enabled,
            refresh_interval: 86400,
        },
    ));
    let ctx = Arc::new(Context::with_sts(config, r.clone(), sts));
    (ctx, policies)
}

async fn delivered(ctx: &Arc<Context>) {
    delivered_as(ctx, QUEUED).await
}

/// Delivers the test message; the final dot gets `queued`.
async fn delivered_as(ctx: &Arc<Context>, queued: &str) {
    delivered_with(ctx, b"Subject: STS\r\n\r\nHello over MTA-STS.\r\n", queued).await
}

#[track_caller]
fn assert_no_mail(conn: &Conn) {
    assert!(
        !conn.commands().iter().any(|c| c.starts_with("MAIL")),
        "the destination got a MAIL command: {conn:#?}"
    );
}

fn warnings(logs: &LogCapture) -> Vec<String> {
    logs.events()
        .iter()
        .filter(|e| e.level == Level::WARN || e.level == Level::ERROR)
        .map(|e| e.to_string())
        .collect()
}

#[tokio::test]
async fn enforce_with_a_valid_certificate_is_delivered_verified_sts() {
    let logs = LogCapture::start();
    let (pki, roots) = issued(&[MX]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("20260101"));
    let (ctx, policies) = context(&dest, &r, &[], roots, &policy("enforce", MX));
    delivered(&ctx).await;
    let conns = dest.wait_closed(1).await;
    assert!(conns[0].tls);
    assert_eq!(conns[0].sni.as_deref(), Some(MX));
    let (protocol, cipher) = (
        conns[0].protocol.clone().unwrap(),
        conns[0].cipher.clone().unwrap(),
    );
    let peer = dest.peer_as(MX);
    let matched = format!(
        "WebPKI: {MX} issued by CN=Example Test Intermediate; the MTA-STS policy of example.test (id 20260101)"
    );
    logs.one(&format!(
        "Verified TLS connection established to {peer}: {protocol} with cipher {cipher}; matched {matched}"
    ));
    let summary = logs.summary(RCPT);
    assert_eq!(summary.message, "delivered");
    assert_eq!(
        summary.field("tls"),
        Some(format!("verified(sts) {protocol} {cipher} ({matched})").as_str())
    );
    logs.one("MTA-STS: enforce policy of example.test (id 20260101, fetched, max_age 86400, mx: mx.example.test)");
    assert!(warnings(&logs).is_empty(), "{:#?}", warnings(&logs));
    // The second delivery uses the cached policy: no second fetch.
    delivered_as(&ctx, "250 2.0.0 Ok: queued as Q2").await;
    assert_eq!(policies.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wildcard_certificate_matches_one_label() {
    let _logs = LogCapture::start();
    let (pki, roots) = issued(&["*.example.test"]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("enforce", "*.example.test"));
    delivered(&ctx).await;
}

#[tokio::test]
async fn enforce_with_a_certificate_for_another_name_defers() {
    let logs = LogCapture::start();
    let (pki, roots) = issued(&["mx2.example.test"]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("enforce", MX));
    let peer = dest.peer_as(MX);
    refused(
        &ctx,
        &format!("451 4.7.5 TLS handshake with {peer} failed: certificate for {MX} does not match the MTA-STS policy of example.test: the certificate is not valid for the name (no matching SAN dNSName)"),
    )
    .await;
    // The summary line names the host the failure happened with.
    assert_eq!(logs.summary(RCPT).field("relay"), Some(peer.as_str()));
    let conns = dest.wait_closed(1).await;
    assert_no_mail(&conns[0]);
    assert!(
        logs.contains("delivery attempt failed: TLS handshake with"),
        "{}",
        logs.dump()
    );
}

#[tokio::test]
async fn enforce_with_a_self_signed_certificate_defers() {
    let _logs = LogCapture::start();
    let (_, roots) = issued(&[MX]);
    let cert = {
        let key = dane_support::key(dane_support::Alg::EcdsaP256);
        let params = rcgen::CertificateParams::new(vec![MX.to_owned()]).unwrap();
        Issued {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    };
    let dest = FakeDest::start(presenting(&cert)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("enforce", MX));
    let peer = dest.peer_as(MX);
    refused(
        &ctx,
        &format!("451 4.7.5 TLS handshake with {peer} failed: certificate for {MX} does not match the MTA-STS policy of example.test: the certificate chain does not lead to a trusted root"),
    )
    .await;
    assert_no_mail(&dest.wait_closed(1).await[0]);
}

#[tokio::test]
async fn enforce_without_starttls_defers() {
    let _logs = LogCapture::start();
    let (pki, roots) = issued(&[MX]);
    let dest = FakeDest::start(DestScript {
        starttls: false,
        ..presenting_chain(&pki)
    })
    .await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("enforce", MX));
    let peer = dest.peer_as(MX);
    refused(
        &ctx,
        &format!("451 4.7.4 TLS is required, but {peer} did not offer STARTTLS"),
    )
    .await;
    assert_no_mail(&dest.wait_closed(1).await[0]);
}

#[tokio::test]
async fn enforce_never_connects_to_an_mx_host_the_policy_does_not_name() {
    let _logs = LogCapture::start();
    let (pki, roots) = issued(&[MX]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("enforce", "mx9.example.net"));
    refused(
        &ctx,
        &format!("451 4.7.5 MX host {MX} is not allowed by the MTA-STS policy of example.test"),
    )
    .await;
    assert!(dest.conns().is_empty(), "{:#?}", dest.conns());
}

#[tokio::test]
async fn testing_verifies_logs_would_defer_and_delivers() {
    let logs = LogCapture::start();
    let (pki, roots) = issued(&["other.example.test"]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("testing", MX));
    delivered(&ctx).await;
    let peer = dest.peer_as(MX);
    let w = logs.one(&format!("would defer (MTA-STS testing): certificate for {MX} does not match the MTA-STS policy of example.test: the certificate is not valid for the name (no matching SAN dNSName); delivering, the policy of example.test is in testing mode"));
    assert_eq!(w.level, Level::WARN);
    assert_eq!(w.field("peer"), Some(peer.as_str()));
    assert!(logs
        .summary(RCPT)
        .field("tls")
        .unwrap()
        .starts_with("untrusted "));
}

#[tokio::test]
async fn testing_with_an_mx_host_not_named_delivers_and_says_so() {
    let logs = LogCapture::start();
    let (pki, roots) = issued(&[MX]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("testing", "mx9.example.net"));
    delivered(&ctx).await;
    logs.one(&format!("would defer (MTA-STS testing): MX host {MX} is not allowed by the MTA-STS policy of example.test; delivering, the policy is in testing mode"));
}

#[tokio::test]
async fn dane_comes_first_for_a_host_with_usable_tlsa() {
    let logs = LogCapture::start();
    // A self-signed certificate: no WebPKI validation could pass, and the
    // policy does not even name the host. DANE decides alone.
    let key = dane_support::key(dane_support::Alg::EcdsaP256);
    let cert = Issued {
        cert: rcgen::CertificateParams::new(vec![MX.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap(),
        key,
    };
    let dest = FakeDest::start(presenting(&cert)).await;
    let r = TableResolver::new()
        .mx_records("example.test", &[(10, MX)], Security::Secure)
        .host(MX, &[Ipv4Addr::LOCALHOST], Security::Secure)
        .tlsa_secure(
            &format!("_{}._tcp.{MX}", dest.port()),
            vec![tlsa_for(&cert, 3, 1, 1)],
        )
        .txt_records(
            "_mta-sts.example.test",
            &["v=STSv1; id=1"],
            Security::Insecure,
        );
    let r = Arc::new(r);
    let (_, roots) = issued(&[MX]);
    let (ctx, _) = context(&dest, &r, &[], roots, &policy("enforce", "mx9.example.net"));
    delivered(&ctx).await;
    assert!(logs
        .summary(RCPT)
        .field("tls")
        .unwrap()
        .starts_with("verified(dane) "));
    assert!(warnings(&logs).is_empty(), "{:#?}", warnings(&logs));
}

#[tokio::test]
async fn test_mode_logs_the_sts_failure_and_delivers() {
    let logs = LogCapture::start();
    let (pki, roots) = issued(&["mx2.example.test"]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, _) = context(
        &dest,
        &r,
        &["mode = \"test\""],
        roots,
        &policy("enforce", MX),
    );
    delivered(&ctx).await;
    let peer = dest.peer_as(MX);
    logs.one(&format!("TEST MODE: would defer: TLS handshake with {peer} failed: certificate for {MX} does not match the MTA-STS policy of example.test: the certificate is not valid for the name (no matching SAN dNSName); delivering with the best connection available, nothing enforced"));
    let tls = logs.summary(RCPT).field("tls").unwrap().to_owned();
    assert!(
        tls.starts_with("untrusted ") && tls.ends_with(TEST_NOTE),
        "{tls}"
    );
}

#[tokio::test]
async fn level_may_ignores_the_policy_and_says_so() {
    let logs = LogCapture::start();
    let (pki, roots) = issued(&["mx2.example.test"]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let (ctx, policies) = context(
        &dest,
        &r,
        &["[policy.domains]", "\"example.test\" = \"may\""],
        roots,
        &policy("enforce", MX),
    );
    delivered(&ctx).await;
    logs.one("MTA-STS: ignored: policy level may is an explicit opt-out (example.test announces an MTA-STS policy)");
    assert_eq!(policies.fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn mta_sts_off_looks_nothing_up() {
    let _logs = LogCapture::start();
    let (pki, roots) = issued(&["mx2.example.test"]);
    let dest = FakeDest::start(presenting_chain(&pki)).await;
    let r = Arc::new(resolver("1"));
    let mut config = ConfigBuilder::new()
        .route("example.test", &format!("example.test:{}", dest.port()))
        .build();
    config.mta_sts.enabled = false;
    let (ctx, policies) = with_config(config, &r, roots, &policy("enforce", MX));
    delivered(&ctx).await;
    assert_eq!(policies.fetches.load(Ordering::SeqCst), 0);
    assert!(
        !r.queries().iter().any(|q| q.starts_with("TXT")),
        "{:?}",
        r.queries()
    );
}

/// MTA-STS asks for TLS 1.2 or later (RFC 8461 §4.2) whatever the
/// configured floor: with `[tls] min_version = "TLSv1"`, an enforce
/// domain whose MX speaks only TLS 1.1 (reachable by the legacy engine
/// alone) is deferred, its valid certificate notwithstanding.
#[tokio::test]
async fn enforce_needs_tls_1_2_even_under_a_lower_configured_floor() {
    let _logs = LogCapture::start();
    let (pki, roots) = issued(&[MX]);
    let cert = openssl::x509::X509::from_der(&pki.leaf.der()).unwrap();
    let key =
        openssl::pkey::PKey::private_key_from_der(pki.leaf.private_key().secret_der()).unwrap();
    let dest = FakeDest::start(DestScript {
        openssl: Some(Arc::new(OpensslServer {
            cert,
            key,
            max: Some(openssl::ssl::SslVersion::TLS1_1),
            ciphers: "ALL:@SECLEVEL=0".to_owned(),
        })),
        ..DestScript::default()
    })
    .await;
    let r = Arc::new(resolver("1"));
    let config = ConfigBuilder::new()
        .route("example.test", &format!("example.test:{}", dest.port()))
        .tls("min_version = \"TLSv1\"")
        .build();
    let (ctx, _) = with_config(config, &r, roots, &policy("enforce", MX));
    let mut s = start_session(&ctx);
    let got = rcpt_reply(&mut s.client).await;
    assert!(got.starts_with("451 4.7."), "{got}");
    assert!(got.contains("no TLS version in common"), "{got}");
    s.client.cmd("QUIT", BYE).await;
    s.ended().await;
    for c in dest.conns() {
        assert_no_mail(&c);
    }
}
