//! `parse_command` on arbitrary bytes: it must never panic, and whatever
//! it accepts must hold only what a command line can carry.
#![no_main]

use danegate::smtp::command::{parse_command, Command, ForwardPath, ReversePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let Ok(cmd) = parse_command(line) else {
        return;
    };
    // Parsing is deterministic.
    assert_eq!(parse_command(line), Ok(cmd.clone()));
    // Parsed addresses are forwarded on a command line of our own: they
    // must not be able to end it or split it.
    let mailbox = match &cmd {
        Command::Mail {
            from: ReversePath::Mailbox(m),
            ..
        } => Some(m),
        Command::Rcpt {
            to: ForwardPath::Mailbox(m),
            ..
        } => Some(m),
        _ => None,
    };
    if let Some(m) = mailbox {
        let text = m.to_string();
        // Nothing can end or split the line...
        assert!(!text.contains(['\r', '\n']), "{text:?}");
        // ...and outside a quoted local part (where RFC 5321 allows them)
        // nothing can end the path early.
        let unquoted = if m.local.starts_with('"') {
            m.domain.as_str()
        } else {
            text.as_str()
        };
        assert!(!unquoted.contains(['<', '>']), "{text:?}");
        assert!(!m.domain.is_empty() && !m.local.is_empty());
    }
});
