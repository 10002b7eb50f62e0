//! TLS reporting end to end inside one process: legacy sessions through
//! danegate's inbound session to destinations over real TCP and
//! STARTTLS ([`FakeDest`]), DNS from a [`TableResolver`], outcomes
//! recorded by the real recorder into an in-memory state database, and
//! the day's reports built from it. One day mixes DANE successes, a DANE
//! mismatch, stripped STARTTLS, bogus DNSSEC (of an MX RRset and of a
//! TLSA RRset), and domains without a policy (with and without STARTTLS);
//! each report is checked field by field against RFC 8460 §4.4.

mod common;
mod dane_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dane_support::{key, tlsa_for, Alg, Issued};
use danegate::dns::{FailureKind, Resolver, Security, Tlsa};
use danegate::outbound::Context;
use danegate::state::Store;
use danegate::tlsrpt::counts::{self, Limits};
use danegate::tlsrpt::day::{parse_rfc3339, Day, StartedAt};
use danegate::tlsrpt::report::{to_json, Reporter};
use danegate::tlsrpt::StoreRecorder;
use serde_json::{json, Value};

const FROM: &str = "sender@legacy.test";
const QUEUED_PREFIX: &str = "250 2.0.0 Ok: queued as Q";
const BYE: &str = "221 2.0.0 relay.example.net closing connection";

fn self_signed(name: &str) -> Issued {
    let key = key(Alg::EcdsaP256);
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    Issued {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

fn presenting(cert: &Issued, starttls: bool) -> DestScript {
    DestScript {
        identity: Some(identity(vec![cert.der()], cert.private_key())),
        starttls,
        ..DestScript::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record_text(r: &Tlsa) -> String {
    format!("{} {} {} {}", r.usage, r.selector, r.mtype, hex(&r.data))
}

/// One message to `rcpt`: the reply to RCPT TO, and the message sent
/// through when it was 250.
async fn send_to(ctx: &Arc<Context>, rcpt: &str) -> String {
    let mut s = start_session(ctx);
    let c = &mut s.client;
    c.hello(DEFAULT_MAX_SIZE).await;
    c.cmd(&format!("MAIL FROM:<{FROM}>"), "250 2.1.0 Ok").await;
    c.send(format!("RCPT TO:<{rcpt}>\r\n")).await;
    let reply = c.reply().await;
    if reply.starts_with("250") {
        c.cmd("DATA", "354 End data with <CR><LF>.<CR><LF>").await;
        c.send("Subject: t\r\n\r\nhello\r\n.\r\n").await;
        let done = c.reply().await;
        assert!(done.starts_with(QUEUED_PREFIX), "{done}");
    }
    c.cmd("QUIT", BYE).await;
    s.ended().await;
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_report_field_by_field() {
    // Destinations: each its own port on 127.0.0.1.
    let good = self_signed("mx.dane.test");
    let other = self_signed("mx.mismatch.test");
    let dane = FakeDest::start(presenting(&good, true)).await;
    let mismatch = FakeDest::start(presenting(&other, true)).await;
    let strip = FakeDest::start(presenting(&good, false)).await;
    let plain = FakeDest::start(presenting(&other, true)).await;
    let nostarttls = FakeDest::start(presenting(&other, false)).await;
    let record = tlsa_for(&good, 3, 1, 1);
    let tlsa = |d: &FakeDest, host: &str| format!("_{}._tcp.{host}", d.port());
    let lo = [Ipv4Addr::LOCALHOST];
    let resolver = TableResolver::new()
        .host("mx.dane.test", &lo, Security::Secure)
        .tlsa_secure(&tlsa(&dane, "mx.dane.test"), vec![record.clone()])
        .host("mx.mismatch.test", &lo, Security::Secure)
        .tlsa_secure(&tlsa(&mismatch, "mx.mismatch.test"), vec![record.clone()])
        .host("mx.strip.test", &lo, Security::Secure)
        .tlsa_secure(&tlsa(&strip, "mx.strip.test"), vec![record.clone()])
        .host("mx.tlsafail.test", &lo, Security::Secure)
        .tlsa_answer(
            &tlsa(&dane, "mx.tlsafail.test"),
            dns_failure(
                &tlsa(&dane, "mx.tlsafail.test"),
                "TLSA",
                FailureKind::Bogus(None),
            ),
        )
        .host("mx.plain.test", &lo, Security::Insecure)
        .host("mx.nostarttls.test", &lo, Security::Insecure)
        .mx_answer(
            "bogus.test",
            dns_failure("bogus.test", "MX", FailureKind::Bogus(None)),
        );
    let resolver: Arc<dyn Resolver> = Arc::new(resolver);
    let config = ConfigBuilder::new()
        .route("dane.test", &format!("[mx.dane.test]:{}", dane.port()))
        .route(
            "mismatch.test",
            &format!("[mx.mismatch.test]:{}", mismatch.port()),
        )
        .route("strip.test", &format!("[mx.strip.test]:{}", strip.port()))
        .route(
            "tlsafail.test",
            &format!("[mx.tlsafail.test]:{}", dane.port()),
        )
        .route("plain.test", &format!("[mx.plain.test]:{}", plain.port()))
        .route(
            "nostarttls.test",
            &format!("[mx.nostarttls.test]:{}", nostarttls.port()),
        )
        .build();
    let store = Store::in_memory();
    let at = parse_rfc3339("2026-12-06T10:00:00Z").unwrap();
    let recorder = StoreRecorder::start(
        store.clone(),
        Arc::new(StartedAt::new(at)),
        Limits { max_details: 100 },
    );
    let ctx = Arc::new(Context {
        tlsrpt: recorder.clone(),
        ..Context::new(config, resolver)
    });

    assert_eq!(send_to(&ctx, "a@dane.test").await, "250 2.1.5 Ok");
    assert_eq!(send_to(&ctx, "b@dane.test").await, "250 2.1.5 Ok");
    let m = send_to(&ctx, "a@mismatch.test").await;
    assert!(
        m.starts_with("451 4.7.5 TLS handshake with mx.mismatch.test[127.0.0.1]"),
        "{m}"
    );
    let s = send_to(&ctx, "a@strip.test").await;
    assert!(
        s.starts_with("451 4.7.4 TLS is required, but mx.strip.test[127.0.0.1]"),
        "{s}"
    );
    let b = send_to(&ctx, "a@bogus.test").await;
    assert_eq!(
        b,
        "451 4.4.3 MX lookup for bogus.test failed: DNSSEC validation failed (bogus)"
    );
    let t = send_to(&ctx, "a@tlsafail.test").await;
    assert!(
        t.starts_with("451 4.4.3 no usable host for tlsafail.test"),
        "{t}"
    );
    assert_eq!(send_to(&ctx, "a@plain.test").await, "250 2.1.5 Ok");
    assert_eq!(send_to(&ctx, "a@nostarttls.test").await, "250 2.1.5 Ok");
    assert!(recorder.flush(Duration::from_secs(10)));

    let day = Day::parse("2026-12-06").unwrap();
    let reporter = Reporter {
        organization: "Example Org".into(),
        contact: "tlsrpt@example.org".into(),
        submitter: "example.org".into(),
        instance: "0000000000000001".into(),
    };
    let reports: Vec<(String, Value)> = counts::day(&store, day, None)
        .unwrap()
        .iter()
        .map(|d| {
            let json = to_json(&reporter.report(day, d));
            (d.domain.clone(), serde_json::from_slice(&json).unwrap())
        })
        .collect();
    let domains: Vec<&str> = reports.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        domains,
        [
            "bogus.test",
            "dane.test",
            "mismatch.test",
            "nostarttls.test",
            "plain.test",
            "strip.test",
            "tlsafail.test"
        ]
    );
    let report = |d: &str| reports.iter().find(|(n, _)| n == d).unwrap().1.clone();
    let head = |d: &str, policies: Value| {
        json!({
            "organization-name": "Example Org",
            "date-range": {"start-datetime": "2026-12-06T00:00:00Z", "end-datetime": "2026-12-06T23:59:59Z"},
            "contact-info": "tlsrpt@example.org",
            "report-id": format!("2026-12-06.0000000000000001.{d}@example.org"),
            "policies": policies,
        })
    };
    let rec = record_text(&record);
    assert_eq!(
        report("dane.test"),
        head(
            "dane.test",
            json!([{
                "policy": {"policy-type": "tlsa", "policy-string": [rec], "policy-domain": "mx.dane.test"},
                "summary": {"total-successful-session-count": 2, "total-failure-session-count": 0},
                "failure-details": []
            }])
        )
    );
    assert_eq!(
        report("mismatch.test"),
        head(
            "mismatch.test",
            json!([{
                "policy": {"policy-type": "tlsa", "policy-string": [rec], "policy-domain": "mx.mismatch.test"},
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
                "failure-details": [{
                    "result-type": "certificate-not-trusted",
                    "sending-mta-ip": "127.0.0.1",
                    "receiving-mx-hostname": "mx.mismatch.test",
                    "receiving-ip": "127.0.0.1",
                    "failed-session-count": 1,
                    "failure-reason-code": format!("no TLSA record of _{}._tcp.mx.mismatch.test matches the certificate chain", mismatch.port())
                }]
            }])
        )
    );
    assert_eq!(
        report("strip.test"),
        head(
            "strip.test",
            json!([{
                "policy": {"policy-type": "tlsa", "policy-string": [rec], "policy-domain": "mx.strip.test"},
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
                "failure-details": [{
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "127.0.0.1",
                    "receiving-mx-hostname": "mx.strip.test",
                    "receiving-ip": "127.0.0.1",
                    "failed-session-count": 1,
                    "failure-reason-code": format!("TLS is required, but mx.strip.test[127.0.0.1]:{} did not offer STARTTLS", strip.port())
                }]
            }])
        )
    );
    assert_eq!(
        report("bogus.test"),
        head(
            "bogus.test",
            json!([{
                "policy": {"policy-type": "tlsa", "policy-domain": "bogus.test"},
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
                "failure-details": [{
                    "result-type": "dnssec-invalid",
                    "failed-session-count": 1,
                    "failure-reason-code": "MX lookup for bogus.test failed: DNSSEC validation failed (bogus)"
                }]
            }])
        )
    );
    assert_eq!(
        report("tlsafail.test"),
        head(
            "tlsafail.test",
            json!([{
                "policy": {"policy-type": "tlsa", "policy-domain": "mx.tlsafail.test"},
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
                "failure-details": [{
                    "result-type": "dnssec-invalid",
                    "receiving-mx-hostname": "mx.tlsafail.test",
                    "failed-session-count": 1,
                    "failure-reason-code": format!("TLSA lookup for _{}._tcp.mx.tlsafail.test failed: DNSSEC validation failed (bogus)", dane.port())
                }]
            }])
        )
    );
    assert_eq!(
        report("plain.test"),
        head(
            "plain.test",
            json!([{
                "policy": {"policy-type": "no-policy-found", "policy-domain": "plain.test"},
                "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
                "failure-details": []
            }])
        )
    );
    assert_eq!(
        report("nostarttls.test"),
        head(
            "nostarttls.test",
            json!([{
                "policy": {"policy-type": "no-policy-found", "policy-domain": "nostarttls.test"},
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
                "failure-details": [{
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "127.0.0.1",
                    "receiving-mx-hostname": "mx.nostarttls.test",
                    "receiving-ip": "127.0.0.1",
                    "failed-session-count": 1,
                    "failure-reason-code": format!("mx.nostarttls.test[127.0.0.1]:{} did not offer STARTTLS", nostarttls.port())
                }]
            }])
        )
    );
}
