//! A loopback forwarder in front of the validating unbound: a real
//! dnsmasq on [`FORWARDER`], relaying every question to unbound and, with
//! `--proxy-dnssec`, unbound's AD bit back: what systemd-resolved, Docker's
//! embedded DNS or a desktop's dnsmasq look like to a program that reads
//! /etc/resolv.conf. Validation works through it, but the AD bit is not
//! its own; `danegate doctor` must say so. Stopped when dropped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};

use crate::lab::{require_tool, wait_for, Ask, VALIDATING};

/// Where dnsmasq listens.
pub const FORWARDER: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 58), 53));

pub struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    pub fn start() -> Dnsmasq {
        let child = Command::new(require_tool("dnsmasq"))
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=53",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--proxy-dnssec",
                "--user=root",
                "--pid-file=",
            ])
            .arg(format!("--listen-address={}", FORWARDER.ip()))
            .arg(format!(
                "--server={}#{}",
                VALIDATING.ip(),
                VALIDATING.port()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start dnsmasq: {e}"));
        let d = Dnsmasq { child };
        wait_for("dnsmasq to answer the root SOA with AD", || {
            let a = crate::dig::query(FORWARDER, ".", "SOA", Ask::RESOLVER);
            (a.rcode == "NOERROR" && a.ad).then_some(())
        });
        d
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address where something holds the DNS ports but never answers:
/// UDP datagrams are never read, TCP connections are accepted by the
/// kernel and never served. Closed when dropped.
pub struct Silent {
    _udp: UdpSocket,
    _tcp: std::net::TcpListener,
}

/// Where [`Silent`] listens.
pub const SILENT: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 53, 52), 53));

impl Silent {
    pub fn start() -> Silent {
        Silent {
            _udp: UdpSocket::bind(SILENT).unwrap_or_else(|e| panic!("bind {SILENT}/udp: {e}")),
            _tcp: std::net::TcpListener::bind(SILENT)
                .unwrap_or_else(|e| panic!("bind {SILENT}/tcp: {e}")),
        }
    }
}
