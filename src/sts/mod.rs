//! MTA-STS (RFC 8461): SMTP MTA Strict Transport Security.
pub mod pattern;
pub mod policy;
pub mod record;
