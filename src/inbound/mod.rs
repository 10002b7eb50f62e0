//! The inbound side: the legacy MTA's plain SMTP session.
//!
//! [`connection`] owns the bytes (read buffer, queued replies, line
//! framing with bounded length); [`session`] owns the protocol state
//! outside a transaction; `transaction` carries one mail transaction and
//! the destination conversation it drives, as one state machine, with
//! `content` streaming the message and `summary` writing what each
//! recipient's outcome was; [`answer`] is every reply the session can
//! send.

pub mod answer;
pub mod connection;
mod content;
mod env;
pub mod session;
mod summary;
mod transaction;
