//! Which stages a target's check runs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which stages a target's check runs after TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// TCP connect only.
    Tcp,
    /// TCP and a TLS handshake.
    Tls,
    /// TCP and an HTTP request.
    Http,
    /// TCP, TLS and an HTTP request.
    Https,
}

impl Scheme {
    /// Whether a TLS handshake runs.
    #[must_use]
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Https)
    }

    /// Whether an HTTP request runs.
    #[must_use]
    pub fn uses_http(self) -> bool {
        matches!(self, Self::Http | Self::Https)
    }

    /// The port a target of this scheme uses when it names none.
    #[must_use]
    pub fn default_port(self) -> Option<u16> {
        match self {
            Self::Http => Some(80),
            Self::Https | Self::Tls => Some(443),
            Self::Tcp => None,
        }
    }

    /// The scheme named `s`, in any case.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Self::Tcp),
            "tls" => Some(Self::Tls),
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Http => "http",
            Self::Https => "https",
        })
    }
}
