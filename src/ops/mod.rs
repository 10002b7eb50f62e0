//! Operator commands.

pub mod check;
pub mod resolve;
pub mod tlsa;
