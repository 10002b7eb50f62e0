//! Operator commands.

pub mod check;
pub mod doctor;
pub mod lookups;
pub mod resolve;
pub mod tlsa;
