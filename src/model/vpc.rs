//! What the EC2 API says about the agent's VPC, as plain data: the model every verdict and
//! diagnosis reads, whoever fetched it (the SDK, or a fake in tests).

use super::{
    NatGateway, NetworkAcl, Peering, Policy, PrefixList, RouteTable, SecurityGroup, SourceStatus,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// The VPC around one subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VpcView {
    /// `vpc-...`.
    pub vpc_id: String,
    /// The agent's subnet.
    pub subnet_id: String,
    /// The route table the subnet uses: its explicit association, else the main table.
    pub route_table: Option<RouteTable>,
    /// Every VPC endpoint of the VPC.
    pub endpoints: Vec<Endpoint>,
    /// The VPC's enableDnsSupport attribute.
    pub dns_support: Option<bool>,
    /// The VPC's enableDnsHostnames attribute.
    pub dns_hostnames: Option<bool>,
    /// The VPC's security groups.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroup>,
    /// The VPC's network ACLs.
    #[serde(default)]
    pub network_acls: Vec<NetworkAcl>,
    /// Whether the security groups and network ACLs were read: `ok`, or why not (an instance
    /// profile without DescribeSecurityGroups or DescribeNetworkAcls). The routes and
    /// endpoints stand without them.
    #[serde(default)]
    pub firewalls: SourceStatus,
    /// The VPC's NAT gateways.
    #[serde(default)]
    pub nat_gateways: Vec<NatGateway>,
    /// The VPC's peering connections, in either direction.
    #[serde(default)]
    pub peerings: Vec<Peering>,
    /// Every network interface of the VPC (instances', endpoints', load balancers'...): who
    /// holds an address, in which subnet and security groups.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// The customer-managed prefix lists the security groups' rules name, with their entries.
    #[serde(default)]
    pub prefix_lists: Vec<PrefixList>,
}

/// A network interface of the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// `eni-...`.
    pub id: String,
    /// Its private addresses, IPv4 and IPv6.
    pub ips: Vec<IpAddr>,
    /// Its subnet.
    pub subnet_id: Option<String>,
    /// Its security groups.
    pub groups: Vec<String>,
}

/// A VPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `vpce-...`.
    pub id: String,
    /// `com.amazonaws.<region>.<service>`, or an endpoint service's name.
    pub service: String,
    /// `Interface`, `Gateway`, `GatewayLoadBalancer`.
    pub kind: EndpointKind,
    /// `available`, `pendingAcceptance`, `pending`, `rejected`...
    pub state: EndpointState,
    /// Private DNS (interface endpoints).
    pub private_dns: bool,
    /// DNS names of the endpoint.
    pub dns_names: Vec<String>,
    /// Security groups of its ENIs.
    pub security_groups: Vec<String>,
    /// Its network interfaces with their addresses.
    pub enis: Vec<Eni>,
    /// Its policy, when the EC2 API gave one that reads as a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Which families its ENIs have (`IpAddressType`): IPv4 when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_type: Option<IpType>,
    /// Which families its ENIs' DNS records answer (`DnsRecordIpType`): IPv4 when not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_record_ip_type: Option<IpType>,
}

/// The address families an endpoint has (`IpAddressType`) or answers in DNS
/// (`DnsRecordIpType`), as the EC2 API spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum IpType {
    /// IPv4 only.
    Ipv4,
    /// IPv4 and IPv6.
    Dualstack,
    /// IPv6 only.
    Ipv6,
    /// Another value, as the API gave it (`service-defined`).
    Other(String),
}

impl From<String> for IpType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "ipv4" => Self::Ipv4,
            "dualstack" => Self::Dualstack,
            "ipv6" => Self::Ipv6,
            _ => Self::Other(s),
        }
    }
}

impl From<IpType> for String {
    fn from(t: IpType) -> Self {
        match t {
            IpType::Ipv4 => "ipv4".into(),
            IpType::Dualstack => "dualstack".into(),
            IpType::Ipv6 => "ipv6".into(),
            IpType::Other(s) => s,
        }
    }
}

/// What kind of VPC endpoint. The EC2 API spells it `Interface` in one call and `interface`
/// in another; both read the same, and it is written as the API's documentation spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EndpointKind {
    /// ENIs in the VPC's subnets, named by Private DNS.
    Interface,
    /// A route table target for a prefix list (S3, DynamoDB).
    Gateway,
    /// A Gateway Load Balancer endpoint.
    GatewayLoadBalancer,
    /// A kind this version does not know, as the API gave it.
    Other(String),
}

impl EndpointKind {
    /// The lowercase name used in reports (`interface`, `gateway`).
    #[must_use]
    pub fn as_lowercase(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl From<String> for EndpointKind {
    fn from(s: String) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "interface" => Self::Interface,
            "gateway" => Self::Gateway,
            "gatewayloadbalancer" => Self::GatewayLoadBalancer,
            _ => Self::Other(s),
        }
    }
}

impl From<&str> for EndpointKind {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<EndpointKind> for String {
    fn from(k: EndpointKind) -> Self {
        k.to_string()
    }
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Interface => "Interface",
            Self::Gateway => "Gateway",
            Self::GatewayLoadBalancer => "GatewayLoadBalancer",
            Self::Other(s) => s,
        })
    }
}

/// Where a VPC endpoint stands. Read in any case; written as the EC2 API writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EndpointState {
    /// In service.
    Available,
    /// Created in another account's endpoint service, waiting for its owner to accept.
    PendingAcceptance,
    /// Being created.
    Pending,
    /// Refused by the service owner.
    Rejected,
    /// Creation failed.
    Failed,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
    /// The acceptance expired.
    Expired,
    /// A state this version does not know, as the API gave it.
    Other(String),
}

impl From<String> for EndpointState {
    fn from(s: String) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "available" => Self::Available,
            "pendingacceptance" => Self::PendingAcceptance,
            "pending" => Self::Pending,
            "rejected" => Self::Rejected,
            "failed" => Self::Failed,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            "expired" => Self::Expired,
            _ => Self::Other(s),
        }
    }
}

impl From<&str> for EndpointState {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<EndpointState> for String {
    fn from(s: EndpointState) -> Self {
        s.to_string()
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Available => "available",
            Self::PendingAcceptance => "pendingAcceptance",
            Self::Pending => "pending",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
            Self::Other(s) => s,
        })
    }
}

/// One endpoint network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eni {
    /// `eni-...`.
    pub id: String,
    /// Private addresses.
    pub ips: Vec<IpAddr>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Subnet.
    pub subnet_id: Option<String>,
}

impl Endpoint {
    /// The addresses of its network interfaces.
    #[must_use]
    pub fn ips(&self) -> Vec<IpAddr> {
        self.enis
            .iter()
            .flat_map(|n| n.ips.iter().copied())
            .collect()
    }

    /// The addresses its DNS records answer with: its ENIs' addresses of the families its
    /// `DnsRecordIpType` names (IPv4 when it names none).
    #[must_use]
    pub fn dns_ips(&self) -> Vec<IpAddr> {
        let (v4, v6) = match self.dns_record_ip_type {
            Some(IpType::Dualstack) => (true, true),
            Some(IpType::Ipv6) => (false, true),
            _ => (true, false),
        };
        self.ips()
            .into_iter()
            .filter(|ip| if ip.is_ipv4() { v4 } else { v6 })
            .collect()
    }

    /// Whether `host` is one of its DNS names (a wildcard name counts as its base).
    #[must_use]
    pub fn has_name(&self, host: &str) -> bool {
        self.dns_names
            .iter()
            .any(|n| n.trim_start_matches("*.").eq_ignore_ascii_case(host))
    }
}

impl VpcView {
    /// The interface endpoint owning `ip`, with the ENI.
    #[must_use]
    pub fn endpoint_of(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.enis.iter().any(|n| n.ips.contains(&ip)))
    }

    /// The network interface holding `ip`.
    #[must_use]
    pub fn interface_of(&self, ip: IpAddr) -> Option<&Interface> {
        self.interfaces.iter().find(|n| n.ips.contains(&ip))
    }

    /// The entries of prefix list `id`, when it was read.
    #[must_use]
    pub fn prefix_list(&self, id: &str) -> Option<&PrefixList> {
        self.prefix_lists.iter().find(|p| p.id == id)
    }

    /// The NAT gateway `id`.
    #[must_use]
    pub fn nat_gateway(&self, id: &str) -> Option<&NatGateway> {
        self.nat_gateways.iter().find(|n| n.id == id)
    }

    /// The peering connection `id`.
    #[must_use]
    pub fn peering(&self, id: &str) -> Option<&Peering> {
        self.peerings.iter().find(|p| p.id == id)
    }

    /// The endpoint named `id`.
    #[must_use]
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    /// Endpoints for an AWS service: `com.amazonaws.<region>.<name>`.
    pub fn endpoints_for_service<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.iter().filter(move |e| e.service == service)
    }

    /// The interface endpoints for an AWS service.
    #[must_use]
    pub fn interface_endpoints_for(&self, service: &str) -> Vec<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.service == service && e.kind == EndpointKind::Interface)
            .collect()
    }
}
