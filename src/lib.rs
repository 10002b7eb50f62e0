//! danegate: an SMTP relay that puts DANE (RFC 7672) in front of mail
//! servers that cannot do it themselves.
//!
//! A map of the modules, following the mail's path:
//!
//! - [`server`]: listeners, the client allow list, the connection limit,
//!   graceful shutdown.
//! - [`smtp`]: the pure SMTP codec (commands, replies, EHLO capabilities,
//!   the DATA stream), no I/O.
//! - [`inbound`]: the legacy MTA's session ([`inbound::connection`] owns
//!   the bytes, [`inbound::session`] the protocol state and the cut-through
//!   relay of each transaction, [`inbound::answer`] every reply it sends).
//! - [`outbound`]: the destination side: [`outbound::plan`] (MX, address
//!   and TLSA lookups turned into hosts with their TLS requirement,
//!   dane-rules §1–2), [`outbound::connect`] (the first host that takes a
//!   conversation), [`outbound::pool`] (idle conversations for reuse),
//!   [`outbound::client`] (the SMTP client conversation),
//!   [`outbound::stage`] (each state's timeout and description) and
//!   [`outbound::failure`] (why an attempt failed, as a reply).
//! - [`tls`]: every rustls and OpenSSL type: [`tls::config`] (the one
//!   client configuration builder), the certificate verifiers
//!   ([`tls::opportunistic`], [`tls::dane`], and [`tls::record`] for
//!   `check`), [`tls::tlsa`] (TLSA record semantics), [`tls::stream`] (the
//!   STARTTLS stream, with either engine), [`tls::state`] (how a connection
//!   was protected), [`tls::webpki`] (WebPKI roots and the MTA-STS
//!   certificate verifier), and the legacy engine for servers rustls cannot
//!   talk to: [`tls::legacy`] (OpenSSL under the same verifiers),
//!   [`tls::fallback`] (when it may be used), [`tls::keys`],
//!   [`tls::chain_algs`], [`tls::version`].
//! - [`sts`]: MTA-STS (RFC 8461): the `_mta-sts` record, the policy
//!   parser, mx patterns, the HTTPS fetch, the policy cache in [`state`],
//!   discovery, and what a policy means for a domain's hosts
//!   ([`sts::apply`]); [`outbound::mtasts`] carries it out.
//! - [`dns`]: the resolver trait and answers classified secure / insecure /
//!   failed (bogus with its cause); the validator ([`dns::hickory`] over a
//!   CD-bit forwarder, with the DNAME, CNAME-denial and NSEC3 opt-out
//!   corrections), [`dns::explain`] (why an answer is bogus),
//!   [`dns::idn`] (U-labels to A-labels), [`dns::selftest`] (the doctor's
//!   questions); only `dns/` names hickory types.
//! - [`policy`]: the pure policy decision (dane-rules §4, MTA-STS).
//! - [`config`]: the TOML configuration; [`cli`] and [`logging`]: the
//!   binary's surface; [`metrics`]: Prometheus counters and their endpoint.
//! - [`state`]: the embedded database that survives restarts.
//! - [`ops`]: operator commands ([`ops::check`], [`ops::resolve`],
//!   [`ops::doctor`], [`ops::tlsa`]: `generate | verify | published`,
//!   [`ops::sts`]: `show | refresh | forget`, which reaches a running
//!   danegate through [`control`], its control socket), sharing
//!   [`ops::certs`] (certificate facts), [`ops::dates`] and
//!   [`ops::lookups`] (every DNS lookup a command made).
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod dns;
pub mod inbound;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod server;
pub mod smtp;
pub mod state;
pub mod sts;
pub mod tls;
