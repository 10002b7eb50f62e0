//! The inbound side: the legacy MTA's plain SMTP session.
//!
//! [`connection`] owns the bytes (read buffer, queued replies, line
//! framing with bounded length); [`session`] owns the protocol state and
//! drives the outbound conversation for each transaction; [`answer`] is
//! every reply the session can send.

pub mod answer;
pub mod connection;
pub mod session;
