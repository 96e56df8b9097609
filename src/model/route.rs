//! A subnet's route table as the EC2 API describes it: every route with a typed target, the
//! gateway endpoints' prefix-list routes with their CIDRs, and which route an address takes.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// A route table, reduced to what reachability depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    /// `rtb-...`.
    pub id: String,
    /// The subnet has no explicit association and uses the VPC's main table.
    pub main: bool,
    /// Routes whose destination is a prefix list and whose target is a gateway endpoint.
    pub gateway_routes: Vec<GatewayRoute>,
    /// The target of 0.0.0.0/0, if any.
    pub default_route: Option<RouteTarget>,
    /// Every route of the table.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// One route: a destination and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination block (IPv4 or IPv6), for a CIDR route.
    pub cidr: Option<IpNet>,
    /// The destination prefix list (`pl-...`), for a gateway endpoint's route.
    pub prefix_list: Option<String>,
    /// Where the route sends the traffic.
    pub target: RouteTarget,
    /// `active`, or `blackhole` when the target is gone.
    pub state: RouteState,
}

impl Route {
    /// Its destination as the EC2 API names it: the CIDR block, or the prefix list.
    #[must_use]
    pub fn destination(&self) -> String {
        self.cidr.map_or_else(
            || self.prefix_list.clone().unwrap_or_default(),
            |c| c.to_string(),
        )
    }
}

impl fmt::Display for Route {
    /// `0.0.0.0/0 -> nat-...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.destination(), self.target)
    }
}

/// A prefix-list route to a gateway endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRoute {
    /// `pl-...`.
    pub prefix_list: String,
    /// `vpce-...`.
    pub endpoint_id: String,
    /// The prefix list's CIDR blocks.
    pub cidrs: Vec<IpNet>,
}

/// Where a route sends traffic: every target the EC2 API has, told apart by the id's form.
/// In JSON it is the id the API gave (`igw-...`, `local`, a core network's ARN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RouteTarget {
    /// Inside the VPC.
    Local,
    /// `igw-...`: the internet, for addresses with a public IPv4 address or any IPv6 one.
    InternetGateway(String),
    /// `eigw-...`: IPv6 to the internet, outbound only.
    EgressOnlyInternetGateway(String),
    /// `nat-...`: a NAT gateway.
    NatGateway(String),
    /// `vpce-...`: a gateway endpoint (prefix-list routes) or a Gateway Load Balancer endpoint.
    VpcEndpoint(String),
    /// `pcx-...`: a VPC peering connection.
    Peering(String),
    /// `tgw-...`: a transit gateway.
    TransitGateway(String),
    /// `vgw-...`: a virtual private gateway (Site-to-Site VPN, Direct Connect).
    VirtualPrivateGateway(String),
    /// `cagw-...`: a Wavelength zone's carrier gateway.
    CarrierGateway(String),
    /// `lgw-...`: an Outpost's local gateway.
    LocalGateway(String),
    /// `arn:...:core-network/...`: an AWS Cloud WAN core network.
    CoreNetwork(String),
    /// `eni-...`: a network interface (an appliance).
    NetworkInterface(String),
    /// `i-...`: an instance (a NAT instance, an appliance).
    Instance(String),
    /// A target this version does not know, as the API gave it (empty when it gave none).
    Unknown(String),
}

impl RouteTarget {
    /// The id as the EC2 API gives it.
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Self::Local => "local",
            Self::InternetGateway(s)
            | Self::EgressOnlyInternetGateway(s)
            | Self::NatGateway(s)
            | Self::VpcEndpoint(s)
            | Self::Peering(s)
            | Self::TransitGateway(s)
            | Self::VirtualPrivateGateway(s)
            | Self::CarrierGateway(s)
            | Self::LocalGateway(s)
            | Self::CoreNetwork(s)
            | Self::NetworkInterface(s)
            | Self::Instance(s)
            | Self::Unknown(s) => s,
        }
    }

    /// What it is, in words: `NAT gateway`, `peering connection`.
    #[must_use]
    pub fn what(&self) -> &'static str {
        match self {
            Self::Local => "the VPC",
            Self::InternetGateway(_) => "internet gateway",
            Self::EgressOnlyInternetGateway(_) => "egress-only internet gateway",
            Self::NatGateway(_) => "NAT gateway",
            Self::VpcEndpoint(_) => "VPC endpoint",
            Self::Peering(_) => "peering connection",
            Self::TransitGateway(_) => "transit gateway",
            Self::VirtualPrivateGateway(_) => "virtual private gateway",
            Self::CarrierGateway(_) => "carrier gateway",
            Self::LocalGateway(_) => "local gateway",
            Self::CoreNetwork(_) => "Cloud WAN core network",
            Self::NetworkInterface(_) => "network interface",
            Self::Instance(_) => "instance",
            Self::Unknown(_) => "target probe does not know",
        }
    }
}

impl From<String> for RouteTarget {
    fn from(s: String) -> Self {
        if s == "local" {
            return Self::Local;
        }
        if s.starts_with("arn:") && s.contains(":core-network/") {
            return Self::CoreNetwork(s);
        }
        let kind: fn(String) -> Self = match s.split_once('-').map_or("", |(p, _)| p) {
            "igw" => Self::InternetGateway,
            "eigw" => Self::EgressOnlyInternetGateway,
            "nat" => Self::NatGateway,
            "vpce" => Self::VpcEndpoint,
            "pcx" => Self::Peering,
            "tgw" => Self::TransitGateway,
            "vgw" => Self::VirtualPrivateGateway,
            "cagw" => Self::CarrierGateway,
            "lgw" => Self::LocalGateway,
            "eni" => Self::NetworkInterface,
            "i" => Self::Instance,
            _ => Self::Unknown,
        };
        kind(s)
    }
}

impl From<&str> for RouteTarget {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<RouteTarget> for String {
    fn from(t: RouteTarget) -> Self {
        t.id().to_string()
    }
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Whether a route carries traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouteState {
    /// Its target is there.
    #[default]
    Active,
    /// Its target is gone (deleted, detached, terminated): the traffic is dropped.
    Blackhole,
}

/// The route an address takes: the most specific match, and the broader route it won over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The winning route.
    pub route: Matched<'a>,
    /// The most specific route of another destination that also matched.
    pub over: Option<&'a Route>,
}

/// A matching route: a gateway endpoint's prefix list or a CIDR route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched<'a> {
    /// A prefix-list route to a gateway endpoint.
    Gateway(&'a GatewayRoute),
    /// A CIDR route.
    Cidr(IpNet, &'a Route),
}

impl RouteTable {
    /// The route `ip` takes, by longest prefix: a gateway endpoint's prefix list counts with
    /// the length of its entry that holds `ip`, and a CIDR route of the same length wins over
    /// it, as AWS orders them.
    #[must_use]
    pub fn lookup(&self, ip: IpAddr) -> Option<RouteMatch<'_>> {
        let cidr = self
            .routes
            .iter()
            .filter_map(|r| Some((r.cidr?, r)))
            .filter(|(c, _)| c.contains(&ip))
            .max_by_key(|(c, _)| c.prefix_len());
        let gateway = self.gateway_routes.iter().find_map(|g| {
            g.cidrs
                .iter()
                .filter(|c| c.contains(&ip))
                .map(IpNet::prefix_len)
                .max()
                .map(|len| (len, g))
        });
        match (gateway, cidr) {
            (Some((len, g)), Some((c, r))) if len > c.prefix_len() => Some(RouteMatch {
                route: Matched::Gateway(g),
                over: Some(r),
            }),
            (Some((_, g)), None) => Some(RouteMatch {
                route: Matched::Gateway(g),
                over: None,
            }),
            (_, Some((c, r))) => Some(RouteMatch {
                route: Matched::Cidr(c, r),
                over: None,
            }),
            (None, None) => None,
        }
    }
}

/// A NAT gateway of the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatGateway {
    /// `nat-...`.
    pub id: String,
    /// The subnet it sits in.
    pub subnet_id: Option<String>,
    /// `available`, `pending`, `failed`, `deleting`, `deleted`.
    pub state: String,
    /// A public NAT gateway reaches the internet through its subnet's internet gateway; a
    /// private one reaches other VPCs and networks only.
    pub public: bool,
    /// Its public (Elastic IP) addresses: what the internet sees.
    #[serde(default)]
    pub public_ips: Vec<IpAddr>,
    /// The target of 0.0.0.0/0 in its subnet's route table, if any.
    #[serde(default)]
    pub subnet_default_route: Option<RouteTarget>,
}

/// A VPC peering connection, seen from this VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peering {
    /// `pcx-...`.
    pub id: String,
    /// `active`, `pending-acceptance`, `rejected`, `expired`, `deleted`...
    pub status: String,
    /// The VPC at the other end.
    pub peer_vpc_id: Option<String>,
    /// The other VPC's CIDR blocks: the only addresses the connection carries traffic to.
    #[serde(default)]
    pub peer_cidrs: Vec<IpNet>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_the_api_has_reads_by_its_id() {
        for (id, what) in [
            ("local", "the VPC"),
            ("igw-1", "internet gateway"),
            ("eigw-1", "egress-only internet gateway"),
            ("nat-1", "NAT gateway"),
            ("vpce-1", "VPC endpoint"),
            ("pcx-1", "peering connection"),
            ("tgw-1", "transit gateway"),
            ("vgw-1", "virtual private gateway"),
            ("cagw-1", "carrier gateway"),
            ("lgw-1", "local gateway"),
            (
                "arn:aws:networkmanager::123456789012:core-network/core-network-1",
                "Cloud WAN core network",
            ),
            ("eni-1", "network interface"),
            ("i-1", "instance"),
            ("xyz-1", "target probe does not know"),
            ("", "target probe does not know"),
        ] {
            let t = RouteTarget::from(id);
            assert_eq!(t.what(), what, "{id}");
            assert_eq!(t.id(), id);
            let json = serde_json::to_value(&t).unwrap();
            assert_eq!(json, id);
            assert_eq!(serde_json::from_value::<RouteTarget>(json).unwrap(), t);
        }
    }

    fn table() -> RouteTable {
        serde_json::from_value(serde_json::json!({
            "id": "rtb-1", "main": false, "default_route": "nat-1",
            "gateway_routes": [{"prefix_list": "pl-s3", "endpoint_id": "vpce-s3",
                                "cidrs": ["52.219.0.0/16", "3.5.0.0/24"]}],
            "routes": [
                {"cidr": "10.10.0.0/16", "prefix_list": null, "target": "local", "state": "active"},
                {"cidr": "0.0.0.0/0", "prefix_list": null, "target": "nat-1", "state": "active"},
                {"cidr": "3.5.0.0/24", "prefix_list": null, "target": "pcx-1", "state": "active"},
                {"cidr": null, "prefix_list": "pl-s3", "target": "vpce-s3", "state": "active"}]
        }))
        .unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_and_a_cidr_route_wins_a_tie_with_a_prefix_list() {
        let t = table();
        let at = |ip: &str| t.lookup(ip.parse().unwrap()).unwrap();
        let m = at("52.219.1.1");
        assert!(matches!(m.route, Matched::Gateway(g) if g.endpoint_id == "vpce-s3"));
        assert_eq!(m.over.unwrap().target, RouteTarget::from("nat-1"));
        assert!(
            matches!(at("3.5.0.9").route, Matched::Cidr(_, r) if r.target == RouteTarget::from("pcx-1"))
        );
        assert!(
            matches!(at("8.8.8.8").route, Matched::Cidr(_, r) if r.target == RouteTarget::from("nat-1"))
        );
        assert!(
            matches!(at("10.10.3.3").route, Matched::Cidr(_, r) if r.target == RouteTarget::Local)
        );
        assert!(t.lookup("2600::1".parse().unwrap()).is_none());
    }
}
