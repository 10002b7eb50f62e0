//! Log output: tracing to standard error, level from `RUST_LOG` (default
//! `info`), as text lines or one JSON object per line (`[log] format`),
//! and [`Field`], the one way a value that came from the wire (an address,
//! a server's reply text) is written into a log line.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// JSON lines escape their values themselves; text lines need [`Field`]'s
/// quoting.
static JSON: AtomicBool = AtomicBool::new(false);

/// A log field value that may hold anything a peer sent. In text lines it
/// is written bare when it is a single plain word and otherwise quoted
/// (logfmt style: `"` and `\\` escaped), so that no value can pass for
/// another field (`to="<\"x relay=none\"@example>"`). In either format,
/// control characters are written as `\\xNN` escapes, so a value can
/// neither end the line nor reach a terminal as a control sequence.
pub struct Field<'a>(pub &'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let plain = !s.is_empty()
            && s.chars().all(|c| {
                !c.is_control() && !c.is_whitespace() && c != '"' && c != '=' && c != '\\'
            });
        let quote = !plain && !JSON.load(Ordering::Relaxed);
        if quote {
            f.write_str("\"")?;
        }
        for c in s.chars() {
            match c {
                '"' | '\\' if quote => write!(f, "\\{c}")?,
                c if c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        if quote {
            f.write_str("\"")?;
        }
        Ok(())
    }
}

pub fn init(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    // hickory's own warnings are about single DNS messages and read as
    // noise next to ours; what matters reaches the log through dns/.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hickory_proto=error,hickory_net=error,hickory_resolver=error")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::Field;

    #[test]
    fn values_are_bare_quoted_or_escaped_so_no_field_can_be_forged() {
        let table = [
            ("<a@example.net>", "<a@example.net>"),
            ("none", "none"),
            ("", "\"\""),
            ("250 2.0.0 Ok", "\"250 2.0.0 Ok\""),
            (
                "<\"x relay=none status=250 2.0.0 fake\"@client.test>",
                "\"<\\\"x relay=none status=250 2.0.0 fake\\\"@client.test>\"",
            ),
            ("a=b", "\"a=b\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("nul\0esc\x1b[31m", "\"nul\\x00esc\\x1b[31m\""),
            ("line\nbreak", "\"line\\x0abreak\""),
            (
                "<j\u{f6}rg@b\u{fc}cher.example>",
                "<j\u{f6}rg@b\u{fc}cher.example>",
            ),
        ];
        for (value, want) in table {
            assert_eq!(Field(value).to_string(), want, "{value:?}");
        }
    }
}
