//! A small blocking SMTP client for submitting exact bytes and for checking
//! exact replies (greetings, refusals). It speaks plain SMTP only, keeps a
//! transcript for failure messages, and bounds every read with a timeout.
//!
//! It is test tooling, not a model of danegate's own client.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// One complete SMTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// Each line as received, without CRLF (e.g. `250-PIPELINING`).
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of every line after the code and separator, joined by " ".
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.get(4..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The whole reply as one line: `code text`.
    pub fn full(&self) -> String {
        format!("{} {}", self.code, self.text())
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub peer: SocketAddr,
    pub transcript: Vec<String>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::over(stream, addr)
    }

    /// Connects from a chosen local address (any 127.x can be bound), to
    /// appear as a different client host.
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let stream = rt.block_on(async {
            let socket = match local {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .expect("socket");
            socket
                .bind(SocketAddr::new(local, 0))
                .unwrap_or_else(|e| panic!("bind client socket to {local}: {e}"));
            tokio::time::timeout(IO_TIMEOUT, socket.connect(addr))
                .await
                .unwrap_or_else(|_| panic!("connect {local} -> {addr}: timed out"))
                .unwrap_or_else(|e| panic!("connect {local} -> {addr}: {e}"))
                .into_std()
                .expect("into_std")
        });
        stream.set_nonblocking(false).expect("blocking socket");
        Client::over(stream, addr)
    }

    fn over(stream: TcpStream, peer: SocketAddr) -> Client {
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        let writer = stream.try_clone().expect("clone stream");
        Client {
            reader: BufReader::new(stream),
            writer,
            peer,
            transcript: Vec::new(),
        }
    }

    /// Reads one complete (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = self.reader.read_until(b'\n', &mut raw)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed by {} after {:?}", self.peer, lines),
                ));
            }
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            self.transcript.push(format!("S: {line}"));
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let sep = line.as_bytes().get(3).copied();
            let Some(code) = code else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("malformed reply line {line:?}"),
                ));
            };
            let last = sep != Some(b'-');
            lines.push(line);
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// True when the peer has closed the connection: the next read sees EOF
    /// (or a reset) rather than data or a timeout.
    pub fn is_closed_by_peer(&mut self, within: Duration) -> bool {
        self.writer.set_read_timeout(Some(within)).ok();
        let mut buf = Vec::new();
        let r = self.reader.read_until(b'\n', &mut buf);
        self.writer.set_read_timeout(Some(IO_TIMEOUT)).ok();
        match r {
            Ok(0) => true,
            Ok(_) => {
                self.transcript
                    .push(format!("S: {}", String::from_utf8_lossy(&buf).trim_end()));
                false
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to {}: {e}\n{}", self.peer, self.transcript()));
    }

    /// Sends one command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.transcript.push(format!("C: {line}"));
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.read_reply()
            .unwrap_or_else(|e| panic!("reply to {line:?}: {e}\n{}", self.transcript()))
    }

    /// Sends a command and panics unless the reply has `code`.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        if r.code != code {
            panic!(
                "expected {code} to {line:?}, got {}\n{}",
                r.full(),
                self.transcript()
            );
        }
        r
    }

    /// Sends message content (LF or CRLF line ends) dot-stuffed, then the
    /// final dot, and returns the reply to the final dot.
    pub fn send_data(&mut self, message: &[u8]) -> Reply {
        self.transcript
            .push(format!("C: <{} bytes of message>", message.len()));
        let wire = to_wire(message);
        self.send_raw(&wire);
        self.transcript.push("C: .".to_string());
        self.send_raw(b".\r\n");
        self.read_reply()
            .unwrap_or_else(|e| panic!("reply to final dot: {e}\n{}", self.transcript()))
    }

    pub fn transcript(&self) -> String {
        self.transcript.join("\n")
    }
}

/// Converts a message to its DATA wire form: CRLF line ends, leading dots
/// doubled, ending in CRLF (without the final dot line).
pub fn to_wire(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                at_line_start = true;
                continue;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Submits one message in one session: EHLO, MAIL, RCPT per recipient, DATA.
/// Every reply before the final dot must be positive; the final dot's reply
/// is returned for the caller to judge.
pub fn submit(addr: SocketAddr, helo: &str, from: &str, rcpts: &[&str], message: &[u8]) -> Reply {
    let mut c = Client::connect(addr);
    let greeting = c
        .read_reply()
        .unwrap_or_else(|e| panic!("greeting from {addr}: {e}"));
    assert_eq!(
        greeting.code,
        220,
        "greeting from {addr}: {}",
        greeting.full()
    );
    c.expect(&format!("EHLO {helo}"), 250);
    c.expect(&format!("MAIL FROM:<{from}>"), 250);
    for r in rcpts {
        c.expect(&format!("RCPT TO:<{r}>"), 250);
    }
    c.expect("DATA", 354);
    let reply = c.send_data(message);
    let _ = c.cmd("QUIT");
    reply
}

#[cfg(test)]
mod tests {
    use super::to_wire;

    #[test]
    fn wire_form_stuffs_dots_and_uses_crlf() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\n.b\n", b"a\r\n..b\r\n"),
            (b".\n", b"..\r\n"),
            (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n"),
            (b"x.y\n\n..\n", b"x.y\r\n\r\n...\r\n"),
            (b"", b""),
        ];
        for (input, want) in cases {
            assert_eq!(
                to_wire(input),
                want.to_vec(),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
