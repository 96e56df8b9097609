//! What the VPC's firewalls admit for TCP: security groups (stateful, allow rules only; a
//! rule's peer is an address block, another group, or a prefix list) and network ACLs
//! (stateless, numbered, the first match decides).

use super::predict::fix;
use crate::model::{Code, Fact, FactKind, NetworkAcl, Protocol, SgRule, VpcView};
use std::net::IpAddr;

/// Which rules of a security group apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Egress, to the peer.
    Out,
    /// Ingress, from the peer.
    In,
}

/// The other end of the traffic, as a security group rule can name it.
#[derive(Clone, Copy)]
pub(super) struct Peer<'a> {
    pub ip: IpAddr,
    pub groups: &'a [String],
    pub prefix_list: Option<&'a str>,
}

/// Whether any of `ids` has a rule admitting TCP `port` to or from `peer`.
pub(super) fn groups(vpc: &VpcView, ids: &[String], side: Side, peer: Peer<'_>, port: u16) -> Fact {
    let (word, dir) = match side {
        Side::Out => ("to", "egress"),
        Side::In => ("from", "ingress"),
    };
    for id in ids {
        let Some(g) = vpc.security_groups.iter().find(|g| &g.id == id) else {
            continue;
        };
        let rules = if side == Side::Out {
            &g.egress
        } else {
            &g.ingress
        };
        if let Some(r) = rules.iter().find(|r| admits(vpc, r, &peer, port)) {
            return Fact {
                kind: FactKind::SecurityGroup,
                id: g.id.clone(),
                allows: true,
                says: format!(
                    "{} allows tcp {port} {word} {} ({dir}: {} {})",
                    g.id,
                    peer.ip,
                    r.traffic(),
                    r.peers()
                ),
                fix: None,
            };
        }
    }
    let says = format!(
        "{} ({dir}): no rule allows tcp {port} {word} {}",
        if ids.is_empty() {
            "its security groups".to_string()
        } else {
            ids.join(", ")
        },
        peer.ip
    );
    let target = ids.first().map_or("a security group", String::as_str);
    let (code, rule) = match side {
        Side::Out => (
            Code::SecurityGroupEgress,
            format!("an outbound rule to {target}: tcp {port} to {}/32", peer.ip),
        ),
        Side::In => (
            Code::SecurityGroupIngress,
            match peer.groups.first() {
                Some(g) => format!(
                    "an inbound rule to {target}: tcp {port} from {}/32, or from the group {g}",
                    peer.ip
                ),
                None => format!(
                    "an inbound rule to {target}: tcp {port} from {}/32",
                    peer.ip
                ),
            },
        ),
    };
    Fact {
        kind: FactKind::SecurityGroup,
        id: ids.join(","),
        allows: false,
        fix: Some(fix(code, format!("{says}: add {rule}"))),
        says,
    }
}

/// Whether rule `r` admits TCP `port` with `peer`: by address block (IPv4 or IPv6, each its
/// own family), by a group the peer's interface is in, or by a prefix list: the gateway
/// endpoint's own, or a customer-managed list whose entries hold the peer.
fn admits(vpc: &VpcView, r: &SgRule, peer: &Peer<'_>, port: u16) -> bool {
    tcp(&r.protocol)
        && r.ports.is_none_or(|p| (p.from..=p.to).contains(&port))
        && (r.cidrs.iter().any(|c| c.contains(&peer.ip))
            || r.groups.iter().any(|g| peer.groups.contains(g))
            || r.prefix_lists.iter().any(|l| {
                peer.prefix_list == Some(l.as_str())
                    || vpc
                        .prefix_list(l)
                        .is_some_and(|p| p.cidrs.iter().any(|c| c.contains(&peer.ip)))
            }))
}

fn tcp(p: &Protocol) -> bool {
    matches!(p, Protocol::All | Protocol::Tcp)
}

/// The first rule of `acl` (by number) matching TCP `port` to (`egress`) or from `peer`;
/// `answer` when it is the way back, to an ephemeral port.
pub(super) fn acl_allows(
    acl: &NetworkAcl,
    egress: bool,
    peer: IpAddr,
    port: u16,
    answer: bool,
) -> Fact {
    let dir = if egress { "egress" } else { "ingress" };
    let word = if egress { "to" } else { "from" };
    let first = acl.entries.iter().filter(|e| e.egress == egress).find(|e| {
        tcp(&e.protocol)
            && e.ports.is_none_or(|p| (p.from..=p.to).contains(&port))
            && e.cidr.is_some_and(|c| c.contains(&peer))
    });
    let says = match first {
        Some(e) => {
            let rule = if e.rule == 32767 {
                "*".to_string()
            } else {
                e.rule.to_string()
            };
            let ports = e.ports.map(|p| format!(" {p}")).unwrap_or_default();
            format!(
                "{} rule {rule}: {} {}{ports} {word} {} ({dir}{})",
                acl.id,
                if e.allow { "allow" } else { "deny" },
                e.protocol,
                e.cidr.map(|c| c.to_string()).unwrap_or_default(),
                if answer {
                    ", the answer's ephemeral port"
                } else {
                    ""
                }
            )
        }
        None => format!(
            "{}: no rule matches tcp {port} {word} {peer} ({dir})",
            acl.id
        ),
    };
    let allows = first.is_some_and(|e| e.allow);
    let below = first.map_or_else(String::new, |e| {
        if e.rule == 32767 {
            String::new()
        } else {
            format!(" numbered below {}", e.rule)
        }
    });
    let what = if answer {
        format!("tcp 1024-65535 {word} {peer} (the answers: network ACLs are stateless)")
    } else {
        format!("tcp {port} {word} {peer}")
    };
    Fact {
        kind: FactKind::NetworkAcl,
        id: acl.id.clone(),
        allows,
        fix: (!allows).then(|| {
            fix(
                Code::NetworkAclDenies,
                format!(
                    "{says}: add an {dir} allow rule{below} to {}: {what}",
                    acl.id
                ),
            )
        }),
        says,
    }
}
