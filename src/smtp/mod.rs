//! The SMTP codec: pure parsers and encoders over byte slices.
//!
//! Nothing here does I/O or knows about tokio. The connection code frames
//! bytes with [`line`](mod@line) (or streams message content through
//! [`data`]), then hands complete lines to [`command::parse_command`]
//! (server side) or complete replies to [`reply::parse_reply`] (client
//! side). "Need more bytes" is always a distinct outcome from "invalid".
//!
//! Errors are protocol-shaped: each carries what a 5xx reply needs to tell
//! the peer (the grammar it violated), but turning them into replies is the
//! job of `crate::inbound::answer` and `crate::outbound::failure`, not of this module.

pub mod command;
pub mod data;
pub mod ehlo;
pub mod line;
pub mod reply;
