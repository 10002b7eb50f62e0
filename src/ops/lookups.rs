//! Every DNS lookup an operator command made, in order, with its outcome
//! and security: a [`Resolver`] that wraps another and writes down what
//! passed through it. `danegate resolve` and `danegate check` report the
//! list, so that every RRset that decided something is shown with its
//! security, also when no host is usable (dane-rules §1–2).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use serde::Serialize;

use crate::dns::{BoxFuture, Lookup, LookupResult, Mx, Resolver, Tlsa};

/// One lookup as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupReport {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: &'static str,
    /// `records`, `nodata`, `nxdomain` or `failed`.
    pub result: &'static str,
    /// `secure` or `insecure`; absent for a failed lookup.
    pub security: Option<String>,
    /// The records in presentation form (MX `10 mx.example.net`, an
    /// address, TLSA `3 1 1 <hex>`), sorted.
    pub records: Vec<String>,
    /// Where a CNAME (or DNAME) chain led, if the name was an alias.
    pub cname: Option<String>,
    /// Why the lookup failed.
    pub error: Option<String>,
}

impl LookupReport {
    fn new<T>(
        name: &str,
        rtype: &'static str,
        r: &LookupResult<T>,
        show: impl Fn(&T) -> String,
    ) -> Self {
        let mut report = LookupReport {
            name: name.to_owned(),
            rtype,
            result: "failed",
            security: None,
            records: Vec::new(),
            cname: None,
            error: None,
        };
        match r {
            Err(e) => report.error = Some(e.kind.to_string()),
            Ok(l) => {
                report.security = Some(l.security().to_string());
                report.result = match l {
                    Lookup::Records { .. } => "records",
                    Lookup::NoData { .. } => "nodata",
                    Lookup::NxDomain { .. } => "nxdomain",
                };
                report.records = l.records().iter().map(show).collect();
                report.records.sort();
                if let Lookup::Records {
                    canonical: Some(a), ..
                } = l
                {
                    report.cname = Some(a.name.clone());
                }
            }
        }
        report
    }

    /// One line of the text form.
    pub fn text(&self) -> String {
        let mut s = format!("{} {}: {}", self.rtype, self.name, self.result);
        if let Some(sec) = &self.security {
            s += &format!(" ({sec})");
        }
        if let Some(c) = &self.cname {
            s += &format!(" via CNAME to {c}");
        }
        if !self.records.is_empty() {
            s += &format!(": {}", self.records.join(", "));
        }
        if let Some(e) = &self.error {
            s += &format!(": {e}");
        }
        s
    }
}

/// A resolver that records every lookup made through it.
pub struct Recorder<'a> {
    inner: &'a dyn Resolver,
    log: Mutex<Vec<LookupReport>>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a dyn Resolver) -> Self {
        Recorder {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// The lookups so far, in the order they were made.
    pub fn lookups(&self) -> Vec<LookupReport> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn record(&self, report: LookupReport) {
        if let Ok(mut l) = self.log.lock() {
            l.push(report);
        }
    }
}

impl Resolver for Recorder<'_> {
    fn mx<'b>(&'b self, name: &'b str) -> BoxFuture<'b, LookupResult<Mx>> {
        Box::pin(async move {
            let r = self.inner.mx(name).await;
            self.record(LookupReport::new(name, "MX", &r, |m| {
                format!("{} {}", m.preference, m.exchange)
            }));
            r
        })
    }

    fn ipv4<'b>(&'b self, name: &'b str) -> BoxFuture<'b, LookupResult<Ipv4Addr>> {
        Box::pin(async move {
            let r = self.inner.ipv4(name).await;
            self.record(LookupReport::new(name, "A", &r, |a| a.to_string()));
            r
        })
    }

    fn ipv6<'b>(&'b self, name: &'b str) -> BoxFuture<'b, LookupResult<Ipv6Addr>> {
        Box::pin(async move {
            let r = self.inner.ipv6(name).await;
            self.record(LookupReport::new(name, "AAAA", &r, |a| a.to_string()));
            r
        })
    }

    fn tlsa<'b>(&'b self, name: &'b str) -> BoxFuture<'b, LookupResult<Tlsa>> {
        Box::pin(async move {
            let r = self.inner.tlsa(name).await;
            self.record(LookupReport::new(name, "TLSA", &r, |t| t.to_string()));
            r
        })
    }

    fn txt<'b>(&'b self, name: &'b str) -> BoxFuture<'b, LookupResult<Vec<u8>>> {
        Box::pin(async move {
            let r = self.inner.txt(name).await;
            self.record(LookupReport::new(name, "TXT", &r, |t| {
                String::from_utf8_lossy(t).escape_debug().to_string()
            }));
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Alias, DnsFailure, FailureKind, Security};

    struct Fixed;

    impl Resolver for Fixed {
        fn mx<'a>(&'a self, _: &'a str) -> BoxFuture<'a, LookupResult<Mx>> {
            Box::pin(async {
                Ok(Lookup::Records {
                    records: vec![
                        Mx {
                            preference: 20,
                            exchange: "mx2.example".into(),
                        },
                        Mx {
                            preference: 10,
                            exchange: "mx1.example".into(),
                        },
                    ],
                    security: Security::Secure,
                    canonical: None,
                })
            })
        }
        fn ipv4<'a>(&'a self, _: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>> {
            Box::pin(async {
                Ok(Lookup::Records {
                    records: vec![Ipv4Addr::new(192, 0, 2, 1)],
                    security: Security::Insecure,
                    canonical: Some(Alias {
                        name: "target.example".into(),
                        secure: true,
                    }),
                })
            })
        }
        fn ipv6<'a>(&'a self, _: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>> {
            Box::pin(async {
                Ok(Lookup::NoData {
                    security: Security::Secure,
                })
            })
        }
        fn tlsa<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Tlsa>> {
            Box::pin(async move {
                Err(DnsFailure {
                    name: name.into(),
                    rtype: "TLSA",
                    kind: FailureKind::Bogus(Some("RRSIG of x TLSA expired".into())),
                })
            })
        }
    }

    #[tokio::test]
    async fn every_lookup_is_recorded_in_order() {
        let r = Recorder::new(&Fixed);
        r.mx("example").await.unwrap();
        r.ipv6("mx1.example").await.unwrap();
        r.ipv4("mx1.example").await.unwrap();
        r.tlsa("_25._tcp.mx1.example").await.unwrap_err();
        let lines: Vec<String> = r.lookups().iter().map(LookupReport::text).collect();
        assert_eq!(
            lines,
            [
                "MX example: records (secure): 10 mx1.example, 20 mx2.example",
                "AAAA mx1.example: nodata (secure)",
                "A mx1.example: records (insecure) via CNAME to target.example: 192.0.2.1",
                "TLSA _25._tcp.mx1.example: failed: DNSSEC validation failed: RRSIG of x TLSA expired",
            ]
        );
        let json = serde_json::to_value(&r.lookups()[3]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "_25._tcp.mx1.example", "type": "TLSA", "result": "failed",
                "security": null, "records": [], "cname": null,
                "error": "DNSSEC validation failed: RRSIG of x TLSA expired"
            })
        );
    }
}
