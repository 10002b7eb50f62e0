//! danegate: an SMTP relay that puts DANE (RFC 7672) in front of mail
//! servers that cannot do it themselves.
//!
//! A map of the modules, from the wire inwards:
//!
//! - [`server`]: listeners, the client allow list, the connection limit,
//!   graceful shutdown.
//! - [`inbound`]: the legacy MTA's SMTP session ([`inbound::connection`]
//!   owns the bytes, [`inbound::session`] the protocol state and the
//!   cut-through relay of each transaction).
//! - [`smtp`]: the pure SMTP codec (commands, replies, EHLO capabilities,
//!   the DATA stream), no I/O.
//! - [`relay`]: planning a destination and opening a conversation with the
//!   first host that takes it.
//! - [`outbound`]: the SMTP client conversation with one destination
//!   address, STARTTLS included; [`stage`] holds each of its states'
//!   timeouts and descriptions.
//! - [`tls`]: rustls client configuration and the certificate verifier
//!   slot.
//! - [`nexthop`]: MX and address lookups turned into an ordered list of
//!   hosts with their TLS requirement (dane-rules §1–2).
//! - [`dns`]: the resolver trait and answers classified secure / insecure /
//!   failed; [`dns::hickory`] is the only file that knows hickory.
//! - [`policy`]: the pure policy decision (dane-rules §4).
//! - [`reply_map`]: every reply we send, and how failures become replies.
//! - [`config`]: the TOML configuration; [`cli`] and [`logging`]: the
//!   binary's surface; [`metrics`]: Prometheus counters and their endpoint.
//! - [`ops`]: operator commands (`check`, `tlsa generate | verify |
//!   published`); [`report`]: `resolve`'s output; [`dane`]: which TLSA
//!   records are usable.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod dane;
pub mod dns;
pub mod inbound;
pub mod logging;
pub mod metrics;
pub mod nexthop;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod relay;
pub mod reply_map;
pub mod report;
pub mod server;
pub mod smtp;
pub mod stage;
pub mod tls;
