//! SMTP TLS Reporting (RFC 8460): what danegate saw of every outbound TLS
//! session, counted per recipient domain and UTC day, and the daily
//! reports that tell each domain (and danegate's own operator) which
//! sessions failed and why.
//!
//! - [`model`]: result types, policies, failure details and the JSON
//!   report, in the RFC's words.
//! - [`recorder`]: the [`Recorder`] the outbound side reports each
//!   attempt to; [`counts`]: the counts in the state database.
//! - [`txt`]: the `_smtp._tls` TXT record; [`day`]: UTC days and the
//!   clock.
//!
//! What it does not do: decide anything about delivery. Recording never
//! blocks or changes a session.

pub mod counts;
pub mod day;
pub mod message;
pub mod model;
pub mod recorder;
pub mod report;
pub mod txt;

pub use counts::Event;
pub use recorder::{Discard, Recorder, StoreRecorder};
