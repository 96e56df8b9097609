//! The vocabulary of failure: every failed stage names its phase and its kind.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The stage of a check in which something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Name resolution.
    Dns,
    /// ICMP echo.
    Icmp,
    /// TCP connect.
    Tcp,
    /// TLS handshake and certificate verification.
    Tls,
    /// HTTP request and response.
    Http,
}

impl Phase {
    /// The stages of a connection, in the order they run over it (ICMP runs beside them).
    pub const CONNECTION: [Self; 3] = [Self::Tcp, Self::Tls, Self::Http];

    /// The kebab-case name used in JSON and tables.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Icmp => "icmp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Http => "http",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, independent of the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// No answer within the stage timeout.
    Timeout,
    /// The run's overall deadline ended the stage.
    Deadline,
    /// The peer refused: TCP RST, or a DNS REFUSED answer.
    Refused,
    /// The name does not exist.
    Nxdomain,
    /// The name exists but has no A or AAAA records.
    NoData,
    /// The resolver answered SERVFAIL.
    Servfail,
    /// The kernel has no route, or an ICMP unreachable came back.
    NoRoute,
    /// The operating system denied the operation.
    Permission,
    /// The certificate does not name the host.
    NameMismatch,
    /// The certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate has expired (or is not yet valid).
    Expired,
    /// Another certificate problem.
    Certificate,
    /// The TLS handshake failed for a reason other than the certificate.
    Handshake,
    /// The connection was reset or closed early.
    Reset,
    /// The peer broke the protocol (malformed DNS or HTTP).
    Protocol,
    /// The HTTP body did not contain the expected text.
    BodyMismatch,
    /// Any other I/O error.
    Io,
}

impl Kind {
    /// The kebab-case name used in JSON and tables.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Deadline => "deadline",
            Self::Refused => "refused",
            Self::Nxdomain => "nxdomain",
            Self::NoData => "no-data",
            Self::Servfail => "servfail",
            Self::NoRoute => "no-route",
            Self::Permission => "permission",
            Self::NameMismatch => "name-mismatch",
            Self::UnknownIssuer => "unknown-issuer",
            Self::Expired => "expired",
            Self::Certificate => "certificate",
            Self::Handshake => "handshake",
            Self::Reset => "reset",
            Self::Protocol => "protocol",
            Self::BodyMismatch => "body-mismatch",
            Self::Io => "io",
        }
    }

    /// Maps an I/O error from a socket operation to a kind.
    #[must_use]
    pub fn from_io(err: &std::io::Error) -> Self {
        use std::io::ErrorKind as E;
        match err.kind() {
            E::ConnectionRefused => Self::Refused,
            E::TimedOut => Self::Timeout,
            E::PermissionDenied => Self::Permission,
            E::ConnectionReset | E::ConnectionAborted | E::UnexpectedEof | E::BrokenPipe => {
                Self::Reset
            }
            E::HostUnreachable | E::NetworkUnreachable | E::AddrNotAvailable => Self::NoRoute,
            _ => Self::Io,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed stage, as it appears in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckError {
    /// Where it failed.
    pub phase: Phase,
    /// How it failed.
    pub kind: Kind,
    /// What the underlying library or peer said.
    pub message: String,
}

impl CheckError {
    /// Builds an error for a phase.
    pub fn new(phase: Phase, kind: Kind, message: impl Into<String>) -> Self {
        Self {
            phase,
            kind,
            message: message.into(),
        }
    }
}
