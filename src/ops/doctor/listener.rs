//! Who answers DNS on a loopback address: in `trust-ad` mode danegate
//! believes the AD bit of that server, which is only right when the
//! server validates itself. A forwarder on loopback (systemd-resolved's
//! stub, Docker's embedded DNS, dnsmasq) sets the AD bit its upstream
//! set, over a path nobody checks.
//!
//! Evidence, strongest first: the program that owns the listening UDP
//! socket (`/proc/net/udp{,6}` inode → `/proc/PID/fd` → `comm`; needs
//! root or the same user), the well-known stub addresses, and the
//! software name the server gives for `version.bind` (asked by the
//! caller). Linux only; elsewhere the program is simply not found.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a program is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Validates DNSSEC itself (unbound, BIND, Knot Resolver, PowerDNS
    /// Recursor).
    Validator,
    /// Forwards queries and relays its upstream's AD bit.
    Forwarder,
    Unknown,
}

/// The kind of DNS software by its name (a process name or a
/// `version.bind` answer).
pub fn kind(software: &str) -> Kind {
    let s = software.to_ascii_lowercase();
    const FORWARDERS: [&str; 9] = [
        "dnsmasq",
        "systemd-resolve",
        "dockerd",
        "docker-proxy",
        "stubby",
        "dnscrypt-proxy",
        "dnsproxy",
        "pihole-ftl",
        "coredns",
    ];
    const VALIDATORS: [&str; 6] = [
        "unbound",
        "named",
        "bind",
        "kresd",
        "knot resolver",
        "pdns_recursor",
    ];
    if FORWARDERS.iter().any(|f| s.starts_with(f)) {
        Kind::Forwarder
    } else if VALIDATORS.iter().any(|v| s.starts_with(v))
        || s.starts_with("powerdns recursor")
        // BIND answers version.bind with its bare version ("9.18.28-1~deb12u2-Debian")
        || s.starts_with("9.")
    {
        Kind::Validator
    } else {
        Kind::Unknown
    }
}

/// Well-known loopback stub resolvers, by address.
pub fn known_stub(addr: SocketAddr) -> Option<&'static str> {
    match addr.ip() {
        IpAddr::V4(ip)
            if ip == Ipv4Addr::new(127, 0, 0, 53) || ip == Ipv4Addr::new(127, 0, 0, 54) =>
        {
            Some("systemd-resolved's stub resolver")
        }
        IpAddr::V4(ip) if ip == Ipv4Addr::new(127, 0, 0, 11) => {
            Some("Docker's embedded DNS server")
        }
        _ => None,
    }
}

/// A process that owns a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub pid: u32,
    pub name: String,
}

/// The program whose UDP socket listens on `addr` (exactly, or on the
/// wildcard address of its family with the same port).
pub fn program(addr: SocketAddr) -> Option<Program> {
    let tables = ["/proc/net/udp", "/proc/net/udp6"];
    let inode = tables
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .find_map(|text| socket_inode(&text, addr))?;
    let wanted = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let owns = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == wanted));
        if owns {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            return Some(Program { pid, name });
        }
    }
    None
}

/// The inode of the socket bound to `addr` in a `/proc/net/udp` table.
fn socket_inode(table: &str, addr: SocketAddr) -> Option<u64> {
    let mut wildcard = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(inode)) = (f.get(1), f.get(9)) else {
            continue;
        };
        let Some((ip, port)) = parse_local(local) else {
            continue;
        };
        let Ok(inode) = inode.parse::<u64>() else {
            continue;
        };
        if port != addr.port() || inode == 0 {
            continue;
        }
        if ip == addr.ip() {
            return Some(inode);
        }
        if ip.is_unspecified() && ip.is_ipv4() == addr.is_ipv4() {
            wildcard = Some(inode);
        }
    }
    wildcard
}

/// `0135007F:0035` → 127.0.53.1, 53: the kernel prints each 32-bit word
/// of the address as a native-endian number.
fn parse_local(s: &str) -> Option<(IpAddr, u16)> {
    let (hex, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        hex.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    let ip = match hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_kinds() {
        for (name, want) in [
            ("dnsmasq-2.90", Kind::Forwarder),
            ("dnsmasq", Kind::Forwarder),
            ("systemd-resolve", Kind::Forwarder),
            ("dockerd", Kind::Forwarder),
            ("unbound 1.17.1", Kind::Validator),
            ("unbound", Kind::Validator),
            ("named", Kind::Validator),
            ("9.18.28-1~deb12u2-Debian", Kind::Validator),
            ("kresd", Kind::Validator),
            ("PowerDNS Recursor 5.0.4", Kind::Validator),
            ("dnslab-0ca2fde37e085aa4", Kind::Unknown),
            ("", Kind::Unknown),
        ] {
            assert_eq!(kind(name), want, "{name}");
        }
    }

    #[test]
    fn stub_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(known_stub(a("127.0.0.53:53")).is_some());
        assert!(known_stub(a("127.0.0.11:53")).is_some());
        assert_eq!(known_stub(a("127.0.0.1:53")), None);
    }

    /// A captured /proc/net/udp (a lab: dnsmasq on 127.0.53.57:53, unbound
    /// on 127.0.53.53:53, a wildcard socket on port 5353).
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
14466: 3935007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 458700 2 0000000002f2a7b1 0
14467: 3535007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 457851 2 00000000c1eeaccc 0
14468: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 00000000c1eeaccc 0
";

    #[test]
    fn proc_net_udp_lines() {
        if cfg!(target_endian = "big") {
            return; // the capture is from a little-endian machine
        }
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(socket_inode(UDP, a("127.0.53.57:53")), Some(458700));
        assert_eq!(socket_inode(UDP, a("127.0.53.53:53")), Some(457851));
        assert_eq!(socket_inode(UDP, a("127.0.0.1:5353")), Some(4242));
        assert_eq!(socket_inode(UDP, a("127.0.53.54:53")), None);
        assert_eq!(
            parse_local("00000000000000000000000001000000:0035"),
            Some(("::1".parse().unwrap(), 53))
        );
    }
}
