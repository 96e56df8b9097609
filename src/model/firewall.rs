//! The VPC's firewalls as the EC2 API describes them: security groups (stateful, on network
//! interfaces, allow rules only) and network ACLs (stateless, on subnets, numbered rules, the
//! first match decides). Plain data; what they admit is decided in `crate::verdict`.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An IP protocol as a rule names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Protocol {
    /// Every protocol (`-1`).
    All,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// Another protocol, by number or name as the API gave it.
    Other(String),
}

impl From<String> for Protocol {
    fn from(s: String) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "-1" | "all" => Self::All,
            "6" | "tcp" => Self::Tcp,
            "17" | "udp" => Self::Udp,
            "1" | "icmp" => Self::Icmp,
            _ => Self::Other(s),
        }
    }
}

impl From<&str> for Protocol {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> Self {
        p.to_string()
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::All => "all",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
            Self::Other(s) => s,
        })
    }
}

/// A port range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// First port.
    pub from: u16,
    /// Last port.
    pub to: u16,
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// `sg-...`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it admits in.
    pub ingress: Vec<SgRule>,
    /// What it lets out.
    pub egress: Vec<SgRule>,
}

/// One security group rule: traffic of a protocol and ports, from (ingress) or to (egress)
/// any of its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    /// The protocol.
    pub protocol: Protocol,
    /// The ports, for TCP and UDP; `None` for every port.
    pub ports: Option<Ports>,
    /// Peer address blocks.
    #[serde(default)]
    pub cidrs: Vec<IpNet>,
    /// Peer security groups: interfaces in them match.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Peer prefix lists (`pl-...`).
    #[serde(default)]
    pub prefix_lists: Vec<String>,
}

impl SgRule {
    /// The traffic it admits: `tcp 443`, `all`.
    #[must_use]
    pub fn traffic(&self) -> String {
        let ports = self.ports.map(|p| format!(" {p}")).unwrap_or_default();
        format!("{}{ports}", self.protocol)
    }

    /// Its peers, space-separated: blocks, then groups, then prefix lists.
    #[must_use]
    pub fn peers(&self) -> String {
        let peers: Vec<String> = self
            .cidrs
            .iter()
            .map(ToString::to_string)
            .chain(self.groups.iter().cloned())
            .chain(self.prefix_lists.iter().cloned())
            .collect();
        peers.join(" ")
    }
}

/// A customer-managed prefix list a security group rule names as its peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixList {
    /// `pl-...`.
    pub id: String,
    /// Its entries.
    pub cidrs: Vec<IpNet>,
}

/// A network ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAcl {
    /// `acl-...`.
    pub id: String,
    /// The VPC's default ACL (the one subnets without an association use).
    pub default: bool,
    /// Subnets associated with it.
    pub subnets: Vec<String>,
    /// Its rules, in both directions.
    pub entries: Vec<AclEntry>,
}

/// One network ACL rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// The rule number: lower numbers are matched first; 32767 is the final `*` deny.
    pub rule: i32,
    /// Outbound (true) or inbound.
    pub egress: bool,
    /// The protocol.
    pub protocol: Protocol,
    /// The ports, for TCP and UDP; `None` for every port.
    pub ports: Option<Ports>,
    /// The address block the rule matches (the destination outbound, the source inbound).
    pub cidr: Option<IpNet>,
    /// Allow or deny.
    pub allow: bool,
}

impl NetworkAcl {
    /// The ACL a subnet uses: its association, else the VPC's default.
    #[must_use]
    pub fn of_subnet<'a>(acls: &'a [Self], subnet: &str) -> Option<&'a Self> {
        acls.iter()
            .find(|a| a.subnets.iter().any(|s| s == subnet))
            .or_else(|| acls.iter().find(|a| a.default))
    }
}
