//! The TOML configuration: its shape, its defaults, and errors that name
//! the key and the line.
//!
//! Every key is documented in `config/danegate.toml`. Unknown keys and bad
//! values are errors; values are checked while deserialising, so one error
//! message carries both the key path (`server.allow_clients[1]`) and the
//! line it came from. This module does not act on the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::policy::{Level, Mode};
use crate::tls::version::TlsVersion;

/// The whole configuration, with every default filled in.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub dns: Dns,
    pub policy: Policy,
    pub routes: BTreeMap<DomainKey, Route>,
    pub timeouts: Timeouts,
    pub metrics: Metrics,
    pub log: Log,
    pub state: State,
    pub tls: Tls,
    pub mta_sts: MtaSts,
}

/// `[tls]`: the TLS engines (see `crate::tls::legacy`) and the lowest
/// protocol versions accepted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Whether the legacy engine (OpenSSL) may be used for servers the
    /// primary engine (rustls) has no protocol version, cipher suite, key
    /// exchange or signature algorithm in common with.
    pub legacy: Switch,
    /// The lowest protocol version where TLS is required (DANE, TLS
    /// required without authentication).
    pub min_version: TlsVersion,
    /// The lowest protocol version for opportunistic TLS (the alternative
    /// is plaintext).
    pub opportunistic_min_version: TlsVersion,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            legacy: Switch::On,
            min_version: TlsVersion::Tls1_2,
            opportunistic_min_version: TlsVersion::Tls1_0,
        }
    }
}

/// `"on"` or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

/// `[mta_sts]`: MTA-STS (RFC 8461) for destinations that publish a policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtaSts {
    /// Off: no policy is looked up, fetched or applied.
    pub enabled: bool,
    /// PEM certificates trusted in addition to the system trust store
    /// (policy hosts and MX certificates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Seconds one policy fetch may take.
    pub fetch_timeout: u64,
    /// Seconds after which a cached policy is fetched again (at most half
    /// its max_age).
    pub refresh_interval: u64,
}

impl Default for MtaSts {
    fn default() -> Self {
        MtaSts {
            enabled: true,
            ca_file: None,
            fetch_timeout: 10,
            refresh_interval: 86400,
        }
    }
}

/// `[state]`: where danegate keeps what must survive a restart (the
/// embedded database of `crate::state`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    pub dir: PathBuf,
}

impl Default for State {
    fn default() -> Self {
        State {
            dir: PathBuf::from("/var/lib/danegate"),
        }
    }
}

/// `[metrics]`: where Prometheus scrapes (off when `listen` is unset).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// `[log]`: the log line format.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line, fields as in the text format.
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    pub allow_clients: Vec<IpNet>,
    pub hostname: Hostname,
    pub max_connections: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 10025))],
            allow_clients: vec![
                "127.0.0.0/8".parse().expect("literal network"),
                "::1/128".parse().expect("literal network"),
            ],
            hostname: Hostname::system(),
            max_connections: 1000,
            max_message_size: 52_428_800,
            max_recipients: 1000,
        }
    }
}

impl Server {
    /// Whether a client at `ip` may relay through us.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allow_clients.iter().any(|net| net.contains(&ip))
    }
}

/// Our host name: the greeting banner and the outbound EHLO argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(pub String);

impl Hostname {
    fn system() -> Self {
        let name = gethostname::gethostname().to_string_lossy().into_owned();
        if name.is_empty() {
            Hostname("localhost".into())
        } else {
            Hostname(name)
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_dns_name(&s) {
            Ok(Hostname(s.trim_end_matches('.').to_ascii_lowercase()))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid host name (letters, digits, hyphens and dots)"
            )))
        }
    }
}

/// Resolver modes (see `dns` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsMode {
    /// Validate DNSSEC ourselves.
    Validate,
    /// Trust the AD bit of a local validating resolver.
    TrustAd,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    pub mode: DnsMode,
    /// Empty means: read /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_anchor_file: Option<PathBuf>,
    /// Seconds one DNS lookup may take before it counts as failed.
    pub timeout: u64,
    /// Address families to deliver over.
    pub families: Families,
    /// `danegate doctor`: a name that must come back secure (default: the
    /// trust anchor's zone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doctor_secure_name: Option<String>,
    /// `danegate doctor`: a name whose DNSSEC is broken on purpose, which
    /// must fail validation (default: none, not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doctor_bogus_name: Option<String>,
}

/// Which address families to look up and connect over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Families {
    Both,
    Ipv4,
    Ipv6,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            mode: DnsMode::Validate,
            nameservers: Vec::new(),
            trust_anchor_file: None,
            timeout: 10,
            families: Families::Both,
            doctor_secure_name: None,
            doctor_bogus_name: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub default: Level,
    pub mode: Mode,
    pub domains: BTreeMap<DomainKey, Level>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default: Level::Dane,
            mode: Mode::Enforce,
            domains: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// The level for a destination domain: its own entry, else the default.
    pub fn level_for(&self, domain: &str) -> Level {
        let key = domain.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .get(&DomainKey(key))
            .copied()
            .unwrap_or(self.default)
    }
}

/// Timeouts in seconds. Outbound values are those of RFC 5321 §4.5.3.2
/// (and Postfix's `smtp_*_timeout`); `connect` is Postfix's
/// `smtp_connect_timeout`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub inbound_idle: u64,
    pub connect: u64,
    pub greeting: u64,
    pub ehlo: u64,
    pub starttls: u64,
    pub mail: u64,
    pub rcpt: u64,
    pub data_init: u64,
    pub data_block: u64,
    pub data_done: u64,
    pub rset: u64,
    pub quit: u64,
    pub shutdown_grace: u64,
    /// How long an idle, verified outbound connection is kept for the next
    /// transaction to the same domain (0: never kept).
    pub connection_cache: u64,
    /// How long after it was established an outbound connection may still
    /// be reused for another transaction (Postfix's
    /// `smtp_connection_reuse_time_limit`): bounds how long a connection
    /// verified against TLSA records that have since changed stays in use.
    pub connection_reuse_limit: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            inbound_idle: 300,
            connect: 30,
            greeting: 300,
            ehlo: 300,
            starttls: 300,
            mail: 300,
            rcpt: 300,
            data_init: 120,
            data_block: 180,
            data_done: 600,
            rset: 20,
            quit: 20,
            shutdown_grace: 60,
            connection_cache: 2,
            connection_reuse_limit: 300,
        }
    }
}

impl Timeouts {
    pub fn secs(v: u64) -> Duration {
        Duration::from_secs(v)
    }
}

/// A domain name used as a table key: lowercased, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainKey(pub String);

impl<'de> Deserialize<'de> for DomainKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // An internationalised domain may be written in U-labels: the
        // key is its A-label form, as the planner looks domains up.
        let key = crate::dns::idn::parse(s.trim_end_matches('.'))
            .map(|n| n.ascii)
            .unwrap_or_else(|_| s.clone());
        if is_dns_name(&key) {
            Ok(DomainKey(key))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid domain name"
            )))
        }
    }
}

impl fmt::Display for DomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A static next hop, written like a Postfix transport nexthop:
/// `[host]:port` or `[192.0.2.1]:port` (no MX lookup; port defaults to 25)
/// or `host:port` / `host` (MX lookup of `host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub host: String,
    pub port: u16,
    /// Look up MX records of `host` (no brackets) or use `host` itself.
    pub mx_lookup: bool,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mx_lookup {
            write!(f, "{}:{}", self.host, self.port)
        } else {
            write!(f, "[{}]:{}", self.host, self.port)
        }
    }
}

impl FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let syntax = || {
            format!("{s:?} is not a next hop: expected [host]:port, [address]:port or host:port")
        };
        let (host, rest, mx_lookup) = if let Some(inner) = s.strip_prefix('[') {
            let end = inner.find(']').ok_or_else(syntax)?;
            (&inner[..end], &inner[end + 1..], false)
        } else {
            match s.rfind(':') {
                Some(i) => (&s[..i], &s[i..], true),
                None => (s, "", true),
            }
        };
        let port = match rest {
            "" => 25,
            r => r
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(syntax)?,
        };
        let host = host
            .strip_prefix("ipv6:")
            .or_else(|| host.strip_prefix("IPv6:"))
            .unwrap_or(host);
        let valid = if mx_lookup {
            is_dns_name(host)
        } else {
            host.parse::<IpAddr>().is_ok() || is_dns_name(host)
        };
        if !valid {
            return Err(syntax());
        }
        Ok(Route {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
            mx_lookup,
        })
    }
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// True for a plausible DNS host name: LDH labels of 1..=63 octets, at most
/// 253 octets in all.
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: line {line}, key `{key}`: {message}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{origin}: {message}")]
    Semantic { origin: String, message: String },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                key,
                message: inner.message().trim().to_owned(),
            }
        })?;
        config.check(origin)?;
        Ok(config)
    }

    /// Checks that need more than one value at a time.
    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let fail = |message: String| {
            Err(ConfigError::Semantic {
                origin: origin.to_owned(),
                message,
            })
        };
        if self.server.listen.is_empty() {
            return fail("server.listen: at least one address is needed".into());
        }
        if self.server.max_connections == 0 {
            return fail("server.max_connections: must be at least 1".into());
        }
        if self.server.max_message_size == 0 {
            return fail("server.max_message_size: must be at least 1".into());
        }
        if self.server.max_recipients == 0 {
            return fail("server.max_recipients: must be at least 1".into());
        }
        if self.mta_sts.fetch_timeout == 0 {
            return fail("mta_sts.fetch_timeout: must be at least 1".into());
        }
        if self.mta_sts.refresh_interval == 0 {
            return fail("mta_sts.refresh_interval: must be at least 1".into());
        }
        if self.dns.mode == DnsMode::TrustAd {
            if let Some(ns) = self
                .dns
                .nameservers
                .iter()
                .find(|ns| !ns.ip().is_loopback())
            {
                return fail(format!(
                    "dns.nameservers: {ns} is not a loopback address; mode \"trust-ad\" trusts the resolver's AD bit, which is only safe from a validating resolver on this host (the path to any other can be tampered with)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED: &str = include_str!("../config/danegate.toml");

    #[test]
    fn documented_file_holds_the_defaults() {
        let parsed = Config::parse(DOCUMENTED, "config/danegate.toml").unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn documented_file_names_every_key() {
        // Every key of every section appears in the documented file, set
        // or commented out.
        let keys = [
            "listen",
            "allow_clients",
            "hostname",
            "max_connections",
            "max_message_size",
            "max_recipients",
            "mode",
            "nameservers",
            "trust_anchor_file",
            "timeout",
            "families",
            "doctor_secure_name",
            "doctor_bogus_name",
            "format",
            "dir",
            "default",
            "inbound_idle",
            "connect",
            "greeting",
            "ehlo",
            "starttls",
            "mail",
            "rcpt",
            "data_init",
            "data_block",
            "data_done",
            "rset",
            "quit",
            "shutdown_grace",
            "connection_cache",
            "connection_reuse_limit",
            "legacy",
            "min_version",
            "opportunistic_min_version",
            "enabled",
            "ca_file",
            "fetch_timeout",
            "refresh_interval",
        ];
        for key in keys {
            assert!(
                DOCUMENTED.contains(&format!("\n{key} = "))
                    || DOCUMENTED.contains(&format!("\n# {key} = ")),
                "{key} is not documented"
            );
        }
        for section in [
            "[server]",
            "[dns]",
            "[policy]",
            "[policy.domains]",
            "[routes]",
            "[timeouts]",
            "[tls]",
            "[state]",
            "[mta_sts]",
        ] {
            assert!(DOCUMENTED.contains(section), "{section} is not documented");
        }
    }

    #[test]
    fn effective_configuration_parses_back() {
        // `danegate config check` prints this; it must be a valid config
        // that means the same.
        let mut c = Config::parse(
            "[routes]\n\"a.example\" = \"[10.1.2.3]:2525\"\n\"b.example\" = \"mx.example\"\n[policy.domains]\n\"c.example\" = \"dane-only\"\n[metrics]\nlisten = \"127.0.0.1:9425\"\n",
            "t",
        )
        .unwrap();
        c.dns.trust_anchor_file = Some("/etc/danegate/anchors".into());
        c.mta_sts.ca_file = Some("/etc/danegate/private-ca.pem".into());
        c.mta_sts.enabled = false;
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(Config::parse(&text, "printed").unwrap(), c, "{text}");
    }

    #[test]
    fn full_example_parses() {
        let c = Config::parse(
            r#"
[server]
listen = ["127.0.0.1:10025", "[::1]:10025"]
allow_clients = ["10.0.0.0/8", "::1/128"]
hostname = "Relay.Example.NET"
[dns]
mode = "trust-ad"
nameservers = ["127.0.0.1:53"]
trust_anchor_file = "/etc/danegate/anchors"
[policy]
default = "dane"
mode = "test"
[policy.domains]
"Example.org." = "dane-only"
"b.example" = "may"
[routes]
"internal.example" = "[10.1.2.3]:25"
"mx.example" = "relay.example:2525"
"v6.example" = "[ipv6:2001:db8::1]"
"#,
            "test",
        )
        .unwrap();
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.server.hostname.0, "relay.example.net");
        assert_eq!(c.policy.mode, Mode::Test);
        assert_eq!(c.policy.level_for("EXAMPLE.ORG"), Level::DaneOnly);
        assert_eq!(c.policy.level_for("b.example"), Level::May);
        assert_eq!(c.policy.level_for("other.example"), Level::Dane);
        let r = &c.routes[&DomainKey("internal.example".into())];
        assert_eq!(
            (r.host.as_str(), r.port, r.mx_lookup),
            ("10.1.2.3", 25, false)
        );
        let r = &c.routes[&DomainKey("mx.example".into())];
        assert_eq!(
            (r.host.as_str(), r.port, r.mx_lookup),
            ("relay.example", 2525, true)
        );
        let r = &c.routes[&DomainKey("v6.example".into())];
        assert_eq!(
            (r.host.as_str(), r.port, r.mx_lookup),
            ("2001:db8::1", 25, false)
        );
        assert!(c.server.allows("10.9.8.7".parse().unwrap()));
        assert!(c.server.allows("::ffff:10.9.8.7".parse().unwrap()));
        assert!(!c.server.allows("192.0.2.1".parse().unwrap()));
    }

    /// (config text, expected error text)
    const BAD: &[(&str, &str)] = &[
        (
            "[server]\nlisten = [\"127.0.0.1:10025\"]\nbogus = 1\n",
            "test: line 3, key `server.bogus`: unknown field `bogus`",
        ),
        (
            "[server]\nallow_clients = [\"127.0.0.0/8\", \"10.0.0.300/8\"]\n",
            "test: line 2, key `server.allow_clients[1]`: invalid IP address syntax",
        ),
        (
            "[policy]\ndefault = \"strict\"\n",
            "test: line 2, key `policy.default`: unknown variant `strict`, expected one of `dane`, `dane-only`, `encrypt`, `may`",
        ),
        (
            "\n[routes]\n\"a.example\" = \"[10.1.2.3]:99999\"\n",
            "test: line 3, key `routes.a.example`: \"[10.1.2.3]:99999\" is not a next hop: expected [host]:port, [address]:port or host:port",
        ),
        (
            "[server]\nmax_connections = \"many\"\n",
            "test: line 2, key `server.max_connections`: invalid type: string \"many\", expected usize",
        ),
        (
            "[dns]\nmode = \"trust-ad\"\nnameservers = [\"192.0.2.53:53\"]\n",
            "test: dns.nameservers: 192.0.2.53:53 is not a loopback address; mode \"trust-ad\" trusts the resolver's AD bit, which is only safe from a validating resolver on this host (the path to any other can be tampered with)",
        ),
        ("[server]\nlisten = []\n", "test: server.listen: at least one address is needed"),
        (
            "[policy.domains]\n\"not a domain\" = \"dane\"\n",
            "test: line 2, key `policy.domains.not a domain`: \"not a domain\" is not a valid domain name",
        ),
        ("[nosuch]\n", "test: line 1, key `nosuch`: unknown field `nosuch`"),
        (
            "[mta_sts]\nenabled = \"yes\"\n",
            "test: line 2, key `mta_sts.enabled`: invalid type: string \"yes\", expected a boolean",
        ),
        ("[mta_sts]\nfetch_timeout = 0\n", "test: mta_sts.fetch_timeout: must be at least 1"),
        (
            "[mta_sts]\nrefresh_interval = 0\n",
            "test: mta_sts.refresh_interval: must be at least 1",
        ),
    ];

    #[test]
    fn bad_configs_name_key_and_line() {
        for (text, want) in BAD {
            let got = Config::parse(text, "test").unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn idn_domain_keys_are_a_labels() {
        let c = Config::parse(
            "[policy.domains]\n\"Bücher.example\" = \"dane-only\"\n[routes]\n\"bücher.test\" = \"[192.0.2.1]:25\"\n",
            "test",
        )
        .unwrap();
        assert_eq!(
            c.policy.level_for("xn--bcher-kva.example"),
            crate::policy::Level::DaneOnly
        );
        assert!(c
            .routes
            .contains_key(&DomainKey("xn--bcher-kva.test".into())));
    }

    #[test]
    fn routes_syntax() {
        let ok = [
            ("[mx.example]", ("mx.example", 25, false)),
            ("[mx.example]:2525", ("mx.example", 2525, false)),
            ("mx.example", ("mx.example", 25, true)),
            ("[192.0.2.1]:25", ("192.0.2.1", 25, false)),
        ];
        for (s, (host, port, mx)) in ok {
            let r: Route = s.parse().unwrap();
            assert_eq!(
                (r.host.as_str(), r.port, r.mx_lookup),
                (host, port, mx),
                "{s}"
            );
        }
        for bad in [
            "[mx.example",
            "[mx.example]:0",
            "mx example",
            "[mx.example]x",
            "",
        ] {
            assert!(bad.parse::<Route>().is_err(), "{bad:?} should be refused");
        }
    }
}

/// Hostname, DomainKey and Route serialise as the strings they were
/// written as, so `config check` prints valid configuration.
macro_rules! serialize_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
serialize_as_string!(Hostname);
serialize_as_string!(DomainKey);
serialize_as_string!(Route);
