//! One domain's report for one day (RFC 8460 §4): the JSON document, its
//! report-id, its file name (§5.1) and its gzip form (§5.2).
//!
//! Each danegate instance reports for itself: the report-id and file name
//! carry the instance's own id (made once and kept in the state
//! database), so the reports of several instances of one organisation
//! are told apart (RFC 8460 allows several reports per domain and day).

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::counts::DomainDay;
use super::day::Day;
use super::model::{DateRange, Report};

/// Who reports: the `[tlsrpt]` settings that go into every report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// `organization-name`.
    pub organization: String,
    /// `contact-info`: an address (RFC 8460 §4.4: addr-spec).
    pub contact: String,
    /// The submitter's domain: `TLS-Report-Submitter`, the file name's
    /// sender, the right side of report-ids.
    pub submitter: String,
    /// This instance's id (letters and digits).
    pub instance: String,
}

impl Reporter {
    /// "2026-12-06.1f2e3d4c5b6a7980.example.net@mail.example.com": unique
    /// per day, domain and instance; the same on every retry. Shaped as
    /// RFC 5322 `id-left "@" id-right`, as the mail's Subject wants it.
    pub fn report_id(&self, day: Day, domain: &str) -> String {
        format!("{day}.{}.{domain}@{}", self.instance, self.submitter)
    }

    /// §5.1: `sender "!" policy-domain "!" begin "!" end "!" unique-id
    /// ".json.gz"`.
    pub fn filename(&self, day: Day, domain: &str) -> String {
        format!(
            "{}!{domain}!{}!{}!{}.json.gz",
            self.submitter,
            day.start_unix(),
            day.end_unix(),
            self.instance
        )
    }

    /// The report of `counts` for `day`.
    pub fn report(&self, day: Day, counts: &DomainDay) -> Report {
        Report {
            organization: self.organization.clone(),
            date_range: DateRange {
                start: day.start_datetime(),
                end: day.end_datetime(),
            },
            contact: self.contact.clone(),
            report_id: self.report_id(day, &counts.domain),
            policies: counts.policies.clone(),
        }
    }
}

/// The report as JSON (I-JSON: UTF-8, no duplicate names).
pub fn to_json(report: &Report) -> Vec<u8> {
    serde_json::to_vec(report).expect("a report always serialises")
}

/// The JSON indented, for people.
pub fn to_json_pretty(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serialises")
}

/// RFC 1952 gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to memory cannot fail");
    enc.finish().expect("writing to memory cannot fail")
}

/// A fresh instance id: 16 hex digits.
pub fn new_instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::model::*;
    use std::io::Read;

    /// RFC 8460 §4.5's example report, with erratum 6241 applied
    /// (`mx-host` is an array of strings). Copied from the RFC.
    const RFC_EXAMPLE: &str = r#"{
     "organization-name": "Company-X",
     "date-range": {
       "start-datetime": "2016-04-01T00:00:00Z",
       "end-datetime": "2016-04-01T23:59:59Z"
     },
     "contact-info": "sts-reporting@company-x.example",
     "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
     "policies": [{
       "policy": {
         "policy-type": "sts",
         "policy-string": ["version: STSv1","mode: testing",
               "mx: *.mail.company-y.example","max_age: 86400"],
         "policy-domain": "company-y.example",
         "mx-host": ["*.mail.company-y.example"]
       },
       "summary": {
         "total-successful-session-count": 5326,
         "total-failure-session-count": 303
       },
       "failure-details": [{
         "result-type": "certificate-expired",
         "sending-mta-ip": "2001:db8:abcd:0012::1",
         "receiving-mx-hostname": "mx1.mail.company-y.example",
         "failed-session-count": 100
       }, {
         "result-type": "starttls-not-supported",
         "sending-mta-ip": "2001:db8:abcd:0013::1",
         "receiving-mx-hostname": "mx2.mail.company-y.example",
         "receiving-ip": "203.0.113.56",
         "failed-session-count": 200,
         "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
       }, {
         "result-type": "validation-failure",
         "sending-mta-ip": "198.51.100.62",
         "receiving-ip": "203.0.113.58",
         "receiving-mx-hostname": "mx-backup.mail.company-y.example",
         "failed-session-count": 3,
         "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
       }]
     }]
   }"#;

    #[test]
    fn the_rfc_example_is_a_report_of_ours_field_for_field() {
        let parsed: Report =
            serde_json::from_str(RFC_EXAMPLE).expect("our types read the RFC's report");
        assert_eq!(parsed.organization, "Company-X");
        assert_eq!(parsed.policies[0].policy.kind, PolicyType::Sts);
        assert_eq!(
            parsed.policies[0].failure_details[1].failure.result,
            ResultType::StarttlsNotSupported
        );
        assert_eq!(
            parsed.policies[0].failure_details[2]
                .failure
                .reason
                .as_deref(),
            Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED")
        );
        // Written back, it is the same document: every field name and
        // type of ours is the RFC's.
        let ours: serde_json::Value = serde_json::from_slice(&to_json(&parsed)).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(RFC_EXAMPLE).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn unknown_fields_are_not_ours() {
        let bad = RFC_EXAMPLE.replace("\"summary\"", "\"summary-results\"");
        assert!(serde_json::from_str::<Report>(&bad).is_err());
    }

    #[test]
    fn ids_names_and_gzip() {
        let r = Reporter {
            organization: "Example Org".into(),
            contact: "tlsrpt@example.com".into(),
            submitter: "example.com".into(),
            instance: "00ff00ff00ff00ff".into(),
        };
        let d = Day::parse("2026-12-06").unwrap();
        assert_eq!(
            r.report_id(d, "secure.test"),
            "2026-12-06.00ff00ff00ff00ff.secure.test@example.com"
        );
        assert_eq!(
            r.filename(d, "secure.test"),
            "example.com!secure.test!1796515200!1796601599!00ff00ff00ff00ff.json.gz"
        );
        let counts = crate::tlsrpt::counts::DomainDay {
            domain: "secure.test".into(),
            policies: vec![PolicyResult {
                policy: Policy::none("secure.test"),
                summary: Summary {
                    successful: 1,
                    failed: 0,
                },
                failure_details: vec![],
            }],
            overflow: 0,
        };
        let report = r.report(d, &counts);
        let json = to_json(&report);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&json)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, json);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "organization-name": "Example Org",
                "date-range": {"start-datetime": "2026-12-06T00:00:00Z", "end-datetime": "2026-12-06T23:59:59Z"},
                "contact-info": "tlsrpt@example.com",
                "report-id": "2026-12-06.00ff00ff00ff00ff.secure.test@example.com",
                "policies": [{
                    "policy": {"policy-type": "no-policy-found", "policy-domain": "secure.test"},
                    "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
                    "failure-details": []
                }]
            })
        );
        assert_eq!(new_instance_id().len(), 16);
    }
}
