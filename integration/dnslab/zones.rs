//! The lab's DNS data: which zones exist, who serves them, how each is
//! signed, and the generation of everything that must be fresh each run
//! (DNSSEC keys, DS records, certificates and the TLSA digests of them).
//!
//! The zone contents below are the truth the cases in `cases.rs` are
//! written against; change both together. This module writes files only:
//! starting and probing the daemons is `lab.rs`'s job.
//!
//! ```text
//!   .            root server 127.0.53.1  KSK + ZSK (like the IANA root); the trust anchor
//!   └ test.      TLD server  127.0.53.2  CSK
//!     ├ secure.test. … tlsa-insecure.test.   leaf server 127.0.53.3 (see ZONES)
//!     └ dead.test.   delegated to 127.0.53.99, where nothing listens
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::lab::{require_tool, run_ok, run_ok_stdin, write_file};

/// One authoritative knotd of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Serves the private root zone `.`.
    Root,
    /// Serves `test.`.
    Tld,
    /// Serves every zone below `test.`.
    Leaf,
}

impl Server {
    pub const ALL: [Server; 3] = [Server::Root, Server::Tld, Server::Leaf];

    pub const fn addr(self) -> SocketAddr {
        let last = match self {
            Server::Root => 1,
            Server::Tld => 2,
            Server::Leaf => 3,
        };
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, last), 53))
    }

    /// The name the parent's NS records use for this server.
    pub const fn ns_name(self) -> &'static str {
        match self {
            Server::Root => "a.root-servers.lab.",
            Server::Tld => "ns.test.",
            Server::Leaf => "ns-leaf.test.",
        }
    }

    /// Its directory in the lab (config, zone files, keys, log).
    pub const fn dir_name(self) -> &'static str {
        match self {
            Server::Root => "knot-root",
            Server::Tld => "knot-tld",
            Server::Leaf => "knot-leaf",
        }
    }
}

/// Where the lab delegates `dead.test.` (and `_tcp.mx.tlsa-fail.test.`):
/// nothing listens there, so lookups below it fail.
pub const DEAD_NS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 99), 53));

/// A DNSKEY algorithm the lab signs with, by its names in knotd, ldns and
/// the IANA registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// 7, RSASHA1-NSEC3-SHA1: legacy, still validated (RFC 8624 §3.1).
    Rsasha1Nsec3,
    /// 8, RSASHA256.
    Rsasha256,
    /// 13, ECDSA P-256 with SHA-256: what every other lab zone uses.
    Ecdsa256,
    /// 14, ECDSA P-384 with SHA-384.
    Ecdsa384,
    /// 15, Ed25519.
    Ed25519,
}

impl Algorithm {
    pub const fn knot(self) -> &'static str {
        match self {
            Algorithm::Rsasha1Nsec3 => "rsasha1-nsec3-sha1",
            Algorithm::Rsasha256 => "rsasha256",
            Algorithm::Ecdsa256 => "ecdsap256sha256",
            Algorithm::Ecdsa384 => "ecdsap384sha384",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub const fn ldns(self) -> &'static str {
        match self {
            Algorithm::Rsasha1Nsec3 => "RSASHA1-NSEC3-SHA1",
            Algorithm::Rsasha256 => "RSASHA256",
            Algorithm::Ecdsa256 => "ECDSAP256SHA256",
            Algorithm::Ecdsa384 => "ECDSAP384SHA384",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    pub const fn number(self) -> u8 {
        match self {
            Algorithm::Rsasha1Nsec3 => 7,
            Algorithm::Rsasha256 => 8,
            Algorithm::Ecdsa256 => 13,
            Algorithm::Ecdsa384 => 14,
            Algorithm::Ed25519 => 15,
        }
    }
}

/// How a signed zone proves that names and types do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Nsec,
    /// NSEC3 (RFC 5155), SHA-1, no salt, `iterations` additional hash
    /// iterations; with `opt_out` unsigned delegations get no NSEC3 record.
    Nsec3 {
        iterations: u16,
        opt_out: bool,
    },
}

/// How a pre-signed zone is broken on purpose, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every signature expired a week ago.
    Expired,
    /// The RRSIG over the TLSA RRset has one byte of its signature changed.
    TlsaSignature,
}

/// How a zone is (or is not) signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// knotd signs with a KSK and a separate ZSK, as the IANA root is signed.
    KskZsk,
    /// knotd signs with one combined signing key (CSK), ECDSA P-256, NSEC.
    Csk,
    /// knotd signs with a CSK of this algorithm and this denial.
    Knot(Algorithm, Denial),
    /// knotd signs with a CSK, but the parent's DS names a decoy key (made
    /// by keymgr in a separate key store) that the zone never uses: bogus.
    CskWrongDs,
    /// knotd signs with a CSK, but the parent's only DS is for DNSKEY
    /// algorithm 100, which nobody implements: a validator must treat the
    /// zone as unsigned (RFC 4035 §5.2), never as bogus.
    UnknownDsAlgorithm,
    /// Pre-signed by `ldns-signzone` (shapes knotd will not make), served by
    /// knotd as they are (`dnssec-signing: off`).
    Presigned(Algorithm, Denial, Fault),
    /// Not signed; the parent has no DS: provably insecure.
    Unsigned,
}

/// expired.test's signing: ldns, ECDSA P-256, NSEC, a week past expiry.
pub const EXPIRED: Signing = Signing::Presigned(Algorithm::Ecdsa256, Denial::Nsec, Fault::Expired);

impl Signing {
    /// The zone's data fails validation on purpose.
    pub fn is_bogus(self) -> bool {
        matches!(
            self,
            Signing::CskWrongDs | Signing::Presigned(_, _, Fault::Expired | Fault::TlsaSignature)
        )
    }

    /// The knotd policy that signs the zone, if knotd signs it.
    fn knot_policy(self) -> Option<(Algorithm, Denial, bool)> {
        match self {
            Signing::KskZsk => Some((Algorithm::Ecdsa256, Denial::Nsec, false)),
            Signing::Csk | Signing::CskWrongDs | Signing::UnknownDsAlgorithm => {
                Some((Algorithm::Ecdsa256, Denial::Nsec, true))
            }
            Signing::Knot(a, d) => Some((a, d, true)),
            Signing::Presigned(..) | Signing::Unsigned => None,
        }
    }
}

/// A knotd policy id for (algorithm, denial, single-type-signing).
fn policy_id((algorithm, denial, csk): (Algorithm, Denial, bool)) -> String {
    let denial = match denial {
        Denial::Nsec => "nsec".to_string(),
        Denial::Nsec3 {
            iterations,
            opt_out,
        } => format!("nsec3-{iterations}{}", if opt_out { "-optout" } else { "" }),
    };
    let keys = if csk { "csk" } else { "ksk-zsk" };
    format!("{keys}-{}-{denial}", algorithm.knot())
}

fn policy_text(p: (Algorithm, Denial, bool)) -> String {
    let (algorithm, denial, csk) = p;
    let mut s = format!(
        "  - id: {}\n    algorithm: {}\n    manual: on\n    single-type-signing: {}\n",
        policy_id(p),
        algorithm.knot(),
        if csk { "on" } else { "off" }
    );
    if let Denial::Nsec3 {
        iterations,
        opt_out,
    } = denial
    {
        let _ = write!(
            s,
            "    nsec3: on\n    nsec3-iterations: {iterations}\n    nsec3-salt-length: 0\n    nsec3-opt-out: {}\n",
            if opt_out { "on" } else { "off" }
        );
    }
    s
}

/// One zone of the lab. `records` is zone-file text relative to the zone's
/// origin; the SOA, the apex NS and every delegation to a child zone listed
/// in [`ZONES`] (NS, plus DS when the child is signed) are added by
/// [`zone_text`]. Placeholders fill in what is generated each run:
/// `{spki:HOST}` and `{cert:HOST}` are the SHA-256 of [`CERTS`] entry
/// HOST's SubjectPublicKeyInfo / whole certificate (`{cert:ca}`: the lab
/// CA's), `{spki-short:HOST}` the SPKI digest cut to 31 bytes.
#[derive(Debug)]
pub struct Zone {
    pub name: &'static str,
    pub server: Server,
    pub signing: Signing,
    pub records: &'static str,
}

/// Every zone of the lab, parents before children.
pub const ZONES: &[Zone] = &[
    Zone {
        name: ".",
        server: Server::Root,
        signing: Signing::KskZsk,
        records: "\
a.root-servers.lab. A 127.0.53.1
ns.test. A 127.0.53.2
",
    },
    Zone {
        name: "test.",
        server: Server::Tld,
        signing: Signing::Csk,
        records: "\
ns A 127.0.53.2
ns-leaf A 127.0.53.3
; delegated (without DS) to an address where nothing answers
dead NS ns.dead
ns.dead A 127.0.53.99
",
    },
    Zone {
        name: "secure.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx1
@ MX 20 mx2
mx1 A 127.0.25.1
mx1 AAAA ::1
_25._tcp.mx1 TLSA 3 1 1 {spki:mx1.secure.test}
mx2 A 127.0.25.2
_25._tcp.mx2 TLSA 2 0 1 {cert:ca}
; CNAME targets of cname.test's MX hosts, and notlsa.test's MX host
mx-target A 127.0.25.6
_25._tcp.mx-target TLSA 3 1 1 {spki:mx-target.secure.test}
mx-notlsa A 127.0.25.7
; a domain with DANE (its MX is mx1) and an MTA-STS policy that names no
; host of it (sts.rs): DANE decides
sts MX 10 mx1
_mta-sts.sts TXT \"v=STSv1; id=dane1\"
mta-sts.sts A 127.0.53.57
",
    },
    Zone {
        name: "unsigned.test.",
        server: Server::Leaf,
        signing: Signing::Unsigned,
        records: "\
@ MX 10 mx
mx A 127.0.25.3
_25._tcp.mx TLSA 3 1 1 {spki:mx.unsigned.test}
; an insecure MX RRset naming a secure host
secure-mx MX 10 mx1.secure.test.
",
    },
    Zone {
        name: "bogus.test.",
        server: Server::Leaf,
        signing: Signing::CskWrongDs,
        records: "\
@ MX 10 mx
mx A 127.0.25.4
_25._tcp.mx TLSA 3 1 1 {spki:mx.bogus.test}
",
    },
    Zone {
        name: "expired.test.",
        server: Server::Leaf,
        signing: EXPIRED,
        records: "\
@ MX 10 mx
mx A 127.0.25.5
_25._tcp.mx TLSA 3 1 1 {spki:mx.expired.test}
",
    },
    Zone {
        name: "cname.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx
@ MX 20 mx-fallback
@ MX 30 mx-nofallback
; the target has TLSA: it wins over this name's own
mx CNAME mx-target.secure.test.
_25._tcp.mx TLSA 3 1 1 {spki:mx.cname.test}
; the target has none (secure denial): fall back to this name's
mx-fallback CNAME mx-notlsa.secure.test.
_25._tcp.mx-fallback TLSA 3 1 1 {spki:mx-fallback.cname.test}
; the TLSA lookup at the target fails: no fallback to this name's
mx-nofallback CNAME mx.tlsa-fail.test.
_25._tcp.mx-nofallback TLSA 3 1 1 {spki:mx-nofallback.cname.test}
",
    },
    Zone {
        name: "nullmx.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 0 .
",
    },
    Zone {
        name: "nomx.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ A 127.0.25.8
_25._tcp TLSA 3 1 1 {spki:nomx.test}
",
    },
    Zone {
        name: "insecure-addr.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx.unsigned.test.
",
    },
    Zone {
        name: "unusable.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx
mx A 127.0.25.9
; PKIX-TA and PKIX-EE: unusable for SMTP (RFC 7672 section 3.1.3)
_25._tcp.mx TLSA 0 0 1 {cert:ca}
_25._tcp.mx TLSA 1 1 1 {spki:mx.unusable.test}
; DANE-EE, but a SHA-256 digest one byte short
_25._tcp.mx TLSA 3 1 1 {spki-short:mx.unusable.test}
",
    },
    Zone {
        name: "tlsa-fail.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx
mx A 127.0.25.10
; the TLSA name lies in a zone delegated to where nothing answers
_tcp.mx NS ns._tcp.mx
ns._tcp.mx A 127.0.53.99
",
    },
    Zone {
        name: "tlsa-insecure.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx
mx A 127.0.25.11
",
    },
    Zone {
        name: "_tcp.mx.tlsa-insecure.test.",
        server: Server::Leaf,
        signing: Signing::Unsigned,
        records: "\
_25 TLSA 3 1 1 {spki:mx.tlsa-insecure.test}
",
    },
    Zone {
        name: "addr-fail.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
; the first host's address lookup fails (bogus zone): skip it, use the second
@ MX 10 mx.bogus.test.
@ MX 20 mx1.secure.test.
",
    },
    Zone {
        name: "notlsa.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx-notlsa.secure.test.
",
    },
    Zone {
        name: "noaddr.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
; names that exist (TXT) without A or AAAA: no host to deliver to
@ MX 10 mx
mx TXT \"an MX host without addresses\"
bare TXT \"no MX, no addresses\"
",
    },
    Zone {
        // The TLS interoperability receivers' domains: generated from the
        // tables in interop_cases.rs (zone_records).
        name: "interop.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "",
    },
    Zone {
        name: "faults.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
; the fault run's destination (faultrun.rs), which changes the TLSA RRset
; while mail flows (knotc zone transactions; knotd re-signs); TTLs of 2 s so
; that resolvers and danegate see every change within seconds
@ 2 MX 10 mx
mx 2 A 127.0.25.12
_25._tcp.mx 2 TLSA 3 1 1 {spki:mx.faults.test}
; an MTA-STS domain for the fault run (policy host down and back while
; mail flows): the same receiver under a name without TLSA records, so
; MTA-STS decides
sts 2 MX 10 mx-sts
mx-sts 2 A 127.0.25.12
_mta-sts.sts 2 TXT \"v=STSv1; id=f1\"
mta-sts.sts A 127.0.53.57
",
    },
    Zone {
        name: "sts.test.",
        server: Server::Leaf,
        signing: Signing::Unsigned,
        records: "\
; MTA-STS destinations (sts.rs), unsigned as most such domains are; every
; policy host is the lab's HTTPS policy server (127.0.53.57:443), every MX
; host mx.sts.test (127.0.25.13). TXT TTLs of 2 s: the tests change ids.
mx A 127.0.25.13
; enforce, mx: mx.sts.test
@ MX 10 mx
_mta-sts 2 TXT \"v=STSv1; id=1\"
mta-sts A 127.0.53.57
; testing, mx: mx.sts.test
testing MX 10 mx
_mta-sts.testing 2 TXT \"v=STSv1; id=1\"
mta-sts.testing A 127.0.53.57
; enforce, mx: mx.elsewhere.test (not this domain's MX host)
notlisted MX 10 mx
_mta-sts.notlisted 2 TXT \"v=STSv1; id=1\"
mta-sts.notlisted A 127.0.53.57
; a policy body over 64 KiB
big MX 10 mx
_mta-sts.big 2 TXT \"v=STSv1; id=1\"
mta-sts.big A 127.0.53.57
; a policy served through a redirect
redirect MX 10 mx
_mta-sts.redirect 2 TXT \"v=STSv1; id=1\"
mta-sts.redirect A 127.0.53.57
",
    },
    // The zoo: zone shapes of the real Internet (README "The zoo").
    Zone {
        name: "nsec3.test.",
        server: Server::Leaf,
        signing: Signing::Knot(
            Algorithm::Ecdsa256,
            Denial::Nsec3 {
                iterations: 0,
                opt_out: false,
            },
        ),
        records: "\
@ MX 10 mx
mx A 127.0.25.31
_25._tcp.mx TLSA 3 1 1 {spki:mx.nsec3.test}
",
    },
    Zone {
        name: "optout.test.",
        server: Server::Leaf,
        signing: Signing::Knot(
            Algorithm::Ecdsa256,
            Denial::Nsec3 {
                iterations: 0,
                opt_out: true,
            },
        ),
        records: "\
@ MX 10 mx
mx A 127.0.25.32
_25._tcp.mx TLSA 3 1 1 {spki:mx.optout.test}
",
    },
    Zone {
        name: "child.optout.test.",
        server: Server::Leaf,
        signing: Signing::Unsigned,
        records: "\
@ MX 10 mx
mx A 127.0.25.33
_25._tcp.mx TLSA 3 1 1 {spki:mx.child.optout.test}
",
    },
    Zone {
        name: "alg7.test.",
        server: Server::Leaf,
        signing: Signing::Presigned(
            Algorithm::Rsasha1Nsec3,
            Denial::Nsec3 {
                iterations: 0,
                opt_out: false,
            },
            Fault::None,
        ),
        records: "\
@ MX 10 mx
mx A 127.0.25.37
_25._tcp.mx TLSA 3 1 1 {spki:mx.alg7.test}
",
    },
    Zone {
        name: "alg8.test.",
        server: Server::Leaf,
        signing: Signing::Knot(Algorithm::Rsasha256, Denial::Nsec),
        records: "\
@ MX 10 mx
mx A 127.0.25.34
_25._tcp.mx TLSA 3 1 1 {spki:mx.alg8.test}
",
    },
    Zone {
        name: "alg14.test.",
        server: Server::Leaf,
        signing: Signing::Knot(Algorithm::Ecdsa384, Denial::Nsec),
        records: "\
@ MX 10 mx
mx A 127.0.25.35
_25._tcp.mx TLSA 3 1 1 {spki:mx.alg14.test}
",
    },
    Zone {
        name: "alg15.test.",
        server: Server::Leaf,
        signing: Signing::Knot(Algorithm::Ed25519, Denial::Nsec),
        records: "\
@ MX 10 mx
mx A 127.0.25.36
_25._tcp.mx TLSA 3 1 1 {spki:mx.alg15.test}
",
    },
    Zone {
        name: "unknown-alg.test.",
        server: Server::Leaf,
        signing: Signing::UnknownDsAlgorithm,
        records: "\
@ MX 10 mx
mx A 127.0.25.38
_25._tcp.mx TLSA 3 1 1 {spki:mx.unknown-alg.test}
",
    },
    Zone {
        name: "wildcard.test.",
        server: Server::Leaf,
        signing: Signing::Knot(
            Algorithm::Ecdsa256,
            Denial::Nsec3 {
                iterations: 0,
                opt_out: false,
            },
        ),
        records: "\
@ MX 10 mx
mx A 127.0.25.39
; _25._tcp.mx is synthesised from the wildcard
*._tcp.mx TLSA 3 1 1 {spki:mx.wildcard.test}
",
    },
    Zone {
        name: "dname.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
; every name below dname.test is one below dname-target.test (RFC 6672)
@ DNAME dname-target.test.
",
    },
    Zone {
        name: "dname-target.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
; shop.dname.test's MX host is named through the DNAME as well
shop MX 10 mx.dname.test.
mx A 127.0.25.40
_25._tcp.mx TLSA 3 1 1 {spki:mx.dname-target.test}
",
    },
    Zone {
        name: "mixed.test.",
        server: Server::Leaf,
        signing: Signing::Knot(
            Algorithm::Ecdsa256,
            Denial::Nsec3 {
                iterations: 200,
                opt_out: false,
            },
        ),
        records: "\
; no AAAA: its NODATA proof has 200 NSEC3 iterations, above every
; validator's limit (insecure); the A and TLSA records are signed (secure)
@ MX 10 mx
mx A 127.0.25.41
_25._tcp.mx TLSA 3 1 1 {spki:mx.mixed.test}
",
    },
    Zone {
        name: "iter150.test.",
        server: Server::Leaf,
        signing: Signing::Knot(
            Algorithm::Ecdsa256,
            Denial::Nsec3 {
                iterations: 150,
                opt_out: false,
            },
        ),
        records: "\
; 150 NSEC3 iterations: at the limit, still validated
@ MX 10 mx
mx A 127.0.25.42
_25._tcp.mx TLSA 3 1 1 {spki:mx.iter150.test}
",
    },
    Zone {
        name: "corrupt-tlsa.test.",
        server: Server::Leaf,
        signing: Signing::Presigned(Algorithm::Ecdsa256, Denial::Nsec, Fault::TlsaSignature),
        records: "\
@ MX 10 mx
mx A 127.0.25.43
_25._tcp.mx TLSA 3 1 1 {spki:mx.corrupt-tlsa.test}
",
    },
    Zone {
        // bücher.test: an internationalised domain, in A-labels as DNS has it
        name: "xn--bcher-kva.test.",
        server: Server::Leaf,
        signing: Signing::Csk,
        records: "\
@ MX 10 mx
mx A 127.0.25.44
_25._tcp.mx TLSA 3 1 1 {spki:mx.xn--bcher-kva.test}
",
    },
];

/// Who issued a host's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// Self-signed: for DANE-EE (`3 x x`) records.
    SelfSigned,
    /// The lab CA (`certs/ca.cert.pem`): for DANE-TA (`2 x x`) records.
    LabCa,
    /// The interoperability receivers' intermediate CA, below their root
    /// (`interop_pki.rs`).
    InteropCa,
}

/// The certificates the lab makes, one per name. The zones publish TLSA
/// records for them; a receiver at the host's address can present them.
/// Certificates named only by a decoy record (never served) are here too.
pub const CERTS: &[(&str, Issuer)] = &[
    ("mx1.secure.test", Issuer::SelfSigned),
    ("mx2.secure.test", Issuer::LabCa),
    ("mx-target.secure.test", Issuer::SelfSigned),
    ("mx.unsigned.test", Issuer::SelfSigned),
    ("mx.bogus.test", Issuer::SelfSigned),
    ("mx.expired.test", Issuer::SelfSigned),
    ("mx.cname.test", Issuer::SelfSigned),
    ("mx-fallback.cname.test", Issuer::SelfSigned),
    ("mx-nofallback.cname.test", Issuer::SelfSigned),
    ("nomx.test", Issuer::SelfSigned),
    ("mx.unusable.test", Issuer::SelfSigned),
    ("mx.tlsa-insecure.test", Issuer::SelfSigned),
    // The fault run's receiver: its first key, the key it rolls over to,
    // and a key it never has (a TLSA record naming it mismatches).
    ("mx.faults.test", Issuer::SelfSigned),
    ("mx-next.faults.test", Issuer::SelfSigned),
    ("mx-wrong.faults.test", Issuer::SelfSigned),
    // The zoo.
    ("mx.nsec3.test", Issuer::SelfSigned),
    ("mx.optout.test", Issuer::SelfSigned),
    ("mx.child.optout.test", Issuer::SelfSigned),
    ("mx.alg7.test", Issuer::SelfSigned),
    ("mx.alg8.test", Issuer::SelfSigned),
    ("mx.alg14.test", Issuer::SelfSigned),
    ("mx.alg15.test", Issuer::SelfSigned),
    ("mx.unknown-alg.test", Issuer::SelfSigned),
    ("mx.wildcard.test", Issuer::SelfSigned),
    ("mx.dname-target.test", Issuer::SelfSigned),
    ("mx.mixed.test", Issuer::SelfSigned),
    ("mx.iter150.test", Issuer::SelfSigned),
    ("mx.corrupt-tlsa.test", Issuer::SelfSigned),
    ("mx.xn--bcher-kva.test", Issuer::SelfSigned),
];

/// A generated certificate and key, as files in the lab directory.
#[derive(Debug, Clone)]
pub struct HostCert {
    pub name: String,
    pub issuer: Issuer,
    /// PKCS#8 private key, PEM.
    pub key_pem: PathBuf,
    /// The certificate followed by its issuer's (for `LabCa`), PEM.
    pub chain_pem: PathBuf,
    /// SHA-256 of the SubjectPublicKeyInfo, lower-case hex (TLSA `x 1 1`).
    pub spki_sha256: String,
    /// SHA-256 of the whole certificate, lower-case hex (TLSA `x 0 1`).
    pub cert_sha256: String,
}

/// The lab's certificates: the CA's and one per [`CERTS`] entry.
#[derive(Debug)]
pub struct Certs {
    pub ca: HostCert,
    pub hosts: BTreeMap<String, HostCert>,
}

/// Makes the lab CA and every certificate of [`CERTS`] under `dir`.
pub fn make_certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let ca_key = rcgen::KeyPair::generate().expect("rcgen CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "danegate DNS lab CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .expect("rcgen CA certificate");
    let ca = save_cert(dir, "ca", Issuer::SelfSigned, &ca_key, &ca_cert, None);

    let mut hosts = BTreeMap::new();
    for &(name, issuer) in CERTS {
        let key = rcgen::KeyPair::generate().expect("rcgen key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let cert = match issuer {
            Issuer::SelfSigned => params.self_signed(&key),
            Issuer::LabCa => params.signed_by(&key, &ca_cert, &ca_key),
            Issuer::InteropCa => unreachable!("interop certificates come from interop_pki"),
        }
        .expect("rcgen certificate");
        let chain_tail = (issuer == Issuer::LabCa).then_some(&ca_cert);
        let hc = save_cert(dir, name, issuer, &key, &cert, chain_tail);
        hosts.insert(name.to_string(), hc);
    }
    hosts.extend(crate::interop_cases::make_certs(&dir.join("interop")));
    Certs { ca, hosts }
}

fn save_cert(
    dir: &Path,
    name: &str,
    issuer: Issuer,
    key: &rcgen::KeyPair,
    cert: &rcgen::Certificate,
    chain_tail: Option<&rcgen::Certificate>,
) -> HostCert {
    let key_pem = dir.join(format!("{name}.key.pem"));
    let chain_pem = dir.join(format!("{name}.cert.pem"));
    write_file(&key_pem, key.serialize_pem());
    let mut chain = cert.pem();
    if let Some(tail) = chain_tail {
        chain.push_str(&tail.pem());
    }
    write_file(&chain_pem, chain);
    HostCert {
        name: name.to_string(),
        issuer,
        key_pem,
        chain_pem,
        spki_sha256: sha256_hex(&key.public_key_der()),
        cert_sha256: sha256_hex(cert.der()),
    }
}

/// SHA-256 by `openssl dgst` (the lab uses no hashing crate of its own).
fn sha256_hex(data: &[u8]) -> String {
    let out = run_ok_stdin(
        Command::new(require_tool("openssl")).args(["dgst", "-sha256", "-r"]),
        Some(data),
    );
    let hex = out.split_whitespace().next().unwrap_or("");
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected `openssl dgst` output: {out:?}"
    );
    hex.to_ascii_lowercase()
}

/// The DNSSEC material generated before any daemon starts.
#[derive(Debug, Default)]
pub struct Keys {
    /// DS records (`NAME. DS tag alg 2 digest`, SHA-256 only) to publish in
    /// each signed zone's parent, by zone name.
    pub ds: BTreeMap<String, String>,
    /// The root's KSK as a DNSKEY record: `. DNSKEY 257 3 13 ...`.
    pub root_dnskey: String,
    /// The root's KSK as a DS record: `. DS tag 13 2 ...`.
    pub root_ds: String,
}

/// The knotd config of `server`, which serves `zones`.
pub fn knot_conf(server: Server, dir: &Path) -> String {
    let d = dir.display();
    let mut s = format!(
        "# Generated by danegate's DNS lab (integration/dnslab/zones.rs).\n\
         server:\n    rundir: \"{d}\"\n    listen: {ip}@{port}\n\n\
         database:\n    storage: \"{d}\"\n    kasp-db: \"{d}/keys\"\n    \
         journal-db: \"{d}/journal\"\n    timer-db: \"{d}/timers\"\n\n\
         log:\n  - target: \"{d}/knotd.log\"\n    any: info\n\n\
         policy:\n{policies}\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    \
         # never write the signed zone back: zones/ keeps what was generated\n    \
         zonefile-sync: -1\n    journal-content: none\n\nzone:\n",
        ip = server.addr().ip(),
        port = server.addr().port(),
        policies = knot_policies(),
    );
    for z in ZONES.iter().filter(|z| z.server == server) {
        let _ = write!(
            s,
            "  - domain: \"{}\"\n    file: \"{}\"\n",
            z.name,
            zone_file_name(z)
        );
        match z.signing.knot_policy() {
            Some(p) => {
                let _ = write!(
                    s,
                    "    dnssec-signing: on\n    dnssec-policy: {}\n",
                    policy_id(p)
                );
            }
            None => s.push_str("    dnssec-signing: off\n"),
        }
    }
    s
}

/// Every knotd policy the zones use, once each.
fn knot_policies() -> String {
    let mut seen = Vec::new();
    for p in ZONES.iter().filter_map(|z| z.signing.knot_policy()) {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen.into_iter().map(policy_text).collect()
}

/// The file knotd loads for `zone`, relative to its `zones/` directory.
pub fn zone_file_name(zone: &Zone) -> String {
    match zone.name {
        "." => "root.zone".to_string(),
        n => format!("{}zone", n),
    }
}

/// Generates the keys of every signed zone: keymgr for the zones knotd
/// signs (in each server's KASP database, so knotd finds them at start),
/// keymgr in a separate store for the decoy DS, ldns-keygen for the
/// pre-signed zones (ldns-signzone needs BIND-format keys).
pub fn make_keys(lab: &Path) -> Keys {
    let keymgr = require_tool("keymgr");
    let mut keys = Keys::default();
    for z in ZONES {
        let conf = lab.join(z.server.dir_name()).join("knot.conf");
        let knot_keymgr = |args: &[&str]| {
            run_ok(
                Command::new(&keymgr)
                    .arg("-c")
                    .arg(&conf)
                    .arg(z.name)
                    .args(args),
            )
        };
        if let Some((algorithm, _, csk)) = z.signing.knot_policy() {
            let alg = format!("algorithm={}", algorithm.knot());
            if csk {
                knot_keymgr(&["generate", &alg, "ksk=yes", "zsk=yes"]);
            } else {
                knot_keymgr(&["generate", &alg, "ksk=yes", "zsk=no"]);
                knot_keymgr(&["generate", &alg, "ksk=no", "zsk=yes"]);
            }
        }
        let ds = match z.signing {
            // keymgr prints a DS (SHA-256 and SHA-384) for each KSK only.
            Signing::KskZsk | Signing::Csk | Signing::Knot(..) => knot_keymgr(&["ds"]),
            Signing::CskWrongDs => {
                let decoy = lab.join("decoy-keys");
                let decoy_keymgr = |args: &[&str]| {
                    run_ok(
                        Command::new(&keymgr)
                            .arg("-D")
                            .arg(&decoy)
                            .arg(z.name)
                            .args(args),
                    )
                };
                decoy_keymgr(&[
                    "generate",
                    "algorithm=ecdsap256sha256",
                    "ksk=yes",
                    "zsk=yes",
                ]);
                decoy_keymgr(&["ds"])
            }
            Signing::UnknownDsAlgorithm => {
                // A well-formed DS for algorithm 100 (unassigned): its
                // digest is of the zone name, as no key of that algorithm
                // can exist.
                let digest = sha256_hex(z.name.as_bytes());
                keys.ds.insert(
                    z.name.to_string(),
                    format!("{} DS 4242 100 2 {digest}", z.name),
                );
                continue;
            }
            Signing::Presigned(algorithm, ..) => ldns_key(lab, z, algorithm),
            Signing::Unsigned => continue,
        };
        keys.ds.insert(z.name.to_string(), sha256_ds(&ds, z.name));
        if z.name == "." {
            let dnskey = knot_keymgr(&["dnskey"]);
            let lines: Vec<&str> = dnskey
                .lines()
                .filter(|l| l.contains(" DNSKEY 257 "))
                .collect();
            assert_eq!(
                lines.len(),
                1,
                "expected one root KSK from keymgr dnskey:\n{dnskey}"
            );
            keys.root_dnskey = lines[0].trim().to_string();
            keys.root_ds = keys.ds["."].clone();
        }
    }
    keys
}

/// The SHA-256 DS line (digest type 2) out of keymgr's or ldns's output,
/// normalised to `NAME. DS tag alg 2 digest`.
fn sha256_ds(out: &str, zone: &str) -> String {
    let found: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let at = f.iter().position(|&x| x == "DS")?;
            let rdata = f.get(at + 1..at + 5)?;
            (rdata[2] == "2").then(|| format!("{zone} DS {}", rdata.join(" ")))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one SHA-256 DS for {zone} in:\n{out}"
    );
    found.into_iter().next().unwrap_or_default()
}

/// Makes the ldns key of a pre-signed zone in `ldns-keys/`; returns its
/// DS as printed by ldns-key2ds.
fn ldns_key(lab: &Path, zone: &Zone, algorithm: Algorithm) -> String {
    let dir = lab.join("ldns-keys");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let mut keygen = Command::new(require_tool("ldns-keygen"));
    keygen.current_dir(&dir).args(["-a", algorithm.ldns()]);
    if matches!(algorithm, Algorithm::Rsasha1Nsec3 | Algorithm::Rsasha256) {
        keygen.args(["-b", "2048"]);
    }
    let base = run_ok(keygen.args(["-k", zone.name]));
    let base = base.trim();
    assert!(
        base.starts_with('K'),
        "unexpected ldns-keygen output: {base:?}"
    );
    run_ok(
        Command::new(require_tool("ldns-key2ds"))
            .current_dir(&dir)
            .args(["-n", "-2"])
            .arg(format!("{base}.key")),
    )
}

/// Signs a zone's generated text with its ldns key, as its [`Signing`]
/// says: signatures valid from a day ago for 30 days, or (Fault::Expired)
/// with an inception 37 days and an expiration 7 days in the past
/// (validators forgive clock skew: unbound up to 10% of the validity
/// period, at most a day); NSEC or NSEC3 (no salt); then the fault, if any,
/// is made in the signed text.
pub fn presign(lab: &Path, zone: &Zone, unsigned: &Path, signed: &Path) {
    let Signing::Presigned(algorithm, denial, fault) = zone.signing else {
        panic!("{} is not a pre-signed zone", zone.name);
    };
    let dir = lab.join("ldns-keys");
    let wanted = format!("K{}+{:03}+", zone.name, algorithm.number());
    let base = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find_map(|n| {
            n.strip_suffix(".private")
                .filter(|b| b.starts_with(&wanted))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no ldns key {wanted}* in {}", dir.display()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let day = 86_400;
    let (inception, expiration) = match fault {
        Fault::Expired => (now - 37 * day, now - 7 * day),
        Fault::None | Fault::TlsaSignature => (now - day, now + 30 * day),
    };
    let mut cmd = Command::new(require_tool("ldns-signzone"));
    cmd.arg("-i")
        .arg(inception.to_string())
        .arg("-e")
        .arg(expiration.to_string());
    if let Denial::Nsec3 {
        iterations,
        opt_out,
    } = denial
    {
        cmd.args(["-n", "-t", &iterations.to_string()]);
        if opt_out {
            cmd.arg("-p");
        }
    }
    run_ok(
        cmd.arg("-o")
            .arg(zone.name)
            .arg("-f")
            .arg(signed)
            .arg(unsigned)
            .arg(dir.join(base)),
    );
    if fault == Fault::TlsaSignature {
        let text = crate::lab::read_text(signed);
        write_file(signed, corrupt_tlsa_signature(&text, zone.name));
    }
}

/// `text` (ldns-signzone's output) with one character of the signature of
/// every RRSIG over a TLSA RRset changed, so that it stays well-formed
/// base64 of the same length but no longer verifies.
fn corrupt_tlsa_signature(text: &str, zone: &str) -> String {
    let mut changed = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let line = line.trim_end();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let covers_tlsa = fields.get(3) == Some(&"RRSIG") && fields.get(4) == Some(&"TLSA");
            let Some(sig) = fields.last().filter(|_| covers_tlsa) else {
                return line.to_string();
            };
            // The middle of the signature: never padding, never the
            // leading bytes of a DER or length prefix.
            let at = sig.len() / 2;
            let old = sig.as_bytes()[at];
            let new = if old == b'A' { 'B' } else { 'A' };
            let mut bad = sig.to_string();
            bad.replace_range(at..=at, &new.to_string());
            changed += 1;
            let keep = line.len() - sig.len();
            format!("{}{bad}", &line[..keep])
        })
        .collect();
    assert!(changed > 0, "no RRSIG over TLSA in the signed {zone}");
    lines.join("\n") + "\n"
}

/// The closest enclosing zone of `name` among [`ZONES`] other than itself.
pub fn parent_zone(name: &str) -> Option<&'static Zone> {
    ZONES
        .iter()
        .filter(|z| z.name != name && is_subdomain(name, z.name))
        .max_by_key(|z| z.name.len())
}

fn is_subdomain(name: &str, zone: &str) -> bool {
    zone == "." || name.ends_with(&format!(".{zone}"))
}

/// The complete zone file of `zone` (unsigned; knotd or ldns signs it).
pub fn zone_text(zone: &Zone, keys: &Keys, certs: &Certs) -> String {
    let ns = zone.server.ns_name();
    let mut s = format!(
        "; Generated by danegate's DNS lab (integration/dnslab/zones.rs): {:?}\n\
         $ORIGIN {}\n$TTL 300\n\
         @ SOA {ns} hostmaster.test. 1 3600 600 86400 300\n@ NS {ns}\n",
        zone.signing, zone.name,
    );
    if zone.name == crate::interop_cases::ZONE {
        s.push_str(&crate::interop_cases::zone_records(&certs.hosts));
    } else {
        s.push_str(&fill_placeholders(zone.records, certs));
    }
    for child in ZONES
        .iter()
        .filter(|c| parent_zone(c.name).is_some_and(|p| p.name == zone.name))
    {
        let _ = writeln!(s, "; delegation ({:?} child)", child.signing);
        let _ = writeln!(s, "{} NS {}", child.name, child.server.ns_name());
        if let Some(ds) = keys.ds.get(child.name) {
            let _ = writeln!(s, "{ds}");
        }
    }
    s
}

fn fill_placeholders(records: &str, certs: &Certs) -> String {
    let mut out = String::new();
    let mut rest = records;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or_else(|| panic!("unclosed placeholder in zone records: {rest}"));
        let (kind, host) = rest[open + 1..close]
            .split_once(':')
            .unwrap_or_else(|| panic!("bad placeholder {}", &rest[open..=close]));
        let cert = if host == "ca" {
            &certs.ca
        } else {
            certs
                .hosts
                .get(host)
                .unwrap_or_else(|| panic!("placeholder names {host}, which is not in CERTS"))
        };
        match kind {
            "spki" => out.push_str(&cert.spki_sha256),
            "cert" => out.push_str(&cert.cert_sha256),
            "spki-short" => out.push_str(&cert.spki_sha256[..62]),
            _ => panic!("unknown placeholder kind {kind}"),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}
