//! The DNS layer, in the project's own terms.
//!
//! Every answer is classified as [`Security::Secure`] or
//! [`Security::Insecure`], or the lookup failed with a [`DnsFailure`]
//! (bogus, SERVFAIL, timeout...). A failure never downgrades to "no
//! records": callers defer. Nothing outside this module names a hickory
//! type: [`hickory`] is the one place that knows the library, and the
//! [`Resolver`] trait lets tests swap it for a table.
//!
//! This module answers questions about names; deciding what to do with the
//! answers is `nexthop`'s job.

pub mod hickory;

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// A boxed future, so that [`Resolver`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether an answer was validated by DNSSEC up to a trust anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Secure,
    Insecure,
}

impl Security {
    pub fn is_secure(self) -> bool {
        self == Security::Secure
    }

    /// The weaker of two: a chain is only as secure as its weakest link.
    pub fn and(self, other: Security) -> Security {
        if self.is_secure() && other.is_secure() {
            Security::Secure
        } else {
            Security::Insecure
        }
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::Secure => "secure",
            Security::Insecure => "insecure",
        })
    }
}

/// The outcome of a lookup that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// At least one record. `canonical` is the name the records are owned
    /// by when the queried name was a CNAME (alias) for it.
    Records {
        records: Vec<T>,
        security: Security,
        canonical: Option<String>,
    },
    /// The name exists but has no records of this type.
    NoData { security: Security },
    /// The name does not exist.
    NxDomain { security: Security },
}

impl<T> Lookup<T> {
    pub fn security(&self) -> Security {
        match self {
            Lookup::Records { security, .. }
            | Lookup::NoData { security }
            | Lookup::NxDomain { security } => *security,
        }
    }

    /// The records, or an empty slice for a denial.
    pub fn records(&self) -> &[T] {
        match self {
            Lookup::Records { records, .. } => records,
            _ => &[],
        }
    }
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// DNSSEC validation failed.
    Bogus,
    /// The resolver answered SERVFAIL.
    ServFail,
    /// No answer in time.
    Timeout,
    /// The resolver refused the query.
    Refused,
    /// Anything else (network error, malformed answer...).
    Other(String),
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Bogus => f.write_str("DNSSEC validation failed (bogus)"),
            FailureKind::ServFail => f.write_str("server failure (SERVFAIL)"),
            FailureKind::Timeout => f.write_str("timed out"),
            FailureKind::Refused => f.write_str("query refused"),
            FailureKind::Other(s) => f.write_str(s),
        }
    }
}

/// A failed lookup of `name`/`rtype`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rtype} lookup for {name} failed: {kind}")]
pub struct DnsFailure {
    pub name: String,
    pub rtype: &'static str,
    pub kind: FailureKind,
}

/// One MX record. A null MX (RFC 7505) has exchange ".".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Host name, lowercase, no trailing dot ("." for a null MX).
    pub exchange: String,
}

pub type LookupResult<T> = Result<Lookup<T>, DnsFailure>;

/// The questions danegate asks of DNS. Names are fully qualified (no
/// search list), without trailing dot.
pub trait Resolver: Send + Sync {
    fn mx<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Mx>>;
    fn ipv4<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv4Addr>>;
    fn ipv6<'a>(&'a self, name: &'a str) -> BoxFuture<'a, LookupResult<Ipv6Addr>>;
}
