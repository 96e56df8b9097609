//! What an address is, the path a target was reached by, and what the operator expects.

use super::report::AddressReport;
use super::{EndpointKind, RouteTarget};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What an address is, seen from inside the VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    /// An interface endpoint ENI: inside the VPC, for an AWS endpoint name.
    EndpointEni,
    /// Inside a VPC CIDR.
    Vpc,
    /// RFC 1918, RFC 6598 or ULA outside the VPC: a peered VPC, on-premises.
    Private,
    /// Anything routable on the internet.
    Public,
    /// Loopback, link-local, multicast, unspecified or broadcast.
    Special,
}

impl AddressClass {
    /// The kebab-case name used in JSON and tables.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointEni => "endpoint-eni",
            Self::Vpc => "vpc",
            Self::Private => "private",
            Self::Public => "public",
            Self::Special => "special",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path a target was reached by, or why it was not; earlier paths are preferred when
/// several addresses answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// Through an interface endpoint ENI in this VPC.
    InterfaceEndpoint,
    /// A public address routed through a gateway endpoint (needs the EC2 API to tell).
    GatewayEndpoint,
    /// An address inside the VPC that is not an endpoint.
    Vpc,
    /// Another VPC, over a peering connection (`pcx-...`), whatever its addresses look like.
    Peering,
    /// Through a transit gateway (`tgw-...`).
    TransitGateway,
    /// A private address outside the VPC, or any address a route sends to a private network
    /// or an appliance (a virtual private gateway, a local gateway, a core network, an
    /// instance or network interface).
    Private,
    /// The internet through a NAT gateway (`nat-...`), which shows its public address.
    NatGateway,
    /// A public address.
    Public,
    /// A loopback or link-local address.
    Special,
    /// Resolved, but no address completed the checks.
    Unreachable,
    /// The name did not resolve to any address.
    DnsFailed,
}

impl Path {
    /// The kebab-case name used in JSON, tables and `--expect`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InterfaceEndpoint => "interface-endpoint",
            Self::GatewayEndpoint => "gateway-endpoint",
            Self::Vpc => "vpc",
            Self::Peering => "peering",
            Self::TransitGateway => "transit-gateway",
            Self::Private => "private",
            Self::NatGateway => "nat-gateway",
            Self::Public => "public",
            Self::Special => "special",
            Self::Unreachable => "unreachable",
            Self::DnsFailed => "dns-failed",
        }
    }

    /// Every path, in order of preference.
    pub const ALL: [Self; 11] = [
        Self::InterfaceEndpoint,
        Self::GatewayEndpoint,
        Self::Vpc,
        Self::Peering,
        Self::TransitGateway,
        Self::Private,
        Self::NatGateway,
        Self::Public,
        Self::Special,
        Self::Unreachable,
        Self::DnsFailed,
    ];

    /// The path an address that completed its checks stands for: a gateway endpoint, else
    /// the route the EC2 API says an address outside the VPC takes, else its class.
    #[must_use]
    pub fn of(address: &AddressReport) -> Self {
        if address
            .endpoint
            .as_ref()
            .is_some_and(|e| e.kind == EndpointKind::Gateway)
        {
            return Self::GatewayEndpoint;
        }
        let by_class = match address.class {
            AddressClass::EndpointEni => return Self::InterfaceEndpoint,
            AddressClass::Vpc => return Self::Vpc,
            AddressClass::Special => return Self::Special,
            AddressClass::Private => Self::Private,
            AddressClass::Public => Self::Public,
        };
        address
            .route
            .as_ref()
            .and_then(|r| Self::of_target(&r.target))
            .unwrap_or(by_class)
    }

    /// The path a route target stands for, for an address outside the VPC; `None` where the
    /// address itself tells (the VPC, a Gateway Load Balancer endpoint, an unknown target).
    #[must_use]
    pub fn of_target(target: &RouteTarget) -> Option<Self> {
        match target {
            RouteTarget::NatGateway(_) => Some(Self::NatGateway),
            RouteTarget::Peering(_) => Some(Self::Peering),
            RouteTarget::TransitGateway(_) => Some(Self::TransitGateway),
            RouteTarget::InternetGateway(_)
            | RouteTarget::EgressOnlyInternetGateway(_)
            | RouteTarget::CarrierGateway(_) => Some(Self::Public),
            RouteTarget::VirtualPrivateGateway(_)
            | RouteTarget::LocalGateway(_)
            | RouteTarget::CoreNetwork(_)
            | RouteTarget::NetworkInterface(_)
            | RouteTarget::Instance(_) => Some(Self::Private),
            RouteTarget::Local | RouteTarget::VpcEndpoint(_) | RouteTarget::Unknown(_) => None,
        }
    }
}

/// So a path compares with its name, as in `cell.path == "gateway-endpoint"`.
impl PartialEq<&str> for Path {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator expects of a target; in JSON, its name as `--expect` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Expect {
    /// Reachable by any path.
    Reachable,
    /// Not reachable, whether DNS failed or not.
    Unreachable,
    /// Exactly this path.
    Path(Path),
    /// What the VPC's configuration predicts: the target passes when packets and
    /// configuration agree.
    Auto,
}

/// An expectation that is none of the names [`Expect`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownExpectation(pub String);

impl fmt::Display for UnknownExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<_> = Path::ALL.iter().map(|p| p.as_str()).collect();
        write!(
            f,
            "unknown expectation {:?}; use reachable, auto, {}",
            self.0,
            all.join(", ")
        )
    }
}

impl std::error::Error for UnknownExpectation {}

impl FromStr for Expect {
    type Err = UnknownExpectation;
    fn from_str(s: &str) -> Result<Self, UnknownExpectation> {
        match s {
            "reachable" => Ok(Self::Reachable),
            "unreachable" => Ok(Self::Unreachable),
            "auto" => Ok(Self::Auto),
            _ => Path::ALL
                .into_iter()
                .find(|p| p.as_str() == s)
                .map(Self::Path)
                .ok_or_else(|| UnknownExpectation(s.to_string())),
        }
    }
}

impl TryFrom<String> for Expect {
    type Error = UnknownExpectation;
    fn try_from(s: String) -> Result<Self, UnknownExpectation> {
        s.parse()
    }
}

impl From<Expect> for String {
    fn from(e: Expect) -> Self {
        e.to_string()
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reachable => f.write_str("reachable"),
            Self::Unreachable => f.write_str("unreachable"),
            Self::Auto => f.write_str("auto"),
            Self::Path(p) => p.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse() {
        assert_eq!("reachable".parse::<Expect>(), Ok(Expect::Reachable));
        assert_eq!(
            "gateway-endpoint".parse::<Expect>(),
            Ok(Expect::Path(Path::GatewayEndpoint))
        );
        let e = "gateway".parse::<Expect>().unwrap_err();
        assert!(e.to_string().contains("gateway-endpoint"), "{e}");
    }
}
