//! TLS protocol versions as the operator names them (`[tls] min_version`,
//! log lines): `TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`, the spelling of
//! OpenSSL and Postfix. Ordered, so that a floor is a comparison.

use std::fmt;
use std::str::FromStr;

/// A TLS protocol version. SSL 2 and 3 are not versions danegate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls1_0,
    Tls1_1,
    Tls1_2,
    Tls1_3,
}

impl TlsVersion {
    pub const ALL: [TlsVersion; 4] = [
        TlsVersion::Tls1_0,
        TlsVersion::Tls1_1,
        TlsVersion::Tls1_2,
        TlsVersion::Tls1_3,
    ];

    /// `TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls1_0 => "TLSv1",
            TlsVersion::Tls1_1 => "TLSv1.1",
            TlsVersion::Tls1_2 => "TLSv1.2",
            TlsVersion::Tls1_3 => "TLSv1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Not one of the names [`TlsVersion::name`] gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLS version {0:?}: expected \"TLSv1\", \"TLSv1.1\", \"TLSv1.2\" or \"TLSv1.3\"")]
pub struct UnknownVersion(pub String);

impl FromStr for TlsVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TlsVersion::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TlsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for v in TlsVersion::ALL {
            assert_eq!(v.name().parse::<TlsVersion>(), Ok(v));
        }
        assert!(TlsVersion::Tls1_0 < TlsVersion::Tls1_1);
        assert!(TlsVersion::Tls1_2 < TlsVersion::Tls1_3);
        assert_eq!(
            "TLSv1.0".parse::<TlsVersion>().unwrap_err().to_string(),
            "unknown TLS version \"TLSv1.0\": expected \"TLSv1\", \"TLSv1.1\", \"TLSv1.2\" or \"TLSv1.3\""
        );
        assert!("SSLv3".parse::<TlsVersion>().is_err());
    }
}
