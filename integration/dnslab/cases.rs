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
    /// The AAAA answer, where it differs from the A answer (each address
    /// RRset has its own security: dane-rules §2.1 per address).
    pub aaaa: Option<Lookup>,
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
    /// What the RFCs make of it: the expectation the case encodes.
    pub rfc: &'static str,
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
    aaaa: None,
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
    aaaa: None,
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
    aaaa: None,
    ipv4: &["127.0.25.10"],
    ipv6: &[],
    tlsa: Tlsa::Failed {
        name: "_25._tcp.mx.tlsa-fail.test",
    },
    requirement: Requirement::Failed,
};

/// A zoo host `mx.<zone>`: one IPv4 address, a secure `3 1 1` record of
/// its own: DANE required.
const fn zoo_host(name: &'static str, ipv4: &'static [&'static str]) -> Host {
    Host {
        name,
        preference: 10,
        cname: None,
        addrs: SECURE,
        aaaa: None,
        ipv4,
        ipv6: &[],
        tlsa: Tlsa::Found {
            base: name,
            usable: 1,
            total: 1,
        },
        requirement: Requirement::DaneRequired,
    }
}

/// A zoo host in an unsigned zone: no TLSA lookup, no DANE.
const fn zoo_unsigned_host(name: &'static str, ipv4: &'static [&'static str]) -> Host {
    Host {
        addrs: INSECURE,
        tlsa: Tlsa::NotLookedUp,
        requirement: Requirement::NoDane,
        ..zoo_host(name, ipv4)
    }
}

/// The zoo: zone shapes of the real Internet (`zones.rs` says how each is
/// signed). They are part of [`CASES`].
pub const ZOO: &[&str] = &[
    "nsec3.test",
    "nosuch.nsec3.test",
    "optout.test",
    "child.optout.test",
    "nosuch.optout.test",
    "alg7.test",
    "alg8.test",
    "alg14.test",
    "alg15.test",
    "unknown-alg.test",
    "wildcard.test",
    "shop.dname.test",
    "mixed.test",
    "iter150.test",
    "corrupt-tlsa.test",
    "xn--bcher-kva.test",
];

/// Every case of the lab.
pub const CASES: &[Case] = &[
    Case {
        domain: "secure.test",
        about: "signed zone, two hosts: DANE-EE (3 1 1) and DANE-TA (2 0 1)",

        rfc: "RFC 4035 §5: signed all the way from the anchor: secure; RFC 7672 §2.2: usable TLSA, DANE",
        mx: Mx::Records(Sec::Secure),
        hosts: &[
            MX1_SECURE,
            Host {
                name: "mx2.secure.test",
                preference: 20,
                cname: None,
                addrs: SECURE,
                aaaa: None,
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

        rfc: "RFC 4035 §5.2: no DS at the parent (proven): insecure; RFC 7672 §2.2.2: no TLSA lookup",
        mx: Mx::Records(Sec::Insecure),
        hosts: &[MX_UNSIGNED],
    },
    Case {
        domain: "secure-mx.unsigned.test",
        about: "insecure MX RRset naming a secure host with usable TLSA (\"Trusted\", §1.4)",

        rfc: "RFC 7672 §2.2.1 and Postfix's smtp_tls_dane_insecure_mx_policy: the host's own TLSA still applies",
        mx: Mx::Records(Sec::Insecure),
        hosts: &[MX1_SECURE],
    },
    Case {
        domain: "bogus.test",
        about: "the parent's DS names a key the zone does not use: bogus",

        rfc: "RFC 4035 §5.2: a DS that matches no DNSKEY: bogus; RFC 7672 §2.1.1: defer",
        mx: Mx::Failed,
        hosts: &[],
    },
    Case {
        domain: "expired.test",
        about: "signatures expired a week ago: bogus",

        rfc: "RFC 4035 §5.3.1: a signature past its expiration does not validate: bogus",
        mx: Mx::Failed,
        hosts: &[],
    },
    Case {
        domain: "dead.test",
        about: "delegated to an address where nothing answers: SERVFAIL",

        rfc: "RFC 7672 §2.1.1: a lookup that fails is not a denial: defer",
        mx: Mx::Failed,
        hosts: &[],
    },
    Case {
        domain: "nosuch.secure.test",
        about: "name that does not exist in a signed zone: secure NXDOMAIN",

        rfc: "RFC 4035 §5.4: NXDOMAIN proven by NSEC: secure; RFC 5321 §5.1: bounce",
        mx: Mx::NxDomain(Sec::Secure),
        hosts: &[],
    },
    Case {
        domain: "nosuch.unsigned.test",
        about: "name that does not exist in an unsigned zone: insecure NXDOMAIN",

        rfc: "RFC 4035 §5.2: insecure NXDOMAIN; RFC 5321 §5.1: bounce",
        mx: Mx::NxDomain(Sec::Insecure),
        hosts: &[],
    },
    Case {
        domain: "nullmx.test",
        about: "null MX (MX 0 .)",

        rfc: "RFC 7505 §3: a null MX takes no mail",
        mx: Mx::Null(Sec::Secure),
        hosts: &[],
    },
    Case {
        domain: "nomx.test",
        about: "no MX (secure NODATA): the domain is its own host, TLSA at _25._tcp.nomx.test",

        rfc: "RFC 5321 §5.1: no MX, the domain is its own host; RFC 7672 §2.2.3: TLSA at its name",
        mx: Mx::Implicit(Sec::Secure),
        hosts: &[Host {
            name: "nomx.test",
            preference: 0,
            cname: None,
            addrs: SECURE,
            aaaa: None,
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

        rfc: "RFC 7672 §2.2.2: insecure address records, no TLSA lookup",
        mx: Mx::Records(Sec::Secure),
        hosts: &[MX_UNSIGNED],
    },
    Case {
        domain: "cname.test",
        about: "CNAME'd MX hosts: TLSA at the target; fallback to the alias; no fallback after a failure",

        rfc: "RFC 7672 §2.2.2: TLSA at the expanded name, then the alias after a secure denial, never after a failure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[
            Host {
                name: "mx.cname.test",
                preference: 10,
                cname: Some("mx-target.secure.test"),
                addrs: SECURE,
                aaaa: None,
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
                aaaa: None,
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

        rfc: "RFC 7672 §3.1.3: PKIX usages and malformed digests are unusable; secure but unusable TLSA means mandatory TLS",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.unusable.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            aaaa: None,
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

        rfc: "RFC 7672 §2.2: a failed TLSA lookup makes the host unusable",
        mx: Mx::Records(Sec::Secure),
        hosts: &[MX_TLSA_FAIL],
    },
    Case {
        domain: "tlsa-insecure.test",
        about: "secure host whose TLSA records sit in an unsigned child zone: treated as none",

        rfc: "RFC 7672 §2.2: an insecure TLSA RRset counts as none",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.tlsa-insecure.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            aaaa: None,
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

        rfc: "RFC 7672 §2.2: a host whose addresses cannot be looked up is skipped",
        mx: Mx::Records(Sec::Secure),
        hosts: &[
            Host {
                name: "mx.bogus.test",
                preference: 10,
                cname: None,
                addrs: Lookup::Failed,
                aaaa: None,
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

        rfc: "RFC 7672 §2.2: a secure denial of TLSA: no DANE",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx-notlsa.secure.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            aaaa: None,
            ipv4: &["127.0.25.7"],
            ipv6: &[],
            tlsa: Tlsa::None,
            requirement: Requirement::NoDane,
        }],
    },
    Case {
        domain: "noaddr.test",
        about: "the only MX host exists without address records (secure NODATA): 550 5.4.4",

        rfc: "RFC 5321 §5.1: no address for any MX host; Postfix bounces",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.noaddr.test",
            preference: 10,
            cname: None,
            addrs: SECURE,
            aaaa: None,
            ipv4: &[],
            ipv6: &[],
            tlsa: Tlsa::NotLookedUp,
            requirement: Requirement::Failed,
        }],
    },
    Case {
        domain: "bare.noaddr.test",
        about: "no MX and no address records (secure NODATA): the implicit MX has no address, 550 5.4.4",

        rfc: "RFC 5321 §5.1: no MX and no address: Postfix bounces",
        mx: Mx::Implicit(Sec::Secure),
        hosts: &[Host {
            name: "bare.noaddr.test",
            preference: 0,
            cname: None,
            addrs: SECURE,
            aaaa: None,
            ipv4: &[],
            ipv6: &[],
            tlsa: Tlsa::NotLookedUp,
            requirement: Requirement::Failed,
        }],
    },
    // The zoo (`ZOO`).
    Case {
        domain: "nsec3.test",
        about: "signed with NSEC3 (no salt, no extra iterations): the AAAA NODATA is an NSEC3 proof",
        rfc: "RFC 5155 §8.5: an NSEC3 NODATA proof is as secure as an NSEC one; RFC 9276 §3.1: no salt, 0 iterations",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.nsec3.test", &["127.0.25.31"])],
    },
    Case {
        domain: "nosuch.nsec3.test",
        about: "a name that does not exist in an NSEC3 zone",
        rfc: "RFC 5155 §8.4: closest encloser, next closer and wildcard proven: secure NXDOMAIN",
        mx: Mx::NxDomain(Sec::Secure),
        hosts: &[],
    },
    Case {
        domain: "optout.test",
        about: "NSEC3 with opt-out; its own data is signed",
        rfc: "RFC 5155 §6: opt-out changes only what unsigned delegations prove; signed data stays secure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.optout.test", &["127.0.25.32"])],
    },
    Case {
        domain: "child.optout.test",
        about: "an unsigned delegation under an opt-out parent (no NSEC3 of its own)",
        rfc: "RFC 5155 §6, §8.6: an opt-out NSEC3 covering the DS name proves no signed delegation: insecure, not bogus",
        mx: Mx::Records(Sec::Insecure),
        hosts: &[zoo_unsigned_host("mx.child.optout.test", &["127.0.25.33"])],
    },
    Case {
        domain: "nosuch.optout.test",
        about: "a name that does not exist under an opt-out NSEC3 span",
        rfc: "RFC 5155 §8.4 leaves it open: the next closer name is covered by an opt-out NSEC3, whose span may hold unsigned delegations; unbound (the reference) calls it insecure, BIND's delv secure; 550 5.1.2 either way (RFC 5321 §5.1)",
        mx: Mx::NxDomain(Sec::Insecure),
        hosts: &[],
    },
    Case {
        domain: "alg7.test",
        about: "pre-signed (ldns) with RSASHA1-NSEC3-SHA1, algorithm 7",
        rfc: "RFC 8624 §3.1: validators MUST support algorithm 7 (signing it is NOT RECOMMENDED): secure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.alg7.test", &["127.0.25.37"])],
    },
    Case {
        domain: "alg8.test",
        about: "signed (knotd) with RSASHA256, algorithm 8",
        rfc: "RFC 8624 §3.1: validators MUST support algorithm 8: secure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.alg8.test", &["127.0.25.34"])],
    },
    Case {
        domain: "alg14.test",
        about: "signed (knotd) with ECDSAP384SHA384, algorithm 14",
        rfc: "RFC 8624 §3.1: algorithm 14 is RECOMMENDED for validators: secure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.alg14.test", &["127.0.25.35"])],
    },
    Case {
        domain: "alg15.test",
        about: "signed (knotd) with Ed25519, algorithm 15",
        rfc: "RFC 8624 §3.1, RFC 8080: algorithm 15 is RECOMMENDED for validators: secure",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.alg15.test", &["127.0.25.36"])],
    },
    Case {
        domain: "unknown-alg.test",
        about: "signed, but the parent's only DS is for algorithm 100, which nobody implements",
        rfc: "RFC 4035 §5.2: no supported algorithm in the DS RRset: the zone is insecure, never bogus",
        mx: Mx::Records(Sec::Insecure),
        hosts: &[zoo_unsigned_host("mx.unknown-alg.test", &["127.0.25.38"])],
    },
    Case {
        domain: "wildcard.test",
        about: "TLSA from a wildcard (*._tcp.mx) in an NSEC3 zone",
        rfc: "RFC 4035 §5.3.4, RFC 5155 §8.8: a wildcard expansion with the proof that the name itself is absent is secure; its TLSA record is used like any other",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.wildcard.test", &["127.0.25.39"])],
    },
    Case {
        domain: "shop.dname.test",
        about: "reached through dname.test DNAME dname-target.test (both signed); its MX host is named through the DNAME too",
        rfc: "RFC 6672 §5.3.1: the synthesised CNAME carries no signature and is checked against the validated DNAME: secure; RFC 7672 §2.2.2: TLSA at the expanded name",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            name: "mx.dname.test",
            preference: 10,
            cname: Some("mx.dname-target.test"),
            addrs: SECURE,
            aaaa: None,
            ipv4: &["127.0.25.40"],
            ipv6: &[],
            tlsa: Tlsa::Found {
                base: "mx.dname-target.test",
                usable: 1,
                total: 1,
            },
            requirement: Requirement::DaneRequired,
        }],
    },
    Case {
        domain: "mixed.test",
        about: "secure A, AAAA NODATA proven with 200 NSEC3 iterations (insecure): DANE for the IPv4 address",
        rfc: "RFC 9276 §3.2: above the iteration limit (150, as unbound) the denial is insecure, never bogus; dane-rules §2.1 per address (Postfix): each address RRset decides for its own addresses, and a NODATA contributes none",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            aaaa: Some(INSECURE),
            ..zoo_host("mx.mixed.test", &["127.0.25.41"])
        }],
    },
    Case {
        domain: "iter150.test",
        about: "NSEC3 with 150 iterations: at the limit",
        rfc: "RFC 9276 §3.2: 150 iterations is at the validators' limit (unbound 1.17, BIND 9.18): still validated",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.iter150.test", &["127.0.25.42"])],
    },
    Case {
        domain: "corrupt-tlsa.test",
        about: "pre-signed (ldns); the TLSA RRSIG has one byte of its signature changed",
        rfc: "RFC 4035 §5.3.3: a signature that does not verify makes the RRset bogus; RFC 7672 §2.2: the host fails, the domain is deferred",
        mx: Mx::Records(Sec::Secure),
        hosts: &[Host {
            tlsa: Tlsa::Failed {
                name: "_25._tcp.mx.corrupt-tlsa.test",
            },
            requirement: Requirement::Failed,
            ..zoo_host("mx.corrupt-tlsa.test", &["127.0.25.43"])
        }],
    },
    Case {
        domain: "xn--bcher-kva.test",
        about: "bücher.test: an internationalised domain, signed, in A-labels as DNS holds it",
        rfc: "RFC 5890 §2.3.2.1, RFC 5891 §4: DNS holds the A-label; RFC 6531: SMTPUTF8 mail names the U-label",
        mx: Mx::Records(Sec::Secure),
        hosts: &[zoo_host("mx.xn--bcher-kva.test", &["127.0.25.44"])],
    },
];
