//! Operator commands.

pub mod certs;
pub mod check;
pub mod dates;
pub mod resolve;
pub mod tlsa;
