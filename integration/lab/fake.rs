//! A fake destination MX written for one misbehaviour Postfix cannot be made
//! to show reliably: it takes a whole message after DATA and then closes the
//! connection without a final reply. It speaks plain ESMTP (no STARTTLS),
//! records what each session did, and stops when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What one session did, for assertions and failure messages.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub commands: Vec<String>,
    /// Message bytes received after 354 (wire form, dot-stuffed, CRLF).
    pub data: Vec<u8>,
    /// True when the final "." arrived before we hung up.
    pub got_final_dot: bool,
}

pub struct DropAfterData {
    stop: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<Session>>>,
    thread: Option<JoinHandle<()>>,
}

impl DropAfterData {
    pub fn start(addr: SocketAddr) -> DropAfterData {
        crate::util::assert_free(addr);
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("fake MX bind {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let (stop2, sessions2) = (stop.clone(), sessions.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _peer)) => {
                        let sessions = sessions2.clone();
                        std::thread::spawn(move || {
                            let s = serve(stream);
                            sessions.lock().unwrap().push(s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        DropAfterData {
            stop,
            sessions,
            thread: Some(thread),
        }
    }

    /// Finished sessions so far.
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }

    /// Stops accepting and releases the address.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DropAfterData {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(stream: TcpStream) -> Session {
    let mut s = Session::default();
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut w) = stream.try_clone() else {
        return s;
    };
    let mut r = BufReader::new(stream);
    let say = |w: &mut TcpStream, text: &str| w.write_all(text.as_bytes()).is_ok();
    if !say(
        &mut w,
        "220 fake-mx.example.test ESMTP lab fake that hangs up after DATA\r\n",
    ) {
        return s;
    }
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return s,
            Ok(_) => {}
        }
        let cmd = String::from_utf8_lossy(&line).trim_end().to_string();
        s.commands.push(cmd.clone());
        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-fake-mx.example.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n",
            "HELO" => "250 fake-mx.example.test\r\n",
            "MAIL" => "250 2.1.0 Ok\r\n",
            "RCPT" => "250 2.1.5 Ok\r\n",
            "RSET" | "NOOP" => "250 2.0.0 Ok\r\n",
            "QUIT" => {
                say(&mut w, "221 2.0.0 Bye\r\n");
                return s;
            }
            "DATA" => {
                if !say(&mut w, "354 End data with <CR><LF>.<CR><LF>\r\n") {
                    return s;
                }
                loop {
                    let mut l = Vec::new();
                    match r.read_until(b'\n', &mut l) {
                        Ok(0) | Err(_) => return s,
                        Ok(_) => {}
                    }
                    if l == b".\r\n" {
                        s.got_final_dot = true;
                        break;
                    }
                    s.data.extend_from_slice(&l);
                }
                // The misbehaviour: hang up instead of a final reply.
                let _ = w.shutdown(std::net::Shutdown::Both);
                return s;
            }
            _ => "502 5.5.2 Command not implemented by the lab fake\r\n",
        };
        if !say(&mut w, reply) {
            return s;
        }
    }
}
