//! Operator commands.

pub mod check;
pub mod tlsa;
