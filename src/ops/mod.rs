//! Operator commands: what an operator runs by hand or from monitoring,
//! next to the relay. One file or folder per command: [`resolve`] (the
//! plan for a domain, connecting nowhere), [`check`] (the whole delivery
//! path to a domain, handshakes included), [`doctor`] (the resolver
//! self-test) and [`tlsa`] (records for a certificate or key: generate,
//! verify, published). They share [`certs`] (certificate facts as they
//! are written), [`dates`] and [`lookups`] (every DNS lookup a command
//! made) rather than copying them; TLS and TLSA semantics come from
//! [`crate::tls`].
//!
//! What they do not do: change anything. No command sends mail, edits a
//! zone or writes the relay's state.

pub mod certs;
pub mod check;
pub mod dates;
pub mod doctor;
pub mod lookups;
pub mod resolve;
pub mod sts;
pub mod tlsa;

use std::process::ExitCode;

use serde::Serialize;
use tracing::error;

/// Prints a command's report on standard output, as JSON (`--json`) or
/// as text, and gives the exit status: 0 when `ok`, 1 otherwise (also
/// when the JSON cannot be written, which is logged).
fn print_report<R: Serialize>(
    report: &R,
    json: bool,
    text: impl FnOnce(&R) -> String,
    ok: bool,
) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                error!("cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", text(report));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The runtime an operator command (and `run`) works in; `None`, after
/// logging why, when it cannot start.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            None
        }
    }
}
