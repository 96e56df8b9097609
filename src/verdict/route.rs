//! What the subnet's route table predicts for one address: the route it takes (the longest
//! prefix, a gateway endpoint's prefix list included), the path that route stands for, and
//! what stops it beyond the table: a blackhole, a NAT gateway that is down or has no way to
//! the internet, a peering connection that is not active or does not reach that far.

use super::predict::{route_fact, with_fix};
use crate::model::{
    Code, Fact, Matched, NatGateway, Path, Peering, Route, RouteState, RouteTarget, VpcView,
};
use ipnet::IpNet;
use std::net::IpAddr;

/// Where an address goes by the route table: a path and the route's fact (blocking when
/// `allows` is false); `None` for a target probe does not know, which it does not guess at.
pub(super) struct Hop {
    pub path: Path,
    pub fact: Fact,
}

/// The route `ip` takes from a subnet of `vpc_cidrs`; `eni` when it is an interface
/// endpoint's address, `public` when the instance has a public address of `ip`'s family.
pub(super) fn route(
    ip: IpAddr,
    eni: bool,
    vpc_cidrs: &[IpNet],
    public: bool,
    vpc: &VpcView,
) -> Option<Hop> {
    let Some(table) = &vpc.route_table else {
        return Some(blocked(route_fact(
            "",
            false,
            "no route table for the subnet".into(),
        )));
    };
    let fact = |allows, says| route_fact(&table.id, allows, says);
    let local = |path| Hop {
        path,
        fact: fact(true, format!("{}: {ip} is local", table.id)),
    };
    if vpc_cidrs.iter().any(|c| c.contains(&ip)) {
        return Some(local(if eni {
            Path::InterfaceEndpoint
        } else {
            Path::Vpc
        }));
    }
    let Some(m) = table.lookup(ip) else {
        let says = format!("{}: no route for {ip}", table.id);
        return Some(refuse(
            &fact,
            says,
            Code::NoRoute,
            "add an interface endpoint for the service, a NAT gateway, or a route to where it lives",
        ));
    };
    match m.route {
        Matched::Gateway(g) => {
            let over = m.over.map_or_else(String::new, |o| {
                format!(", over {o}: the prefix list's entry is more specific")
            });
            Some(Hop {
                path: Path::GatewayEndpoint,
                fact: fact(
                    true,
                    format!(
                        "{}: {} -> {} ({ip}){over}",
                        table.id, g.prefix_list, g.endpoint_id
                    ),
                ),
            })
        }
        Matched::Cidr(cidr, r) if r.target == RouteTarget::Local => Some(Hop {
            path: Path::Vpc,
            fact: fact(true, format!("{}: {ip} is local ({cidr})", table.id)),
        }),
        Matched::Cidr(cidr, r) => cidr_route(ip, public, vpc, &table.id, cidr, r),
    }
}

/// A CIDR route of table `table` to a target outside the VPC.
fn cidr_route(
    ip: IpAddr,
    public: bool,
    vpc: &VpcView,
    table: &str,
    cidr: IpNet,
    r: &Route,
) -> Option<Hop> {
    let fact = |allows, says| route_fact(table, allows, says);
    let says = format!("{table}: {cidr} -> {}", r.target);
    if r.state == RouteState::Blackhole {
        let says = format!("{says} (blackhole: the {} is gone)", r.target.what());
        return Some(refuse(
            &fact,
            says,
            Code::RouteBlackhole,
            "point the route at a live target, or delete it",
        ));
    }
    let public_ip = !super::class::is_private(ip);
    let hop = |path, says: String| Hop {
        path,
        fact: fact(true, says),
    };
    Some(match &r.target {
        RouteTarget::InternetGateway(_) if ip.is_ipv4() && !public => {
            let says = format!("{says}, but the instance has no public address");
            refuse(
                &fact,
                says,
                Code::NoPublicAddress,
                "route through a NAT gateway or an endpoint, or give the instance a public address",
            )
        }
        RouteTarget::NatGateway(id) => match vpc.nat_gateway(id) {
            Some(n) => nat(n, ip, public_ip, &says, fact),
            None => hop(Path::NatGateway, says),
        },
        RouteTarget::Peering(id) => match vpc.peering(id) {
            Some(p) => peering(p, ip, &says, fact),
            None => hop(Path::Peering, says),
        },
        RouteTarget::VpcEndpoint(_) => hop(
            if public_ip {
                Path::Public
            } else {
                Path::Private
            },
            format!("{says} (a Gateway Load Balancer endpoint: the appliances behind it decide)"),
        ),
        RouteTarget::Unknown(_) => return None,
        t => hop(
            Path::of_target(t).unwrap_or(Path::Private),
            format!("{says} ({})", t.what()),
        ),
    })
}

/// A route fact that blocks, with its fix: `<says>: <fix>`.
fn refuse(fact: &impl Fn(bool, String) -> Fact, says: String, code: Code, fix: &str) -> Hop {
    let message = format!("{says}: {fix}");
    blocked(with_fix(fact(false, says), code, message))
}

fn blocked(fact: Fact) -> Hop {
    Hop {
        path: Path::Unreachable,
        fact,
    }
}

/// A NAT gateway carries traffic while available; a public one reaches the internet through
/// its own subnet's internet gateway, a private one never does.
fn nat(
    n: &NatGateway,
    ip: IpAddr,
    public_ip: bool,
    says: &str,
    fact: impl Fn(bool, String) -> Fact,
) -> Hop {
    let subnet = n.subnet_id.as_deref().unwrap_or("its subnet");
    if n.state != "available" {
        let says = format!("{says} ({} is {})", n.id, n.state);
        return refuse(
            &fact,
            says,
            Code::NatGatewayNotAvailable,
            "it carries nothing until it is available; re-create it",
        );
    }
    if public_ip && !n.public {
        let says = format!("{says} (a private NAT gateway: no way to the internet for {ip})");
        return refuse(
            &fact,
            says,
            Code::NatGatewayPrivate,
            "a private NAT gateway reaches other VPCs and networks only; route to a public NAT gateway",
        );
    }
    if public_ip
        && !matches!(
            n.subnet_default_route,
            Some(RouteTarget::InternetGateway(_))
        )
    {
        let beyond = n.subnet_default_route.as_ref().map_or_else(
            || "has no route for 0.0.0.0/0".to_string(),
            |t| format!("sends 0.0.0.0/0 to {t}"),
        );
        let says = format!(
            "{says} ({} sits in {subnet}, whose route table {beyond})",
            n.id
        );
        return refuse(
            &fact,
            says,
            Code::NatGatewayNoInternet,
            &format!(
                "a NAT gateway reaches the internet through its subnet's internet gateway; route 0.0.0.0/0 of {subnet} to it"
            ),
        );
    }
    let public = n
        .public_ips
        .first()
        .map_or_else(String::new, |a| format!(", public {a}"));
    Hop {
        path: Path::NatGateway,
        fact: fact(true, format!("{says} (in {subnet}{public})")),
    }
}

/// A peering connection carries traffic while active, and only to the peer VPC's own blocks:
/// nothing is routed on from there (no internet, NAT or gateway endpoint of the peer's).
fn peering(p: &Peering, ip: IpAddr, says: &str, fact: impl Fn(bool, String) -> Fact) -> Hop {
    let peer = p.peer_vpc_id.as_deref().unwrap_or("the peer VPC");
    if p.status != "active" {
        let says = format!("{says} ({} is {})", p.id, p.status);
        return refuse(
            &fact,
            says,
            Code::PeeringNotActive,
            &format!("the owner of {peer} must accept it"),
        );
    }
    if !p.peer_cidrs.is_empty() && !p.peer_cidrs.iter().any(|c| c.contains(&ip)) {
        let blocks: Vec<String> = p.peer_cidrs.iter().map(ToString::to_string).collect();
        let says = format!(
            "{says} ({} reaches {peer} {} only, not {ip})",
            p.id,
            blocks.join(" ")
        );
        return refuse(
            &fact,
            says,
            Code::PeeringNotTransitive,
            "a peering connection carries nothing beyond the peer VPC: its internet gateway, NAT gateways and gateway endpoints are not used from here; add a route of this VPC's own",
        );
    }
    let blocks: Vec<String> = p.peer_cidrs.iter().map(ToString::to_string).collect();
    Hop {
        path: Path::Peering,
        fact: fact(true, format!("{says} (to {peer} {})", blocks.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A private subnet whose table sends 0.0.0.0/0 to a NAT gateway, S3's prefix to its
    /// gateway endpoint, the other VPC over a peering connection, a third over a transit
    /// gateway, and a few routes of the other kinds.
    fn vpc(nat_state: &str, nat_public: bool, nat_subnet_route: &str, pcx: &str) -> VpcView {
        let route = |cidr: &str, target: &str| json!({"cidr": cidr, "prefix_list": null, "target": target, "state": "active"});
        serde_json::from_value(json!({
            "vpc_id": "vpc-1", "subnet_id": "subnet-priv",
            "route_table": {"id": "rtb-priv", "main": false, "default_route": "nat-1",
                "gateway_routes": [{"prefix_list": "pl-s3", "endpoint_id": "vpce-s3",
                                    "cidrs": ["198.51.100.0/24"]}],
                "routes": [route("10.10.0.0/16", "local"), route("0.0.0.0/0", "nat-1"),
                           route("20.20.0.0/16", "pcx-1"), route("30.30.0.0/16", "tgw-1"),
                           route("40.40.0.0/16", "vgw-1"), route("50.50.0.0/16", "i-1"),
                           route("60.60.0.0/16", "xyz-1"), route("70.70.0.0/16", "vpce-gwlb"),
                           {"cidr": "80.80.0.0/16", "prefix_list": null, "target": "nat-gone", "state": "blackhole"},
                           {"cidr": null, "prefix_list": "pl-s3", "target": "vpce-s3", "state": "active"}]},
            "endpoints": [], "dns_support": true, "dns_hostnames": true,
            "nat_gateways": [{"id": "nat-1", "subnet_id": "subnet-pub", "state": nat_state,
                              "public": nat_public, "public_ips": ["198.51.100.88"],
                              "subnet_default_route": nat_subnet_route}],
            "peerings": [{"id": "pcx-1", "status": pcx, "peer_vpc_id": "vpc-2",
                          "peer_cidrs": ["20.20.0.0/16"]}]
        }))
        .unwrap()
    }

    fn go(v: &VpcView, ip: &str) -> Option<(Path, bool, String, Option<String>)> {
        let cidrs = ["10.10.0.0/16".parse().unwrap()];
        route(ip.parse().unwrap(), false, &cidrs, false, v).map(|h| {
            (
                h.path,
                h.fact.allows,
                h.fact.says,
                h.fact.fix.map(|d| d.code.to_string()),
            )
        })
    }

    fn open() -> VpcView {
        vpc("available", true, "igw-1", "active")
    }

    #[test]
    fn a_nat_gateway_is_named_with_its_public_address() {
        let (path, allows, says, _) = go(&open(), "203.0.113.20").unwrap();
        assert_eq!((path, allows), (Path::NatGateway, true));
        assert_eq!(
            says,
            "rtb-priv: 0.0.0.0/0 -> nat-1 (in subnet-pub, public 198.51.100.88)"
        );
    }

    #[test]
    fn the_gateway_endpoints_prefix_list_wins_over_the_nat_and_says_so() {
        let (path, _, says, _) = go(&open(), "198.51.100.10").unwrap();
        assert_eq!(path, Path::GatewayEndpoint);
        assert_eq!(
            says,
            "rtb-priv: pl-s3 -> vpce-s3 (198.51.100.10), over 0.0.0.0/0 -> nat-1: the prefix list's entry is more specific"
        );
    }

    #[test]
    fn a_nat_gateway_that_cannot_reach_the_internet_blocks_with_the_reason() {
        for (v, code, part) in [
            (
                vpc("failed", true, "igw-1", "active"),
                "nat-gateway-not-available",
                "(nat-1 is failed)",
            ),
            (
                vpc("available", false, "igw-1", "active"),
                "nat-gateway-private",
                "(a private NAT gateway: no way to the internet for 203.0.113.20)",
            ),
            (
                vpc("available", true, "tgw-1", "active"),
                "nat-gateway-no-internet",
                "(nat-1 sits in subnet-pub, whose route table sends 0.0.0.0/0 to tgw-1)",
            ),
        ] {
            let (path, allows, says, fix) = go(&v, "203.0.113.20").unwrap();
            assert_eq!((path, allows), (Path::Unreachable, false), "{says}");
            assert!(says.ends_with(part), "{says}");
            assert_eq!(fix.as_deref(), Some(code));
        }
    }

    #[test]
    fn peering_reaches_the_peer_vpc_only_and_only_when_active() {
        let (path, allows, says, _) = go(&open(), "20.20.1.10").unwrap();
        assert_eq!((path, allows), (Path::Peering, true));
        assert_eq!(
            says,
            "rtb-priv: 20.20.0.0/16 -> pcx-1 (to vpc-2 20.20.0.0/16)"
        );
        let (_, allows, says, fix) = go(
            &vpc("available", true, "igw-1", "pending-acceptance"),
            "20.20.1.10",
        )
        .unwrap();
        assert!(!allows);
        assert!(says.ends_with("(pcx-1 is pending-acceptance)"), "{says}");
        assert_eq!(fix.as_deref(), Some("peering-not-active"));
        // A route that sends more than the peer's blocks there: no edge-to-edge routing.
        let mut v = open();
        v.peerings[0].peer_cidrs = vec!["20.20.0.0/24".parse().unwrap()];
        let (_, allows, says, fix) = go(&v, "20.20.1.10").unwrap();
        assert!(!allows);
        assert!(
            says.ends_with("(pcx-1 reaches vpc-2 20.20.0.0/24 only, not 20.20.1.10)"),
            "{says}"
        );
        assert_eq!(fix.as_deref(), Some("peering-not-transitive"));
    }

    #[test]
    fn every_other_target_is_explained_and_an_unknown_one_not_guessed() {
        let v = open();
        for (ip, path, says) in [
            (
                "30.30.0.1",
                Path::TransitGateway,
                "rtb-priv: 30.30.0.0/16 -> tgw-1 (transit gateway)",
            ),
            (
                "40.40.0.1",
                Path::Private,
                "rtb-priv: 40.40.0.0/16 -> vgw-1 (virtual private gateway)",
            ),
            (
                "50.50.0.1",
                Path::Private,
                "rtb-priv: 50.50.0.0/16 -> i-1 (instance)",
            ),
            (
                "70.70.0.1",
                Path::Public,
                "rtb-priv: 70.70.0.0/16 -> vpce-gwlb (a Gateway Load Balancer endpoint: the appliances behind it decide)",
            ),
        ] {
            assert_eq!(
                go(&v, ip),
                Some((path, true, says.to_string(), None)),
                "{ip}"
            );
        }
        let (path, allows, says, fix) = go(&v, "80.80.0.1").unwrap();
        assert_eq!((path, allows), (Path::Unreachable, false));
        assert_eq!(
            says,
            "rtb-priv: 80.80.0.0/16 -> nat-gone (blackhole: the NAT gateway is gone)"
        );
        assert_eq!(fix.as_deref(), Some("route-blackhole"));
        assert_eq!(
            go(&v, "60.60.0.1"),
            None,
            "an unknown target is not guessed at"
        );
    }
}
