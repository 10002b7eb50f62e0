//! The control socket: a Unix socket in `[state] dir` through which
//! operator commands reach the running danegate (`danegate sts ...`),
//! since the state database can be open in one process only.
//!
//! One request line per connection, one answer: the exit status on the
//! first line, then the output. The socket lives in the state directory
//! (mode 0700), so only danegate's user and root can use it. Lines and
//! waits are bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use crate::ops::sts::{execute, Request};
use crate::sts::Sts;

/// The socket's file name inside `[state] dir`.
pub const FILE_NAME: &str = "control.sock";
/// The longest request line.
const MAX_LINE: usize = 512;
/// How long a client may take to send its line.
const READ_LIMIT: Duration = Duration::from_secs(10);

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Listens on `path` (replacing a stale socket file) and answers
/// requests until the process ends.
pub fn serve(path: &Path, sts: Arc<Sts>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    info!("control socket at {}", path.display());
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, sts.clone()));
                }
                Err(e) => {
                    warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn answer(stream: UnixStream, sts: Arc<Sts>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64);
    let got = tokio::time::timeout(READ_LIMIT, reader.read_line(&mut line)).await;
    let reply = match (got, Request::parse(&line)) {
        (Ok(Ok(_)), Some(request)) => {
            let (code, text) = execute(&sts, &request).await;
            format!("{code}\n{text}")
        }
        _ => "2\nunknown request; expected \"sts show|refresh|forget DOMAIN [json]\"\n".to_owned(),
    };
    let _ = write.write_all(reply.as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Sends `line` to the danegate listening at `path`. `None`: nothing
/// listens there (run the command locally); `Some(Err)`: it listens but
/// the exchange failed.
pub fn ask(path: &Path, line: &str) -> Option<Result<(u8, String), String>> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).ok()?;
    let mut exchange = || -> std::io::Result<String> {
        // A refresh may take the fetch timeout and more.
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.write_all(line.as_bytes())?;
        let mut out = String::new();
        stream.read_to_string(&mut out)?;
        Ok(out)
    };
    let out = match exchange() {
        Ok(o) => o,
        Err(e) => return Some(Err(format!("control socket {}: {e}", path.display()))),
    };
    let Some((code, text)) = out.split_once('\n') else {
        return Some(Err(format!("control socket {}: no answer", path.display())));
    };
    let code = code.trim().parse().unwrap_or(1);
    Some(Ok((code, text.to_owned())))
}
