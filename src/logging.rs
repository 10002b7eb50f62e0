//! Log output: tracing to standard error, level from `RUST_LOG` (default
//! `info`), as text lines or one JSON object per line (`[log] format`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
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
