//! Operator commands.

pub mod check;
pub mod resolve;
pub mod sts;
pub mod tlsa;
