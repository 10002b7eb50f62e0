//! One MX host of the check: its TLSA records and requirement as the plan
//! made them, then every address: the main handshake, the chain it
//! presented judged against the host's records, the key probes.

use std::net::{IpAddr, SocketAddr};

use super::cert::{cert_report, expiry_warnings};
use super::probe::{
    describe, handshake, key_probe, probe_findings, starttls_offered, Handshake, Need,
};
use super::report::{AddressCheck, DaneReport, HostCheck, MatchReport, TlsReport, TlsaReport};
use super::Ctx;
use crate::dns::Tlsa;
use crate::ops::resolve::{requirement, tlsa_status, CnameReport};
use crate::outbound::client::{sni_for, OutboundError, Peer};
use crate::outbound::plan::{Address, Host};
use crate::policy::{Requirement, TlsaStatus};
use crate::tls::dane::{select_records, verify_chain, DaneMatch, ReferenceIds};
use crate::tls::{tlsa, CertificateDer, Keys, TlsState, UnixTime};

/// Why a host gets no DANE (dane-rules §2).
fn no_dane_reason(host: &Host) -> String {
    let tlsa_name = format!("_{}._tcp.{}", host.port, host.name);
    match host.tlsa {
        TlsaStatus::NotLooked if host.name.parse::<IpAddr>().is_ok() => {
            "an address literal has no TLSA records".to_owned()
        }
        TlsaStatus::NotLooked => {
            "its address records are not DNSSEC-signed (insecure), so no TLSA lookup is made"
                .to_owned()
        }
        TlsaStatus::NoSecureTlsa => format!(
            "no DNSSEC-signed TLSA records at {tlsa_name} (none published, or not signed)"
        ),
        TlsaStatus::AllUnusable => format!(
            "none of the TLSA records at _{}._tcp.{} is usable for SMTP: TLS is required, but nothing is authenticated",
            host.port,
            host.tlsa_base.as_deref().unwrap_or(&host.name)
        ),
        TlsaStatus::Usable => format!("requirement is {}", requirement(host.requirement)),
    }
}

/// `secure`, `insecure`, or `mixed` when the address RRsets differ.
fn address_security(host: &Host) -> &'static str {
    if host.all_secure() {
        "secure"
    } else if host.addresses.iter().all(|a| !a.security.is_secure()) {
        "insecure"
    } else {
        "mixed"
    }
}

pub(super) async fn check_host(ctx: &Ctx, host: &Host) -> HostCheck {
    // DANE is required of the host when it is of one of its addresses
    // (the others are checked without it, and that is a problem).
    let dane = host
        .addresses
        .iter()
        .any(|a| a.requirement == Requirement::DaneRequired);
    let used = select_records(&host.tlsa_records);
    let mut h = HostCheck {
        name: host.name.clone(),
        port: host.port,
        preference: host.preference,
        address_security: address_security(host).to_owned(),
        cname: host.alias.as_ref().map(|a| CnameReport {
            target: a.name.clone(),
            secure: a.secure,
        }),
        requirement: requirement(host.requirement),
        dane,
        mechanism: super::sts::mechanism(host),
        mta_sts: crate::ops::resolve::sts_word(host),
        ok: false,
        tlsa_status: tlsa_status(host.tlsa),
        tlsa_name: host
            .tlsa_base
            .as_ref()
            .map(|b| format!("_{}._tcp.{b}", host.port)),
        tlsa: host
            .tlsa_records
            .iter()
            .map(|t| TlsaReport {
                record: t.to_string(),
                usable: tlsa::usability(t).is_ok(),
                used: used.contains(t),
                unusable_reason: tlsa::usability(t).err().map(|u| u.to_string()),
            })
            .collect(),
        problems: Vec::new(),
        addresses: Vec::new(),
    };
    match host.requirement {
        Requirement::DaneRequired => {}
        Requirement::StsRequired => {}
        Requirement::Refuse(reason) => h.problems.push(format!("refused: {reason}")),
        _ => h
            .problems
            .push(format!("no DANE: {}", no_dane_reason(host))),
    }
    for address in &host.addresses {
        let mut a = check_address(ctx, host, address).await;
        if dane && address.requirement != Requirement::DaneRequired {
            // dane-rules §2 per address: a sender gives this address no
            // DANE, so an attacker on its path can downgrade the mail.
            a.problems.push(format!(
                "no DANE for this address: its {} records are not DNSSEC-signed (insecure), while the host's other addresses require DANE",
                if address.ip.is_ipv4() { "A" } else { "AAAA" }
            ));
            a.ok = false;
        }
        h.addresses.push(a);
    }
    h.ok = h.problems.is_empty() && h.addresses.iter().all(|a| a.ok);
    h
}

/// How one address's certificates are judged.
pub(super) struct Judge<'a> {
    pub(super) records: &'a [Tlsa],
    port: u16,
    ids: ReferenceIds,
    pub(super) now: UnixTime,
    /// DANE is required: a chain that does not verify is a problem.
    pub(super) dane: bool,
}

impl Judge<'_> {
    /// The judge of one of `host`'s addresses, which requires `requirement`;
    /// `base` is the host's TLSA base domain.
    fn new<'a>(ctx: &Ctx, host: &'a Host, requirement: Requirement, base: String) -> Judge<'a> {
        Judge {
            records: &host.tlsa_records,
            port: host.port,
            ids: ReferenceIds {
                tlsa_base: base,
                mx_host: host.name.clone(),
                nexthop: ctx.domain.clone(),
            },
            now: ctx.now,
            dane: requirement == Requirement::DaneRequired,
        }
    }

    /// The DANE verdict on a presented chain, when there are records.
    pub(super) fn verify(
        &self,
        chain: &[CertificateDer<'static>],
    ) -> Option<Result<DaneMatch, String>> {
        let (leaf, rest) = chain.split_first()?;
        if self.records.is_empty() {
            return None;
        }
        Some(
            verify_chain(self.records, self.port, &self.ids, leaf, rest, self.now)
                .map_err(|e| e.to_string()),
        )
    }
}

async fn check_address(ctx: &Ctx, host: &Host, address: &Address) -> AddressCheck {
    let peer = Peer {
        host: host.name.clone(),
        addr: SocketAddr::new(address.ip, host.port),
    };
    let base = host.tlsa_base.clone().unwrap_or_else(|| host.name.clone());
    let sni = sni_for(&base);
    let judge = Judge::new(ctx, host, address.requirement, base);
    let mut a = AddressCheck::new(address.ip);
    a.security = address.security.to_string();
    a.requirement = requirement(address.requirement);
    let need = Need {
        tls_required: matches!(
            address.requirement,
            Requirement::DaneRequired | Requirement::TlsRequired
        ),
        dane: judge.dane,
    };
    let main = handshake(ctx, &peer, sni.clone(), Keys::Any, need).await;
    let state = conversation_findings(&main, judge.dane, &mut a);
    a.chain = main
        .chain
        .iter()
        .enumerate()
        .map(|(depth, der)| cert_report(depth, der, judge.records, ctx.now))
        .collect();
    let verdict = judge.verify(&main.chain);
    let dane_ee_leaf = matches!(&verdict, Some(Ok(m)) if m.usage == 3);
    expiry_warnings(&a.chain, dane_ee_leaf, "", &mut a.warnings);
    let completed = main.result.is_ok();
    a.dane = verdict.as_ref().map(|v| dane_report(v, completed));
    if let Some(state) = &state {
        let authenticated = match &verdict {
            Some(Ok(m)) if judge.dane => state.authenticated(ctx.mx_secure, m),
            _ => state.clone(),
        };
        a.tls = Some(TlsReport::of(
            &authenticated,
            sni.clone(),
            main.primary_engine_failure.clone(),
        ));
    }
    if judge.dane {
        if let Some(Err(f)) = &verdict {
            a.problems.push(format!("certificate does not verify: {f}"));
        }
    }
    // The key probes are made with the primary engine: an address that
    // needs the legacy engine gets none.
    if a.starttls == Some(true) && main.primary_engine_failure.is_none() {
        for keys in [Keys::Rsa, Keys::Ecdsa] {
            let probe = key_probe(ctx, &peer, sni.clone(), keys, &judge, &main.chain).await;
            probe_findings(&probe, &judge, &main.chain, &mut a);
            a.key_probes.push(probe.report);
        }
    }
    let sts_required = host.requirement == Requirement::StsRequired;
    if super::sts::judged(host) {
        let webpki = super::sts::judge(&ctx.roots, host, &main.chain, ctx.now);
        if !webpki.valid && sts_required {
            a.problems.push(format!(
                "certificate is not valid for MTA-STS: {}",
                webpki.detail
            ));
        }
        if sts_required && !completed {
            if let Some(e) = &a.error {
                a.problems.push(e.clone());
            }
        }
        let valid = webpki.valid;
        a.webpki = Some(webpki);
        if sts_required {
            a.ok = completed && valid && a.problems.is_empty();
            return a;
        }
    }
    a.ok = judge.dane && completed && a.problems.is_empty() && matches!(verdict, Some(Ok(_)));
    a
}

/// How far the main conversation got (connected, STARTTLS, why it
/// failed); the connection's TLS state when it completed. A failure is a
/// problem when DANE is required.
fn conversation_findings(main: &Handshake, dane: bool, a: &mut AddressCheck) -> Option<TlsState> {
    match &main.result {
        Ok(state) => {
            a.connected = true;
            a.starttls = Some(true);
            Some(state.clone())
        }
        Err(e) => {
            a.connected = !matches!(e, OutboundError::Connect { .. });
            // A chain means STARTTLS went through, whatever failed later.
            a.starttls = if main.chain.is_empty() {
                starttls_offered(e)
            } else {
                Some(true)
            };
            let text = describe(e);
            if dane {
                a.problems.push(text.clone());
            }
            a.error = Some(text);
            None
        }
    }
}

/// The DANE verdict on the main handshake's chain.
fn dane_report(verdict: &Result<DaneMatch, String>, completed: bool) -> DaneReport {
    match verdict {
        // A handshake that failed after the certificate (a bad handshake
        // signature, say) proved nothing, whatever the chain matches.
        Ok(m) => DaneReport {
            verified: completed,
            matched: Some(MatchReport::of(m)),
            failure: (!completed)
                .then(|| "the chain matches, but the handshake did not complete".to_owned()),
        },
        Err(f) => DaneReport {
            verified: false,
            matched: None,
            failure: Some(f.clone()),
        },
    }
}
