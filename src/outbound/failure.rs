//! Why a delivery attempt failed, and how each kind of failure becomes
//! the reply the legacy MTA hears: code, enhanced status code (RFC 3463)
//! and a text that names the destination and the cause (Postfix's
//! `smtp_trouble.c`: "the policy of how to deal with the error").
//!
//! [`Failure::reply`] is the only place where a failure is turned into a
//! reply; the inbound side's own replies are in `inbound::answer`.

use crate::outbound::client::{Mismatch, OutboundError, Peer};
use crate::outbound::plan::PlanError;
use crate::outbound::stage::Stage;
use crate::smtp::reply::{EnhancedCode, Reply};

const fn ec(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(class, subject, detail))
}

/// Why a delivery attempt failed, as the legacy MTA must learn it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Outbound(#[from] OutboundError),
    /// The destination answered a transaction command negatively.
    #[error("{peer} said: {reply} (in reply to {command})")]
    Remote {
        peer: Peer,
        command: &'static str,
        reply: Reply,
    },
    #[error("{peer} does not support {mismatch:?}")]
    Mismatch { peer: Peer, mismatch: Mismatch },
    /// A host failed the domain's MTA-STS `enforce` policy (RFC 8461
    /// §5): its policy domain and id ride along for reports.
    #[error("{failure}")]
    Sts {
        domain: String,
        id: String,
        failure: StsFailure,
    },
}

/// How a host failed an MTA-STS `enforce` policy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StsFailure {
    /// None of the policy's `mx` patterns matches the host: not tried.
    #[error("MX host {} is not allowed by the MTA-STS policy of {domain}", peer.host)]
    MxNotAllowed { peer: Peer, domain: String },
    /// STARTTLS missing or refused, or the certificate is not valid for
    /// the host under the WebPKI (the error says which).
    #[error("{0}")]
    Connection(OutboundError),
}

impl Failure {
    /// A negative destination reply to `stage`.
    pub fn remote(peer: &Peer, stage: Stage, reply: Reply) -> Failure {
        Failure::Remote {
            peer: peer.clone(),
            command: stage.command_name(),
            reply,
        }
    }

    /// The destination address the failure happened with, when there
    /// was one (for the summary line's `relay`).
    pub fn peer(&self) -> Option<&Peer> {
        match self {
            Failure::Plan(_) => None,
            Failure::Outbound(e) => Some(e.peer()),
            Failure::Remote { peer, .. } | Failure::Mismatch { peer, .. } => Some(peer),
            Failure::Sts { failure, .. } => match failure {
                StsFailure::MxNotAllowed { peer, .. } => Some(peer),
                StsFailure::Connection(e) => Some(e.peer()),
            },
        }
    }

    /// The `reason` label of the recipient metrics.
    pub fn reason(&self) -> &'static str {
        use crate::dns::FailureKind;
        let dns = |kind: &FailureKind| match kind {
            FailureKind::Bogus(_) => "dns_bogus",
            _ => "dns_failed",
        };
        match self {
            Failure::Plan(PlanError::Dns(e)) => dns(&e.kind),
            Failure::Plan(PlanError::NoHost { definite: true, .. }) => "no_mail_domain",
            Failure::Plan(PlanError::NoHost { problems, .. }) => problems
                .iter()
                .find_map(|p| match &p.reason {
                    crate::outbound::plan::SkipReason::Dns(e) if e.kind.is_bogus() => {
                        Some("dns_bogus")
                    }
                    _ => None,
                })
                .unwrap_or("dns_failed"),
            Failure::Plan(PlanError::NxDomain { .. } | PlanError::NullMx { .. }) => {
                "no_mail_domain"
            }
            Failure::Plan(PlanError::BadDomain(_)) => "no_mail_domain",
            Failure::Outbound(o) => match o {
                OutboundError::Connect { .. } => "connect_failed",
                OutboundError::Timeout { .. }
                | OutboundError::Lost { .. }
                | OutboundError::Protocol { .. }
                | OutboundError::Rejected { .. } => "connection_lost",
                OutboundError::Unexpected { .. } => "protocol_error",
                OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. } => {
                    "starttls_missing"
                }
                OutboundError::Tls { .. } => "tls_failed",
                OutboundError::Dane { .. } => "dane_mismatch",
                OutboundError::Refused { .. } => "policy",
            },
            Failure::Remote { reply, .. } if reply.code >= 500 => "remote_5xx",
            Failure::Remote { .. } => "remote_4xx",
            Failure::Mismatch { .. } => "other",
            Failure::Sts { failure, .. } => match failure {
                StsFailure::MxNotAllowed { .. } => "sts_mx_not_allowed",
                StsFailure::Connection(
                    OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. },
                ) => "sts_starttls_missing",
                StsFailure::Connection(_) => "sts_certificate",
            },
        }
    }

    /// Ranks failures so that, when every host failed, the deferral names
    /// the most specific reason (dane-rules §3.7): policy and TLS problems
    /// first, then anything the destination said, then transport trouble.
    pub fn specificity(&self) -> u8 {
        match self {
            Failure::Outbound(
                OutboundError::Refused { .. }
                | OutboundError::Tls { .. }
                | OutboundError::Dane { .. }
                | OutboundError::StartTlsMissing { .. }
                | OutboundError::StartTlsRefused { .. },
            ) => 4,
            Failure::Sts { .. } => 4,
            Failure::Remote { .. } | Failure::Mismatch { .. } => 3,
            Failure::Outbound(
                OutboundError::Rejected { .. }
                | OutboundError::Protocol { .. }
                | OutboundError::Unexpected { .. },
            ) => 2,
            Failure::Outbound(_) => 1,
            Failure::Plan(_) => 0,
        }
    }
}

impl Failure {
    /// The reply for a failed delivery step.
    pub fn reply(&self) -> Reply {
        let f = self;
        let text = f.to_string();
        match f {
            Failure::Plan(p) => match p {
                PlanError::Dns(_) => Reply::new(451, ec(4, 4, 3), text),
                // Not a domain name at all (an IDN that cannot be
                // converted): the address is unusable as written, now and
                // on every retry, so permanent: 553 (mailbox name not
                // allowed), 5.1.2 (bad destination system address).
                PlanError::BadDomain(_) => Reply::new(553, ec(5, 1, 2), text),
                PlanError::NxDomain { .. } => Reply::new(550, ec(5, 1, 2), text),
                PlanError::NullMx { .. } => Reply::new(556, ec(5, 1, 10), text),
                // Every host definitely has no address (NXDOMAIN or NODATA,
                // nothing failed): permanent, as Postfix bounces it
                // ("Host found but no data record of requested type").
                PlanError::NoHost { definite: true, .. } => Reply::new(550, ec(5, 4, 4), text),
                PlanError::NoHost { .. } => Reply::new(451, ec(4, 4, 3), text),
            },
            Failure::Outbound(o) => match o {
                OutboundError::Connect { .. } => Reply::new(451, ec(4, 4, 1), text),
                OutboundError::Timeout { .. } | OutboundError::Lost { .. } => {
                    Reply::new(451, ec(4, 4, 2), text)
                }
                OutboundError::Protocol { .. } | OutboundError::Unexpected { .. } => {
                    Reply::new(451, ec(4, 5, 0), text)
                }
                OutboundError::Rejected { reply, .. } => {
                    // A server refusing the conversation itself (greeting,
                    // EHLO) is not a verdict on this message: defer.
                    let e = reply
                        .enhanced
                        .map(|e| EnhancedCode::new(4, e.subject, e.detail))
                        .or(ec(4, 0, 0));
                    Reply::new(451, e, text)
                }
                OutboundError::StartTlsMissing { .. } | OutboundError::StartTlsRefused { .. } => {
                    Reply::new(451, ec(4, 7, 4), text)
                }
                OutboundError::Tls { .. }
                | OutboundError::Dane { .. }
                | OutboundError::Refused { .. } => Reply::new(451, ec(4, 7, 5), text),
            },
            Failure::Remote {
                peer,
                command,
                reply,
            } => {
                // 421 tells the client that *we* close the channel: the
                // destination closing its own becomes an ordinary 451.
                let code = if reply.code == 421 { 451 } else { reply.code };
                let class = (code / 100) as u8;
                let enhanced = reply.enhanced.or(ec(class, 0, 0));
                // No "(in reply to ...)" here: the legacy MTA adds its own
                // (Postfix does), and it would read twice.
                let _ = command;
                Reply::new(code, enhanced, format!("{peer} said: {}", reply.text()))
            }
            Failure::Sts { failure, .. } => match failure {
                StsFailure::MxNotAllowed { .. } => Reply::new(451, ec(4, 7, 5), text),
                StsFailure::Connection(e) => Failure::Outbound(e.clone()).reply(),
            },
            Failure::Mismatch { peer, mismatch } => match mismatch {
                Mismatch::Smtputf8 => Reply::new(
                    553,
                    ec(5, 6, 7),
                    format!("{peer} does not support SMTPUTF8, which this message requires"),
                ),
                Mismatch::Size { limit } => Reply::new(
                    552,
                    ec(5, 3, 4),
                    format!("Message size exceeds the limit of {limit} octets announced by {peer}"),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(f: &Failure) -> Reply {
        f.reply()
    }

    fn peer() -> Peer {
        Peer {
            host: "mx1.example.net".into(),
            addr: "192.0.2.1:25".parse().unwrap(),
        }
    }

    #[test]
    fn remote_reply_is_prefixed_and_keeps_codes() {
        let r = failure(&Failure::remote(
            &peer(),
            Stage::Rcpt,
            Reply::new(
                550,
                ec(5, 1, 1),
                "<bob@example.net>: Recipient address rejected",
            ),
        ));
        assert_eq!(
            r.to_string(),
            "550 5.1.1 mx1.example.net[192.0.2.1]:25 said: <bob@example.net>: Recipient address rejected"
        );
    }

    #[test]
    fn remote_reply_without_enhanced_code_gets_class_default() {
        let r = failure(&Failure::remote(
            &peer(),
            Stage::DataDone,
            Reply::new(451, None, "try later"),
        ));
        assert_eq!(r.code, 451);
        assert_eq!(r.enhanced, ec(4, 0, 0));
    }

    #[test]
    fn transport_failures_defer() {
        let lost = failure(&Failure::Outbound(OutboundError::Lost {
            peer: peer(),
            stage: Stage::DataDone,
            cause: "connection closed by server".into(),
        }));
        assert_eq!(
            lost.to_string(),
            "451 4.4.2 lost connection with mx1.example.net[192.0.2.1]:25 while sending end of data -- message may be sent more than once: connection closed by server"
        );
        let greeting = failure(&Failure::Outbound(OutboundError::Rejected {
            peer: peer(),
            stage: Stage::Greeting,
            reply: Reply::new(554, ec(5, 7, 1), "go away"),
        }));
        assert_eq!((greeting.code, greeting.enhanced), (451, ec(4, 7, 1)));
    }

    /// The metrics label keeps bogus data apart from every other failed
    /// lookup, whatever the cause's words.
    #[test]
    fn dns_reasons() {
        use crate::dns::{DnsFailure, FailureKind, Security};
        use crate::outbound::plan::{SkipReason, Skipped, Source};
        let lookup = |kind| DnsFailure {
            name: "_25._tcp.mx.example".into(),
            rtype: "TLSA",
            kind,
        };
        let no_host = |kind| {
            Failure::Plan(PlanError::NoHost {
                domain: "example".into(),
                origin: Source::Mx,
                mx_security: Security::Secure,
                problems: vec![Skipped {
                    name: "mx.example".into(),
                    reason: SkipReason::Dns(lookup(kind)),
                }],
                definite: false,
            })
        };
        let table = [
            (FailureKind::Bogus(None), "dns_bogus"),
            (
                FailureKind::Bogus(Some(
                    "RRSIG of x TLSA expired 2026-11-30 00:00:00 UTC".into(),
                )),
                "dns_bogus",
            ),
            (
                FailureKind::Bogus(Some("EDE 9 (DNSKEY Missing)".into())),
                "dns_bogus",
            ),
            (FailureKind::ServFail, "dns_failed"),
            (
                FailureKind::ServFailBecause("22 (No Reachable Authority)".into()),
                "dns_failed",
            ),
            (FailureKind::Timeout, "dns_failed"),
            (
                FailureKind::Other("cannot validate: no DNSKEY answer for x: timed out".into()),
                "dns_failed",
            ),
        ];
        for (kind, want) in table {
            let direct = Failure::Plan(PlanError::Dns(lookup(kind.clone())));
            assert_eq!(direct.reason(), want, "{kind}");
            assert_eq!(no_host(kind.clone()).reason(), want, "{kind}");
            assert_eq!(direct.reply().code, 451, "{kind}");
        }
        let bogus = Failure::Plan(PlanError::Dns(lookup(FailureKind::Bogus(Some(
            "RRSIG of _25._tcp.mx.example TLSA expired 2026-11-30 00:00:00 UTC".into(),
        )))));
        assert_eq!(
            bogus.reply().to_string(),
            "451 4.4.3 TLSA lookup for _25._tcp.mx.example failed: DNSSEC validation failed: RRSIG of _25._tcp.mx.example TLSA expired 2026-11-30 00:00:00 UTC"
        );
    }

    #[test]
    fn plan_failures() {
        let nx = failure(&Failure::Plan(PlanError::NxDomain {
            domain: "nowhere.example".into(),
        }));
        assert_eq!(
            nx.to_string(),
            "550 5.1.2 domain nowhere.example does not exist"
        );
        let null = failure(&Failure::Plan(PlanError::NullMx {
            domain: "null.example".into(),
        }));
        assert_eq!((null.code, null.enhanced), (556, ec(5, 1, 10)));
        let bad = Failure::Plan(PlanError::BadDomain(
            crate::dns::idn::parse("bü cher.example").unwrap_err(),
        ));
        assert_eq!(
            bad.reply().to_string(),
            "553 5.1.2 recipient domain bü cher.example is not a valid domain name: label bü cher:   (U+0020) is not allowed in a domain name"
        );
        assert_eq!(bad.reason(), "no_mail_domain");
    }
}
