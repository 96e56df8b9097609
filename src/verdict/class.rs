//! What an address is, seen from inside the VPC: by its number and name, then by what the
//! EC2 API says owns or routes it.

use crate::model::{
    AddressClass, AddressReport, EndpointKind, EndpointRef, Matched, RouteRef, RouteTarget,
    VpcView, region,
};
use ipnet::IpNet;
use std::net::IpAddr;

/// Classifies one address resolved for `host`.
#[must_use]
pub fn classify(ip: IpAddr, host: &str, vpc_cidrs: &[IpNet]) -> AddressClass {
    let ip = canonical(ip);
    if is_special(ip) {
        return AddressClass::Special;
    }
    if vpc_cidrs.iter().any(|net| net.contains(&ip)) {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if is_vpce_name(&host) || is_aws_service_name(&host) {
            return AddressClass::EndpointEni;
        }
        return AddressClass::Vpc;
    }
    if is_private(ip) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

pub(super) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            // RFC 6598 shared address space, 100.64.0.0/10, sits behind carrier NAT or Transit.
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// `vpce-<id>-<suffix>.<service>.<region>.vpce.amazonaws.com` and its zonal forms.
fn is_vpce_name(host: &str) -> bool {
    host.ends_with(".vpce.amazonaws.com") || host.ends_with(".vpce.amazonaws.com.cn")
}

fn is_aws_service_name(host: &str) -> bool {
    aws_service(host).is_some()
}

/// The endpoint service name (`com.amazonaws.<region>.<service>`) of an AWS service host:
/// `<service>.<region>.amazonaws.com` and names under it (S3's bucket names), which Private
/// DNS of an interface endpoint answers inside the VPC. Names AWS gives to resources that
/// live in the VPC (load balancers, RDS, EC2 hosts) are not service endpoints.
#[must_use]
pub fn aws_service(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let labels: Vec<&str> = rest.split('.').collect();
    // `<service>.dualstack.<region>`: the dual-stack name (A and AAAA) of the same service.
    let ([.., service, "dualstack", region] | [.., service, region]) = labels.as_slice() else {
        return None;
    };
    (region::is_valid(region) && !matches!(*service, "elb" | "compute" | "vpce"))
        .then(|| format!("com.amazonaws.{region}.{service}"))
}

/// Marks addresses the EC2 API explains: interface endpoint ENIs, public addresses this
/// subnet's route table sends to a gateway endpoint, and the route every other address
/// outside the VPC takes (a NAT gateway with its public address, a peering connection...).
pub fn enrich(addresses: &mut [AddressReport], vpc: &VpcView) {
    for a in addresses {
        if let Some(e) = vpc.endpoint_of(a.ip) {
            a.class = AddressClass::EndpointEni;
            a.endpoint = Some(EndpointRef {
                id: e.id.clone(),
                service: e.service.clone(),
                kind: EndpointKind::Interface,
                prefix_list: None,
                route_table: None,
            });
            continue;
        }
        if !matches!(a.class, AddressClass::Public | AddressClass::Private) {
            continue;
        }
        let Some(table) = &vpc.route_table else {
            continue;
        };
        let Some(m) = table.lookup(a.ip) else {
            continue;
        };
        let over = m.over.map(ToString::to_string);
        match m.route {
            Matched::Gateway(g) => {
                if a.class == AddressClass::Public {
                    a.endpoint = Some(EndpointRef {
                        id: g.endpoint_id.clone(),
                        service: vpc
                            .endpoint(&g.endpoint_id)
                            .map(|e| e.service.clone())
                            .unwrap_or_default(),
                        kind: EndpointKind::Gateway,
                        prefix_list: Some(g.prefix_list.clone()),
                        route_table: Some(table.id.clone()),
                    });
                }
                a.route = Some(RouteRef {
                    route_table: table.id.clone(),
                    destination: g.prefix_list.clone(),
                    target: RouteTarget::VpcEndpoint(g.endpoint_id.clone()),
                    public_ip: None,
                    over,
                });
            }
            Matched::Cidr(cidr, r) if r.target != RouteTarget::Local => {
                let public_ip = match &r.target {
                    RouteTarget::NatGateway(id) => vpc
                        .nat_gateway(id)
                        .and_then(|n| n.public_ips.first().copied()),
                    _ => None,
                };
                a.route = Some(RouteRef {
                    route_table: table.id.clone(),
                    destination: cidr.to_string(),
                    target: r.target.clone(),
                    public_ip,
                    over,
                });
            }
            Matched::Cidr(..) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpc() -> Vec<IpNet> {
        vec!["10.10.0.0/16".parse().unwrap()]
    }

    fn class(ip: &str, host: &str) -> AddressClass {
        classify(ip.parse().unwrap(), host, &vpc())
    }

    #[test]
    fn address_classes() {
        let cf = "cloudformation.ap-northeast-2.amazonaws.com";
        let vpce = "vpce-0a1b-abcd.cloudformation.ap-northeast-2.vpce.amazonaws.com";
        for (ip, host, want) in [
            ("10.10.0.100", cf, AddressClass::EndpointEni),
            ("10.10.1.100", vpce, AddressClass::EndpointEni),
            (
                "10.10.0.7",
                "bucket.s3.ap-northeast-2.amazonaws.com",
                AddressClass::EndpointEni,
            ),
            (
                "10.10.0.7",
                "sts.cn-north-1.amazonaws.com.cn",
                AddressClass::EndpointEni,
            ),
            (
                "10.10.0.7",
                "s3.dualstack.ap-northeast-2.amazonaws.com",
                AddressClass::EndpointEni,
            ),
            (
                "10.10.0.50",
                "internal-web-1.ap-northeast-2.elb.amazonaws.com",
                AddressClass::Vpc,
            ),
            (
                "10.10.0.50",
                "web-1.elb.ap-northeast-2.amazonaws.com",
                AddressClass::Vpc,
            ),
            (
                "10.10.0.50",
                "db.abc.ap-northeast-2.rds.amazonaws.com",
                AddressClass::Vpc,
            ),
            (
                "10.10.0.50",
                "ip-10-10-0-50.ap-northeast-2.compute.internal",
                AddressClass::Vpc,
            ),
            ("10.10.0.50", "web.example", AddressClass::Vpc),
            ("10.20.0.5", cf, AddressClass::Private),
            ("172.16.3.4", "x", AddressClass::Private),
            ("192.168.1.1", "x", AddressClass::Private),
            ("100.64.0.1", "x", AddressClass::Private),
            ("fd00::1", "x", AddressClass::Private),
            (
                "52.219.60.10",
                "s3.ap-northeast-2.amazonaws.com",
                AddressClass::Public,
            ),
            ("2600:1f18::1", "x", AddressClass::Public),
            ("127.0.0.1", "x", AddressClass::Special),
            ("169.254.169.253", "x", AddressClass::Special),
            ("fe80::1", "x", AddressClass::Special),
            ("::1", "x", AddressClass::Special),
            ("224.0.0.1", "x", AddressClass::Special),
            ("0.0.0.0", "x", AddressClass::Special),
            ("::ffff:10.10.0.100", cf, AddressClass::EndpointEni),
        ] {
            assert_eq!(class(ip, host), want, "{ip} {host}");
        }
    }

    #[test]
    fn a_vpc_address_is_not_an_endpoint_without_a_vpc_cidr() {
        let c = classify(
            "10.10.0.100".parse().unwrap(),
            "cloudformation.ap-northeast-2.amazonaws.com",
            &[],
        );
        assert_eq!(c, AddressClass::Private);
    }
}
