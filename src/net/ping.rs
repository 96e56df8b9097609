//! ICMP echo through surge-ping. The socket is opened once per address family: datagram
//! first (no privilege needed where `ping_group_range` allows), raw second; with neither the
//! stage is skipped with a hint instead of failing the run.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::time::Duration;
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

/// What one echo request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Echo {
    /// A reply, after this long.
    Reply(Duration),
    /// No reply within the timeout.
    Timeout,
    /// The send failed (no route, permission...).
    Error(io::ErrorKind, String),
}

/// Sends ICMP echo requests.
pub trait Ping: Send + Sync + 'static {
    /// Why ICMP cannot run for this address family, with the fix; `None` when it can.
    fn unavailable(&self, ip: IpAddr) -> Option<String>;
    /// Sends one echo request with sequence `seq` and waits up to `timeout` for its reply.
    fn echo(
        &self,
        ip: IpAddr,
        ident: u16,
        seq: u16,
        timeout: Duration,
    ) -> impl Future<Output = Echo> + Send;
    /// `datagram`, `raw` or `unavailable`, for the report.
    fn mode(&self) -> &'static str;
}

/// surge-ping clients, one per address family, or the reason there is none.
pub struct SystemPinger {
    v4: Result<Client, Unavailable>,
    v6: Result<Client, Unavailable>,
}

impl SystemPinger {
    /// Opens the ICMP sockets. Never fails: a family without a socket is reported per address.
    #[must_use]
    pub fn new() -> Self {
        Self {
            v4: open(ICMP::V4),
            v6: open(ICMP::V6),
        }
    }
}

impl Default for SystemPinger {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a family has no ICMP socket.
#[derive(Debug, thiserror::Error)]
enum Unavailable {
    #[error(
        "no permission for ICMP sockets: run as root, `setcap cap_net_raw+ep probe`, or widen net.ipv4.ping_group_range"
    )]
    Permission,
    #[error("cannot open an ICMP socket: {0}")]
    Socket(io::Error),
}

fn open(kind: ICMP) -> Result<Client, Unavailable> {
    let config = Config::builder().kind(kind).build();
    Client::new(&config).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            Unavailable::Permission
        } else {
            Unavailable::Socket(e)
        }
    })
}

impl Ping for SystemPinger {
    fn unavailable(&self, ip: IpAddr) -> Option<String> {
        let client = if ip.is_ipv4() { &self.v4 } else { &self.v6 };
        client.as_ref().err().map(ToString::to_string)
    }

    async fn echo(&self, ip: IpAddr, ident: u16, seq: u16, timeout: Duration) -> Echo {
        let client = match (ip.is_ipv4(), &self.v4, &self.v6) {
            (true, Ok(c), _) | (false, _, Ok(c)) => c,
            (_, Err(e), _) | (_, _, Err(e)) => {
                return Echo::Error(io::ErrorKind::PermissionDenied, e.to_string());
            }
        };
        let mut pinger = client.pinger(ip, PingIdentifier(ident)).await;
        pinger.timeout(timeout);
        match pinger.ping(PingSequence(seq), &[0u8; 16]).await {
            Ok((_, rtt)) => Echo::Reply(rtt),
            Err(SurgeError::Timeout { .. }) => Echo::Timeout,
            Err(SurgeError::IOError(e)) => Echo::Error(e.kind(), e.to_string()),
            Err(e) => Echo::Error(io::ErrorKind::Other, e.to_string()),
        }
    }

    fn mode(&self) -> &'static str {
        match &self.v4 {
            Ok(c) if c.get_socket().get_type() == socket2::Type::DGRAM => "datagram",
            Ok(_) => "raw",
            Err(_) => "unavailable",
        }
    }
}
