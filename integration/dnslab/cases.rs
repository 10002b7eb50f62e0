//! What each lab domain must come out as, by the rules of
//! `../shared/design/dane-rules.md` §1–2: the MX answer and its security,
//! then per host the address answer, the TLSA lookup and the requirement.
//! A truth table kept as data: the self-tests check the DNS side of it
//! through unbound; the resolve tests check danegate's plan against it.
//!
//! The zone data behind each row is in `zones.rs`; TLSA digests are made
//! fresh each run, so rows name the certificate (`DnsLab::cert`) instead.

/// The security of an answer that arrived (records or a denial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sec {
    /// Validated up to the lab's trust anchor (unbound sets AD).
    Secure,
    /// Provably unsigned (no DS on the way down; no AD).
    Insecure,
}

/// The outcome of one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Answered(Sec),
    /// Bogus, SERVFAIL or timeout: defer, never downgrade.
    Failed,
}

/// The MX answer of a case's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mx {
    /// MX records; the hosts are [`Case::hosts`], in preference order.
    Records(Sec),
    /// NODATA: the domain itself is the one host (implicit MX), with the
    /// denial's security; [`Case::hosts`] holds it with preference 0.
    Implicit(Sec),
    /// `MX 0 .` (RFC 7505): reject with 556 5.1.10.
    Null(Sec),
    /// The domain does not exist: reject with 550 5.1.2.
    NxDomain(Sec),
    /// The MX lookup failed: defer with 451 4.4.3.
    Failed,
}

/// How the host's TLSA lookup goes (§2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tlsa {
    /// No TLSA lookup: the address lookup failed (the host is skipped), or
    /// the address records are insecure and the name is not a secure CNAME
    /// (§2.1).
    NotLookedUp,
    /// Secure TLSA records at `_25._tcp.<base>`; `usable` of `total`
    /// records are usable for SMTP (§2.3).
    Found {
        base: &'static str,
        usable: usize,
        total: usize,
    },
    /// Securely denied at every base tried: no DANE.
    None,
    /// The deciding answer was insecure: treated as no TLSA.
    Insecure { name: &'static str },
    /// The lookup of `name` failed: the host fails (no fallback).
    Failed { name: &'static str },
}

/// What a host requires of the connection (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Secure, usable TLSA: STARTTLS and a matching certificate.
    DaneRequired,
    /// Secure TLSA, none usable: STARTTLS without authentication.
    TlsRequired,
    /// No secure TLSA: opportunistic STARTTLS.
    NoDane,
    /// A lookup failed: the host is skipped; the reason is remembered.
    Failed,
}

/// One MX host of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// As named in the MX RRset (or the domain, for an implicit MX); no
    /// trailing dot.
    pub name: &'static str,
    pub preference: u16,
    /// Where `name` leads when it is a CNAME (one link in this lab).
    pub cname: Option<&'static str>,
    /// The A/AAAA answer (after the CNAME, if any; a chain is as secure
    /// as its weakest link).
    pub addrs: Lookup,
    pub ipv4: &'static [&'static str],
    pub ipv6: &'static [&'static str],
    pub tlsa: Tlsa,
    pub requirement: Requirement,
}

/// One domain of the lab and how it must be classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The recipient domain, no trailing dot.
    pub domain: &'static str,
    /// What the case exercises, for test output.
    pub about: &'static str,
    pub mx: Mx,
    /// In preference order; empty unless `mx` is `Records` or `Implicit`.
    pub hosts: &'static [Host],
}

impl Case {
    /// The row of `domain`; panics for a domain not in [`CASES`].
    pub fn get(domain: &str) -> &'static Case {
        CASES
            .iter()
            .find(|c| c.domain == domain)
            .unwrap_or_else(|| panic!("no lab case for {domain}"))
    }
}

const SECURE: Lookup = Lookup::Answered(Sec::Secure);
const INSECURE: Lookup = Lookup::Answered(Sec::Insecure);

const MX1_SECURE: Host = Host {
    name: "mx1.secure.test",
    preference: 10,
    cname: None,
    addrs: SECURE,
    ipv4: &["127.0.25.1"],
    ipv6: &["::1"],
    tlsa: Tlsa::Found {
        base: "mx1.secure.test",
        usable: 1,
        total: 1,
    },
    requirement: Requirement::DaneRequired,
};

const MX_UNSIGNED: Host = Host {
    name: "mx.unsigned.test",
    preference: 10,
    cname: None,
    addrs: INSECURE,
    ipv4: &["127.0.25.3"],
    ipv6: &[],
    tlsa: Tlsa::NotLookedUp,
    requirement: Requirement::NoDane,
};

const MX_TLSA_FAIL: Host = Host {
    name: "mx.tlsa-fail.test",
    preference: 10,
    cname: None,
    addrs: SECURE,
    ipv4: &["127.0.25.10"],
    ipv6: &[],
    tlsa: Tlsa::Failed {
        name: "_25._tcp.mx.tlsa-fail.test",
    },
    requirement: Requirement::Failed,
};

/// Every case of the lab.
pub const CASES: &[Case] = &[
    Case {
        domain: "secure.test",
        about: "signed zone, two hosts: DANE-EE (3 1 1) and DANE-TA (2 0 1)",
        mx: Mx::Records(Sec::Secure),
        hosts: &[
            MX1_SECURE,
            Host {
                name: "mx2.secure.test",
                preference: 20,
                cname: None,
                addrs: SECURE,
                ipv4: &["127.0.25.2"],
                ipv6: &[],
                tlsa: Tlsa::Found {
                    base: "mx2.secure.test",
                    usable: 1,
                    total: 1,
                },
                requirement: Requirement::DaneRequired,
            },
        ],
    },
    Case {
        domain: "unsigned.test",
        about: "unsigned zone (no DS): MX, A and TLSA all insecure",
        mx: Mx::Records(Sec::Insecure),
        hosts: &[MX_UNSIGNED],
    },
    Case {
        domain: "secure-mx.unsigned.test",
        about: "insecure MX RRset naming a secure host with usable TLSA (\"Trusted\", §1.4)",
        mx: Mx::Records(Sec::Insecure),
        hosts: &[MX1_SECURE],
    },
    Case {
        domain: "bogus.test",
        about: "the parent's DS names a key the zone does not use: bogus",
        mx: Mx::Failed,
        hosts: &[],
    },
    Case {
        domain: "expired.test",
        about: "signatures expired a week ago: bogus",
        mx: Mx::Failed,
        hosts: &[],
    },
    Case {
        domain: "dead.test",
        about: "delegated to an address where nothing answers: SERVFAIL",
        mx: Mx::Failed,
        hosts: &[],
    },
    Case {
        domain: "nosuch.secure.test",
        about: "name that does not exist in a signed zone: secure NXDOMAIN",
        mx: Mx::NxDomain(Sec::Secure),
        hosts: &[],
    },
    Case {
        domain: "nosuch.unsigned.test",
        about: "name that does not exist in an unsigned zone: insecure NXDOMAIN",
        mx: Mx::NxDomain(Sec::Insecure),
        hosts: &[],
    },
    Case {
        domain: "nullmx.test",
        about: "null MX (MX 0 .)",
        mx: Mx::Null(Sec::Secure),
        hosts: &[],
    },
    Case {
        domain: "nomx.test",
        about: "no MX (secure NODATA): the domain is its own host, TLSA at _25._tcp.nomx.test",
        mx: Mx::Implicit(Sec::Secure),
        hosts: &[Host {
            name: "nomx.test",
            preference: 0,
            cname: None,
            addrs: SECURE,
            ipv4: &["127.0.25.8"],
            ipv6: &[],
            tlsa: Tlsa::Found {
                base: "nomx.test",
                usable: 1,
                total: 1,
            },
            requirement: Requirement::DaneRequired,
        }],
    },
    Case {
        domain: "insecure-addr.test",
        about: "secure MX naming a host whose address records are insecure: no TLSA lookup",
        mx: Mx::Records(Sec::Secure),
        hosts: &[MX_UNSIGNED],
    },
    Case {
        domain: "cname.test",
        about: "CNAME'd MX hosts: TLSA at the target; fallback to the alias; no fallback after a failure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[
            Host {
                name: "mx.cname.test",
                preference: 10,
                cname: Some("mx-target.secure.test"),
                addrs: SECURE,
                ipv4: &["127.0.25.6"],
                ipv6: &[],
                tlsa: Tlsa::Found {
                    base: "mx-target.secure.test",
                    usable: 1,
                    total: 1,
                },
                requirement: Requirement::DaneRequired,
            },
            Host {
                name: "mx-fallback.cname.test",
                preference: 20,
                cname: Some("mx-notlsa.secure.test"),
                addrs: SECURE,
                ipv4: &["127.0.25.7"],
                ipv6: &[],
                tlsa: Tlsa::Found {
                    base: "mx-fallback.cname.test",
                    usable: 1,
                    total: 1,
                },
                requirement: Requirement::DaneRequired,
            },
            Host {
                name: "mx-nofallback.cname.test",
                preference: 30,
                cname: Some("mx.tlsa-fail.test"),
                ..MX_TLSA_FAIL
            },
        ],
    },
    Case {
        domain: "unusable.test",
        about: "secure TLSA records, none usable (0 0 1, 1 1 1, 3 1 1 of 31 bytes): TLS required",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.unusable.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            ipv4: &["127.0.25.9"],
            ipv6: &[],
            tlsa: Tlsa::Found {
                base: "mx.unusable.test",
                usable: 0,
                total: 3,
            },
            requirement: Requirement::TlsRequired,
        }],
    },
    Case {
        domain: "tlsa-fail.test",
        about: "secure host whose TLSA lookup fails (its _tcp zone is delegated to nowhere)",
        mx: Mx::Records(Sec::Secure),
        hosts: &[MX_TLSA_FAIL],
    },
    Case {
        domain: "tlsa-insecure.test",
        about: "secure host whose TLSA records sit in an unsigned child zone: treated as none",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.tlsa-insecure.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            ipv4: &["127.0.25.11"],
            ipv6: &[],
            tlsa: Tlsa::Insecure {
                name: "_25._tcp.mx.tlsa-insecure.test",
            },
            requirement: Requirement::NoDane,
        }],
    },
    Case {
        domain: "addr-fail.test",
        about: "the first host's address lookup fails (it lives in bogus.test): skipped, the second is used",
        mx: Mx::Records(Sec::Secure),
        hosts: &[
            Host {
                name: "mx.bogus.test",
                preference: 10,
                cname: None,
                addrs: Lookup::Failed,
                ipv4: &[],
                ipv6: &[],
                tlsa: Tlsa::NotLookedUp,
                requirement: Requirement::Failed,
            },
            Host {
                preference: 20,
                ..MX1_SECURE
            },
        ],
    },
    Case {
        domain: "notlsa.test",
        about: "secure host without TLSA (secure denial): no DANE",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx-notlsa.secure.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            ipv4: &["127.0.25.7"],
            ipv6: &[],
            tlsa: Tlsa::None,
            requirement: Requirement::NoDane,
        }],
    },
    Case {
        domain: "noaddr.test",
        about: "the only MX host exists without address records (secure NODATA): 550 5.4.4",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.noaddr.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            ipv4: &[],
            ipv6: &[],
            tlsa: Tlsa::NotLookedUp,
            requirement: Requirement::Failed,
        }],
    },
    Case {
        domain: "bare.noaddr.test",
        about: "no MX and no address records (secure NODATA): the implicit MX has no address, 550 5.4.4",
        mx: Mx::Implicit(Sec::Secure),
        hosts: &[Host {
            name: "bare.noaddr.test",
            preference: 0,
            cname: None,
            addrs: SECURE,
            ipv4: &[],
            ipv6: &[],
            tlsa: Tlsa::NotLookedUp,
            requirement: Requirement::Failed,
        }],
    },
];
