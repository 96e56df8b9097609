//! What the configuration predicts, before any packet: for each address, the route that
//! matches it, the endpoint's state, the instance's security groups outbound, the network
//! ACLs of the subnets crossed (both ways: they are stateless, so the answer to an ephemeral
//! port must get back in) and the endpoint interface's security groups inbound. Security
//! groups are stateful: the answer needs no rule of its own.

use super::answer::{self, Answer, Expected};
use super::firewall::{Peer, Side, acl_allows, groups};
use crate::model::{
    AddressClass, AddressReport, Code, Diagnosis, Endpoint, EndpointState, Fact, FactKind,
    Instance, NetworkAcl, Path, Prediction, TargetReport, VpcView,
};
use ipnet::IpNet;
use std::net::IpAddr;

/// The first port of Linux's ephemeral range (net.ipv4.ip_local_port_range), where answers
/// come back to: a network ACL must let them in.
const EPHEMERAL: u16 = 32768;

/// The instance the traffic leaves from, by the interface it leaves by.
struct Source<'a> {
    ip: IpAddr,
    subnet: &'a str,
    subnet_cidr: Option<IpNet>,
    vpc_cidrs: &'a [IpNet],
    groups: &'a [String],
    public: bool,
}

/// The prediction for `t`, when the configuration is known well enough: the EC2 API read the
/// firewalls and the metadata gave the instance's address, subnet and security groups. The
/// addresses followed are the ones DNS gave, unless the configuration expects an endpoint's
/// ENIs and DNS gave none of them: then the ENIs, and the prediction parts from the packets.
#[must_use]
pub fn predict(t: &TargetReport, vpc: &VpcView, instance: &Instance) -> Option<Prediction> {
    let (dns, enis) = match answer::expected(&t.host, vpc) {
        Some(Expected {
            fact,
            answer: Answer::Nothing,
        }) if t.addresses.is_empty() => {
            return Some(Prediction {
                reachable: false,
                path: Path::DnsFailed,
                because: vec![fact],
                says: String::new(),
            });
        }
        // It resolved all the same (another VPC's endpoint, a stale view): follow the answer.
        Some(Expected {
            answer: Answer::Nothing,
            ..
        })
        | None => (None, None),
        Some(Expected {
            fact,
            answer: Answer::Enis(ips),
        }) => (Some(fact), Some(ips)),
        Some(Expected {
            fact,
            answer: Answer::Outside,
        }) => (Some(fact), None),
    };
    let dests: Vec<Dest<'_>> = match enis {
        Some(ips) if !t.addresses.iter().any(|a| ips.contains(&a.ip)) => {
            ips.into_iter().map(Dest::eni).collect()
        }
        _ => t.addresses.iter().map(Dest::of).collect(),
    };
    if dests.is_empty() || !vpc.firewalls.is_ok() || instance.security_groups.is_empty() {
        return None;
    }
    let mut best: Option<(Path, Vec<Fact>)> = None;
    let mut blocked: Option<Vec<Fact>> = None;
    for d in &dests {
        if d.ip.is_ipv6() && instance.ipv6s.is_empty() {
            blocked.get_or_insert_with(|| vec![no_ipv6(instance, d.ip)]);
            continue;
        }
        let src = source(instance, d.ip)?;
        match address(d, t.port, &src, vpc)? {
            Ok((path, facts)) => {
                if best.as_ref().is_none_or(|(p, _)| path < *p) {
                    best = Some((path, facts));
                }
            }
            Err(facts) => {
                blocked.get_or_insert(facts);
            }
        }
    }
    let (reachable, path, facts) = match best {
        Some((path, facts)) => (true, path, facts),
        None => (false, Path::Unreachable, blocked.unwrap_or_default()),
    };
    Some(Prediction {
        reachable,
        path,
        because: dns.into_iter().chain(facts).collect(),
        says: String::new(),
    })
}

/// An IPv6 address, from an instance that has none.
fn no_ipv6(instance: &Instance, ip: IpAddr) -> Fact {
    let subnet = instance.subnet_id.as_deref().unwrap_or("its subnet");
    let says = format!("{subnet}: the instance has no IPv6 address, so {ip} is out of its reach");
    with_fix(
        route_fact(subnet, false, says.clone()),
        Code::NoIpv6Address,
        format!(
            "{says}: assign one to its interface (its subnet needs an IPv6 block), or use the name's IPv4 answers"
        ),
    )
}

/// The interface traffic to `ip` leaves by: another interface whose subnet holds `ip` (the
/// kernel reaches it on that link), else the primary one, which the default route uses; from
/// its address of `ip`'s family (an IPv6 address is global: the internet gateway takes it).
fn source(instance: &Instance, ip: IpAddr) -> Option<Source<'_>> {
    let base = Source {
        ip: instance.local_ipv4?,
        subnet: instance.subnet_id.as_deref()?,
        subnet_cidr: instance.subnet_cidr,
        vpc_cidrs: &instance.vpc_cidrs,
        groups: &instance.security_groups,
        public: instance.public_ipv4.is_some(),
    };
    if ip.is_ipv6() {
        return Some(Source {
            ip: *instance.ipv6s.first()?,
            subnet_cidr: instance.subnet_ipv6_cidr,
            public: true,
            ..base
        });
    }
    if base.subnet_cidr.is_some_and(|c| c.contains(&ip)) {
        return Some(base);
    }
    let on_link = instance
        .secondary_interfaces
        .iter()
        .find(|n| n.subnet_cidr.is_some_and(|c| c.contains(&ip)));
    Some(match on_link {
        Some(n) => Source {
            ip: *n.local_ipv4s.first()?,
            subnet: n.subnet_id.as_deref()?,
            subnet_cidr: n.subnet_cidr,
            groups: &n.security_groups,
            // An address of this interface's subnet needs no public address.
            public: false,
            ..base
        },
        None => base,
    })
}

/// Where the traffic goes: an address DNS gave, or an ENI the configuration expects.
struct Dest<'a> {
    ip: IpAddr,
    eni: bool,
    /// The gateway endpoint's prefix list that holds the address.
    prefix_list: Option<&'a str>,
}

impl<'a> Dest<'a> {
    fn of(a: &'a AddressReport) -> Self {
        Self {
            ip: a.ip,
            eni: a.class == AddressClass::EndpointEni,
            prefix_list: a.endpoint.as_ref().and_then(|e| e.prefix_list.as_deref()),
        }
    }

    fn eni(ip: IpAddr) -> Self {
        Self {
            ip,
            eni: true,
            prefix_list: None,
        }
    }
}

/// The line that puts the prediction beside what the packets did.
#[must_use]
pub fn says(p: &Prediction, reachable: bool, path: Path) -> String {
    let allowing: Vec<&str> = p.because.iter().map(|f| f.says.as_str()).collect();
    let blocking = p
        .because
        .iter()
        .find(|f| !f.allows)
        .map(|f| f.says.as_str());
    match (p.reachable, reachable) {
        // Agreeing on a way through: the route decides the path; the rest is in `because`.
        (true, true) if p.path == path => {
            let route = p.because.iter().find(|f| f.kind == FactKind::Route);
            let rules = p
                .because
                .iter()
                .filter(|f| !matches!(f.kind, FactKind::Route | FactKind::Dns))
                .count();
            match (route, rules) {
                (Some(r), 0) => format!("the configuration agrees: {}", r.says),
                (Some(r), n) => format!(
                    "the configuration agrees: {}, and {n} more rules allow it",
                    r.says
                ),
                (None, _) => "the configuration agrees".to_string(),
            }
        }
        (true, true) => format!(
            "the configuration predicts {} but the packets took {path}: {}",
            p.path,
            allowing.join("; ")
        ),
        (false, false) => format!(
            "the configuration agrees: blocked by {}",
            blocking.unwrap_or("no route")
        ),
        (true, false) if path == Path::DnsFailed => format!(
            "the configuration expects an answer ({}), DNS gave none: check that this host asks the VPC resolver (the VPC's base + 2)",
            p.because
                .iter()
                .find(|f| f.kind == FactKind::Dns)
                .map_or("", |f| f.says.as_str())
        ),
        (true, false) => format!(
            "the configuration allows it ({}), the packets did not get through: look at the endpoint policy or the service",
            allowing.join("; ")
        ),
        (false, true) => format!(
            "the configuration blocks it ({}), yet the packets got through: the EC2 API's view may be stale, or a rule is read wrong",
            blocking.unwrap_or("no route")
        ),
    }
}

/// The path and the facts on the way, or the facts up to the one that blocks it.
type Followed = Result<(Path, Vec<Fact>), Vec<Fact>>;

/// The path an address would take and the facts on the way, or the facts up to the one that
/// blocks it; `None` when its route goes to a target probe does not know.
fn address(a: &Dest<'_>, port: u16, src: &Source<'_>, vpc: &VpcView) -> Option<Followed> {
    let hop = super::route::route(a.ip, a.eni, src.vpc_cidrs, src.public, vpc)?;
    Some(follow(a, hop, port, src, vpc))
}

/// The facts after the route: the endpoint's state, the security groups and network ACLs.
fn follow(
    a: &Dest<'_>,
    hop: super::route::Hop,
    port: u16,
    src: &Source<'_>,
    vpc: &VpcView,
) -> Followed {
    let mut facts = Vec::new();
    let step = |facts: &mut Vec<Fact>, fact: Fact| {
        let allows = fact.allows;
        facts.push(fact);
        allows
    };
    let path = hop.path;
    if !step(&mut facts, hop.fact) {
        return Err(facts);
    }
    let endpoint = vpc.endpoint_of(a.ip);
    if let Some(e) = endpoint {
        if !step(&mut facts, endpoint_state(e)) {
            return Err(facts);
        }
    }
    // The interface holding the address, when it is in this VPC (an endpoint's ENI, an
    // instance, a load balancer): its groups must admit the traffic in, its subnet's ACL.
    let held = vpc.interface_of(a.ip);
    let eni_groups: &[String] = match (endpoint, held) {
        (Some(e), _) => e.security_groups.as_slice(),
        (None, Some(n)) => n.groups.as_slice(),
        (None, None) => &[],
    };
    let prefix_list = a.prefix_list;
    let out = groups(
        vpc,
        src.groups,
        Side::Out,
        Peer {
            ip: a.ip,
            groups: eni_groups,
            prefix_list,
        },
        port,
    );
    if !step(&mut facts, out) {
        return Err(facts);
    }
    let eni_subnet = endpoint
        .and_then(|e| {
            e.enis
                .iter()
                .find(|n| n.ips.contains(&a.ip))
                .and_then(|n| n.subnet_id.as_deref())
        })
        .or_else(|| held.and_then(|n| n.subnet_id.as_deref()));
    let same_subnet = eni_subnet.map_or_else(
        || src.subnet_cidr.is_some_and(|c| c.contains(&a.ip)),
        |s| s == src.subnet,
    );
    if !same_subnet {
        if let Some(acl) = NetworkAcl::of_subnet(&vpc.network_acls, src.subnet) {
            for fact in [
                acl_allows(acl, true, a.ip, port, false),
                acl_allows(acl, false, a.ip, EPHEMERAL, true),
            ] {
                if !step(&mut facts, fact) {
                    return Err(facts);
                }
            }
        }
    }
    if endpoint.is_some() || held.is_some() {
        let inbound = groups(
            vpc,
            eni_groups,
            Side::In,
            Peer {
                ip: src.ip,
                groups: src.groups,
                prefix_list: None,
            },
            port,
        );
        if !step(&mut facts, inbound) {
            return Err(facts);
        }
        if let Some(acl) = eni_subnet
            .filter(|s| *s != src.subnet)
            .and_then(|s| NetworkAcl::of_subnet(&vpc.network_acls, s))
        {
            for fact in [
                acl_allows(acl, false, src.ip, port, false),
                acl_allows(acl, true, src.ip, EPHEMERAL, true),
            ] {
                if !step(&mut facts, fact) {
                    return Err(facts);
                }
            }
        }
    }
    Ok((path, facts))
}

/// An endpoint carries traffic only while available.
fn endpoint_state(e: &Endpoint) -> Fact {
    let up = e.state == EndpointState::Available;
    Fact {
        kind: FactKind::Endpoint,
        id: e.id.clone(),
        allows: up,
        says: format!("{}: {}", e.id, e.state),
        // Waiting for acceptance has a diagnosis of its own (`endpoint-pending-acceptance`).
        fix: (!up && e.state != EndpointState::PendingAcceptance).then(|| {
            fix(
                Code::EndpointNotAvailable,
                format!(
                    "{} is {}: it carries no traffic until it is available; re-create it, or ask the service's owner",
                    e.id, e.state
                ),
            )
        }),
    }
}

pub(super) fn fix(code: Code, message: String) -> Diagnosis {
    Diagnosis { code, message }
}

pub(super) fn with_fix(mut fact: Fact, code: Code, message: String) -> Fact {
    fact.fix = Some(fix(code, message));
    fact
}

pub(super) fn route_fact(id: &str, allows: bool, says: String) -> Fact {
    Fact {
        kind: FactKind::Route,
        id: id.to_string(),
        allows,
        says,
        fix: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        EndpointRef, HttpReport, IcmpReport, Scheme, StageReport, TlsReport, Verdict,
    };
    use serde_json::json;

    /// The tutorial's VPC: the private subnet 10.10.1.0/24 with a gateway route to S3's
    /// prefix list, a CloudFormation endpoint with ENIs in both subnets, security groups and
    /// the private subnet's network ACL as `acl` gives it.
    fn vpc(state: &str, endpoint_ingress: &str, acl: &serde_json::Value) -> VpcView {
        serde_json::from_value(json!({
            "vpc_id": "vpc-1", "subnet_id": "subnet-priv",
            "route_table": {"id": "rtb-priv", "main": false, "default_route": null,
                "gateway_routes": [{"prefix_list": "pl-s3", "endpoint_id": "vpce-s3",
                                    "cidrs": ["52.219.60.0/24"]}],
                "routes": [{"cidr": "10.10.0.0/16", "prefix_list": null, "target": "local", "state": "active"},
                           {"cidr": null, "prefix_list": "pl-s3", "target": "vpce-s3", "state": "active"}]},
            "endpoints": [{"id": "vpce-cf", "service": "com.amazonaws.ap-northeast-2.cloudformation",
                "kind": "Interface", "state": state, "private_dns": true, "dns_names": [],
                "security_groups": ["sg-ep"],
                "enis": [{"id": "eni-a", "ips": ["10.10.0.100"], "availability_zone": null, "subnet_id": "subnet-pub"},
                         {"id": "eni-c", "ips": ["10.10.1.100"], "availability_zone": null, "subnet_id": "subnet-priv"}]}],
            "dns_support": true, "dns_hostnames": true,
            "security_groups": [
                {"id": "sg-inst", "name": "instances", "ingress": [],
                 "egress": [{"protocol": "all", "ports": null, "cidrs": ["0.0.0.0/0"]}]},
                {"id": "sg-ep", "name": "endpoints", "egress": [],
                 "ingress": [{"protocol": "tcp", "ports": {"from": 443, "to": 443}, "cidrs": [endpoint_ingress]}]}],
            "network_acls": [
                {"id": "acl-pub", "default": true, "subnets": [], "entries": [
                    {"rule": 100, "egress": false, "protocol": "all", "ports": null, "cidr": "0.0.0.0/0", "allow": true},
                    {"rule": 100, "egress": true, "protocol": "all", "ports": null, "cidr": "0.0.0.0/0", "allow": true}]},
                acl],
            "firewalls": "ok"
        }))
        .unwrap()
    }

    fn open_acl() -> serde_json::Value {
        json!({"id": "acl-priv", "default": false, "subnets": ["subnet-priv"], "entries": [
            {"rule": 100, "egress": false, "protocol": "all", "ports": null, "cidr": "0.0.0.0/0", "allow": true},
            {"rule": 100, "egress": true, "protocol": "all", "ports": null, "cidr": "0.0.0.0/0", "allow": true},
            {"rule": 32767, "egress": false, "protocol": "all", "ports": null, "cidr": "0.0.0.0/0", "allow": false},
            {"rule": 32767, "egress": true, "protocol": "all", "ports": null, "cidr": "0.0.0.0/0", "allow": false}]})
    }

    fn instance() -> Instance {
        Instance {
            local_ipv4: Some("10.10.1.10".parse().unwrap()),
            subnet_id: Some("subnet-priv".into()),
            subnet_cidr: Some("10.10.1.0/24".parse().unwrap()),
            vpc_cidrs: vec!["10.10.0.0/16".parse().unwrap()],
            security_groups: vec!["sg-inst".into()],
            ..Instance::default()
        }
    }

    /// A target resolved to `ips`: CloudFormation's name for the VPC's addresses, S3's for
    /// its prefix, a name the configuration says nothing of for the rest.
    fn target(ips: &[&str], v: &VpcView) -> TargetReport {
        let host = match ips.first() {
            Some(ip) if ip.starts_with("52.219.") => "s3.ap-northeast-2.amazonaws.com",
            Some(ip) if !ip.starts_with("10.") => "www.example.com",
            _ => "cloudformation.ap-northeast-2.amazonaws.com",
        };
        let mut addresses: Vec<AddressReport> = ips
            .iter()
            .map(|ip| AddressReport {
                ip: ip.parse().unwrap(),
                class: crate::verdict::classify(
                    ip.parse().unwrap(),
                    host,
                    &["10.10.0.0/16".parse().unwrap()],
                ),
                icmp: IcmpReport::default(),
                tcp: StageReport::default(),
                tls: TlsReport::default(),
                http: HttpReport::default(),
                endpoint: None::<EndpointRef>,
                route: None,
            })
            .collect();
        crate::verdict::enrich(&mut addresses, v);
        TargetReport {
            target: "t".into(),
            host: host.into(),
            port: 443,
            scheme: Scheme::Https,
            url: "https://t/".into(),
            dns: crate::model::DnsReport {
                ok: !addresses.is_empty(),
                addresses: addresses.iter().map(|a| a.ip).collect(),
                ..crate::model::DnsReport::none()
            },
            addresses,
            verdict: Verdict::undecided(),
        }
    }

    fn blocking(p: &Prediction) -> &str {
        &p.because
            .iter()
            .find(|f| !f.allows)
            .expect("a blocking fact")
            .says
    }

    #[test]
    fn an_open_interface_endpoint_is_predicted_reachable_through_it() {
        let v = vpc("available", "10.10.0.0/16", &open_acl());
        let p = predict(
            &target(&["10.10.0.100", "10.10.1.100"], &v),
            &v,
            &instance(),
        )
        .unwrap();
        assert!(p.reachable);
        assert_eq!(p.path, Path::InterfaceEndpoint);
        let kinds: Vec<FactKind> = p.because.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&FactKind::Endpoint) && kinds.contains(&FactKind::SecurityGroup));
        assert_eq!(
            says(&p, true, Path::InterfaceEndpoint),
            format!(
                "the configuration agrees: rtb-priv: 10.10.0.100 is local, and {} more rules allow it",
                p.because.len() - 2
            )
        );
        assert_eq!(
            p.because[0].says,
            "vpce-cf has Private DNS on: cloudformation.ap-northeast-2.amazonaws.com resolves to its ENIs 10.10.0.100, 10.10.1.100"
        );
        assert!(
            p.because.iter().any(|f| f.says
                == "sg-ep allows tcp 443 from 10.10.1.10 (ingress: tcp 443 10.10.0.0/16)"),
            "{:#?}",
            p.because
        );
    }

    fn rule(value: serde_json::Value) -> crate::model::SgRule {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_rule_naming_a_group_admits_the_interfaces_in_it_anywhere_in_the_vpc() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        // A web server in the public subnet, whose group admits the instances' group.
        v.interfaces.push(crate::model::Interface {
            id: "eni-web".into(),
            ips: vec!["10.10.0.55".parse().unwrap()],
            subnet_id: Some("subnet-pub".into()),
            groups: vec!["sg-web".into()],
        });
        let mut web: crate::model::SecurityGroup = serde_json::from_value(json!(
            {"id": "sg-web", "name": "web", "egress": [], "ingress": []}))
        .unwrap();
        web.ingress = vec![rule(
            json!({"protocol": "tcp", "ports": {"from": 443, "to": 443}, "groups": ["sg-inst"]}),
        )];
        v.security_groups.push(web);
        let mut t = target(&["10.10.0.55"], &v);
        t.host = "web.example".into();
        t.addresses[0].class = AddressClass::Vpc;
        let p = predict(&t, &v, &instance()).unwrap();
        assert_eq!((p.reachable, p.path), (true, Path::Vpc));
        assert!(
            p.because
                .iter()
                .any(|f| f.says
                    == "sg-web allows tcp 443 from 10.10.1.10 (ingress: tcp 443 sg-inst)"),
            "{:#?}",
            p.because
        );
        v.security_groups[2].ingress[0].groups = vec!["sg-other".into()];
        let p = predict(&t, &v, &instance()).unwrap();
        assert!(!p.reachable);
        assert_eq!(
            blocking(&p),
            "sg-web (ingress): no rule allows tcp 443 from 10.10.1.10"
        );
    }

    #[test]
    fn a_customer_managed_prefix_list_admits_what_its_entries_hold() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        v.security_groups[1].ingress = vec![rule(
            json!({"protocol": "tcp", "ports": {"from": 443, "to": 443}, "prefix_lists": ["pl-mine"]}),
        )];
        v.prefix_lists = vec![crate::model::PrefixList {
            id: "pl-mine".into(),
            cidrs: vec!["10.10.0.0/24".parse().unwrap()],
        }];
        let t = target(&["10.10.1.100"], &v);
        let p = predict(&t, &v, &instance()).unwrap();
        assert_eq!(
            blocking(&p),
            "sg-ep (ingress): no rule allows tcp 443 from 10.10.1.10"
        );
        v.prefix_lists[0]
            .cidrs
            .push("10.10.1.0/24".parse().unwrap());
        let p = predict(&t, &v, &instance()).unwrap();
        assert!(p.reachable, "{:#?}", p.because);
        assert!(
            p.because.iter().any(
                |f| f.says == "sg-ep allows tcp 443 from 10.10.1.10 (ingress: tcp 443 pl-mine)"
            ),
            "{:#?}",
            p.because
        );
    }

    #[test]
    fn an_ipv6_range_admits_ipv6_only() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        v.security_groups[0].egress = vec![rule(
            json!({"protocol": "all", "ports": null, "cidrs": ["::/0"]}),
        )];
        let p = predict(&target(&["52.219.60.10"], &v), &v, &instance()).unwrap();
        assert_eq!(
            blocking(&p),
            "sg-inst (egress): no rule allows tcp 443 to 52.219.60.10"
        );
        v.security_groups[0].egress[0]
            .cidrs
            .push("0.0.0.0/0".parse().unwrap());
        let p = predict(&target(&["52.219.60.10"], &v), &v, &instance()).unwrap();
        assert!(p.reachable, "{:#?}", p.because);
    }

    #[test]
    fn traffic_to_a_second_interfaces_subnet_leaves_by_it_and_its_groups_decide() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        v.security_groups.push(
            serde_json::from_value(json!({"id": "sg-mgmt", "name": "mgmt", "ingress": [],
                "egress": [{"protocol": "tcp", "ports": {"from": 22, "to": 22}, "cidrs": ["0.0.0.0/0"]}]}))
            .unwrap(),
        );
        let mut i = instance();
        i.secondary_interfaces = vec![crate::model::InstanceInterface {
            mac: "02:00:00:00:00:01".into(),
            device_number: Some(1),
            local_ipv4s: vec!["10.10.0.11".parse().unwrap()],
            subnet_id: Some("subnet-pub".into()),
            subnet_cidr: Some("10.10.0.0/24".parse().unwrap()),
            security_groups: vec!["sg-mgmt".into()],
        }];
        let p = predict(&target(&["10.10.0.100"], &v), &v, &i).unwrap();
        assert_eq!(
            blocking(&p),
            "sg-mgmt (egress): no rule allows tcp 443 to 10.10.0.100"
        );
        // The primary interface's subnet, and anything routed, leave by the primary one.
        let p = predict(&target(&["10.10.1.100"], &v), &v, &i).unwrap();
        assert!(p.reachable, "{:#?}", p.because);
        let p = predict(&target(&["52.219.60.10"], &v), &v, &i).unwrap();
        assert!(p.reachable, "{:#?}", p.because);
    }

    #[test]
    fn ipv6_leaves_from_the_instances_ipv6_address_or_not_at_all() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        let table = v.route_table.as_mut().unwrap();
        table.routes.push(
            serde_json::from_value(
                json!({"cidr": "::/0", "prefix_list": null, "target": "eigw-1", "state": "active"}),
            )
            .unwrap(),
        );
        v.security_groups[0].egress[0]
            .cidrs
            .push("::/0".parse().unwrap());
        for acl in &mut v.network_acls {
            for e in &mut acl.entries {
                if e.rule == 100 {
                    e.cidr = Some("::/0".parse().unwrap());
                }
            }
        }
        let mut t = target(&["2600:1f18::1"], &v);
        t.host = "www.example.com".into();
        let p = predict(&t, &v, &instance()).unwrap();
        assert_eq!(
            blocking(&p),
            "subnet-priv: the instance has no IPv6 address, so 2600:1f18::1 is out of its reach"
        );
        let mut i = instance();
        i.ipv6s = vec!["2001:db8:1010:1::10".parse().unwrap()];
        let p = predict(&t, &v, &i).unwrap();
        assert_eq!(
            (p.reachable, p.path),
            (true, Path::Public),
            "{:#?}",
            p.because
        );
        assert_eq!(
            p.because[0].says,
            "rtb-priv: ::/0 -> eigw-1 (egress-only internet gateway)"
        );
    }

    #[test]
    fn a_dual_stack_endpoint_answers_aaaa_only_when_its_dns_records_say_so() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        v.endpoints[0].enis[0]
            .ips
            .push("2001:db8:1010::100".parse().unwrap());
        let ips = |v: &VpcView| -> Vec<String> {
            v.endpoints[0]
                .dns_ips()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(ips(&v), ["10.10.0.100", "10.10.1.100"]);
        v.endpoints[0].dns_record_ip_type = Some(crate::model::IpType::Dualstack);
        assert_eq!(
            ips(&v),
            ["10.10.0.100", "2001:db8:1010::100", "10.10.1.100"]
        );
        v.endpoints[0].dns_record_ip_type = Some("ipv6".to_string().into());
        assert_eq!(ips(&v), ["2001:db8:1010::100"]);
    }

    #[test]
    fn an_endpoint_awaiting_acceptance_blocks_whatever_its_groups_say() {
        let v = vpc("pendingAcceptance", "10.10.0.0/16", &open_acl());
        let p = predict(&target(&["10.10.1.100"], &v), &v, &instance()).unwrap();
        assert!(!p.reachable);
        assert_eq!(blocking(&p), "vpce-cf: pendingAcceptance");
    }

    #[test]
    fn an_endpoint_group_for_the_public_subnet_only_blocks_the_private_instance() {
        let v = vpc("available", "10.10.0.0/24", &open_acl());
        let p = predict(&target(&["10.10.1.100"], &v), &v, &instance()).unwrap();
        assert!(!p.reachable);
        assert_eq!(
            blocking(&p),
            "sg-ep (ingress): no rule allows tcp 443 from 10.10.1.10"
        );
    }

    #[test]
    fn a_network_acl_denying_https_to_s3_blocks_the_gateway_path() {
        let mut acl = open_acl();
        acl["entries"].as_array_mut().unwrap().insert(
            0,
            json!({"rule": 90, "egress": true, "protocol": "tcp", "ports": {"from": 443, "to": 443},
                   "cidr": "52.219.60.0/24", "allow": false}),
        );
        let v = vpc("available", "10.10.0.0/16", &acl);
        let p = predict(&target(&["52.219.60.10"], &v), &v, &instance()).unwrap();
        assert!(!p.reachable);
        assert_eq!(
            blocking(&p),
            "acl-priv rule 90: deny tcp 443 to 52.219.60.0/24 (egress)"
        );
        assert_eq!(
            says(&p, false, Path::Unreachable),
            "the configuration agrees: blocked by acl-priv rule 90: deny tcp 443 to 52.219.60.0/24 (egress)"
        );
    }

    #[test]
    fn a_stateless_acl_must_let_the_answer_back_in() {
        let mut acl = open_acl();
        acl["entries"].as_array_mut().unwrap().insert(
            0,
            json!({"rule": 50, "egress": false, "protocol": "tcp", "ports": {"from": 1024, "to": 65535},
                   "cidr": "0.0.0.0/0", "allow": false}),
        );
        let v = vpc("available", "10.10.0.0/16", &acl);
        let p = predict(&target(&["52.219.60.10"], &v), &v, &instance()).unwrap();
        assert_eq!(
            blocking(&p),
            "acl-priv rule 50: deny tcp 1024-65535 from 0.0.0.0/0 (ingress, the answer's ephemeral port)"
        );
        // The ENI in the instance's own subnet crosses no ACL.
        let p = predict(&target(&["10.10.1.100"], &v), &v, &instance()).unwrap();
        assert!(p.reachable, "{:#?}", p.because);
    }

    #[test]
    fn a_public_address_without_a_route_is_predicted_unreachable() {
        let v = vpc("available", "10.10.0.0/16", &open_acl());
        let p = predict(&target(&["203.0.113.9"], &v), &v, &instance()).unwrap();
        assert!(!p.reachable);
        assert_eq!(blocking(&p), "rtb-priv: no route for 203.0.113.9");
    }

    #[test]
    fn when_packets_and_configuration_part_the_line_says_where_to_look() {
        let v = vpc("available", "10.10.0.0/16", &open_acl());
        let p = predict(&target(&["10.10.1.100"], &v), &v, &instance()).unwrap();
        let line = says(&p, false, Path::Unreachable);
        assert!(
            line.starts_with("the configuration allows it (vpce-cf has Private DNS on: cloudformation.ap-northeast-2.amazonaws.com resolves to its ENIs 10.10.0.100, 10.10.1.100; rtb-priv: 10.10.1.100 is local;"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "the packets did not get through: look at the endpoint policy or the service"
            ),
            "{line}"
        );
    }

    #[test]
    fn without_the_firewalls_or_the_instances_groups_nothing_is_predicted() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        let t = target(&["10.10.1.100"], &v);
        let mut i = instance();
        i.security_groups.clear();
        assert!(predict(&t, &v, &i).is_none());
        v.firewalls = "DescribeSecurityGroups: UnauthorizedOperation: no"
            .to_string()
            .into();
        assert!(predict(&t, &v, &instance()).is_none());
    }

    #[test]
    fn a_vpce_name_no_endpoint_carries_is_predicted_not_to_resolve() {
        let v = vpc("available", "10.10.0.0/16", &open_acl());
        let mut t = target(&[], &v);
        t.host = "vpce-0abc-123.vpce-svc-0def.ap-northeast-2.vpce.amazonaws.com".into();
        let p = predict(&t, &v, &instance()).unwrap();
        assert_eq!((p.reachable, p.path), (false, Path::DnsFailed));
        assert_eq!(p.because[0].kind, FactKind::Dns);
        assert_eq!(
            blocking(&p),
            "vpc-1: no endpoint has the name vpce-0abc-123.vpce-svc-0def.ap-northeast-2.vpce.amazonaws.com"
        );
        t.host = "nowhere.example".into();
        assert!(
            predict(&t, &v, &instance()).is_none(),
            "public DNS is not the VPC's to predict"
        );
    }

    #[test]
    fn private_dns_on_and_a_public_answer_part_from_the_configuration() {
        let v = vpc("available", "10.10.0.0/16", &open_acl());
        let mut t = target(&["203.0.113.9"], &v);
        t.host = "cloudformation.ap-northeast-2.amazonaws.com".into();
        let p = predict(&t, &v, &instance()).unwrap();
        assert_eq!((p.reachable, p.path), (true, Path::InterfaceEndpoint));
        assert_eq!(p.because[0].kind, FactKind::Dns);
        let line = says(&p, true, Path::Public);
        assert!(
            line.starts_with(
                "the configuration predicts interface-endpoint but the packets took public: vpce-cf has Private DNS on: cloudformation.ap-northeast-2.amazonaws.com resolves to its ENIs 10.10.0.100, 10.10.1.100; "
            ),
            "{line}"
        );
    }

    #[test]
    fn an_endpoints_own_name_that_does_not_resolve_is_a_dns_finding() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        let name = "vpce-cf-abc.cloudformation.ap-northeast-2.vpce.amazonaws.com";
        v.endpoints[0].dns_names = vec![name.into()];
        let mut t = target(&[], &v);
        t.host = name.into();
        let p = predict(&t, &v, &instance()).unwrap();
        assert_eq!((p.reachable, p.path), (true, Path::InterfaceEndpoint));
        assert_eq!(
            says(&p, false, Path::DnsFailed),
            format!(
                "the configuration expects an answer (vpce-cf's own name: its ENIs 10.10.0.100, 10.10.1.100), DNS gave none: check that this host asks the VPC resolver (the VPC's base + 2)"
            )
        );
    }

    #[test]
    fn private_dns_needs_the_vpcs_dns_hostnames() {
        let mut v = vpc("available", "10.10.0.0/16", &open_acl());
        v.dns_hostnames = Some(false);
        let p = predict(&target(&["10.10.1.100"], &v), &v, &instance()).unwrap();
        assert_eq!(
            p.because[0].says,
            "vpc-1: enableDnsHostnames is off, so vpce-cf's Private DNS does not answer: cloudformation.ap-northeast-2.amazonaws.com resolves outside the VPC"
        );
    }

    #[test]
    fn expect_auto_passes_exactly_where_packets_and_configuration_agree() {
        use crate::model::Expect;
        let v = vpc("pendingAcceptance", "10.10.0.0/16", &open_acl());
        let judged = |up: bool| {
            let mut t = target(&["10.10.1.100"], &v);
            if up {
                t.addresses[0].tcp.status = crate::model::Status::Ok;
                t.addresses[0].tls.status = crate::model::Status::Ok;
                t.addresses[0].http.status = crate::model::Status::Ok;
            }
            crate::verdict::judge(&mut t, Some(Expect::Auto), Some(&v), Some(&instance()));
            t.verdict
        };
        // Blocked by the pending endpoint, and the packets did not pass either: as predicted.
        let v1 = judged(false);
        assert_eq!(
            (v1.reachable, v1.agrees, v1.pass),
            (false, Some(true), true)
        );
        assert_eq!(v1.expected, Some(Expect::Auto));
        // Through all the same: the packets and the configuration part, and that fails.
        let v2 = judged(true);
        assert_eq!(
            (v2.reachable, v2.agrees, v2.pass),
            (true, Some(false), false)
        );
        assert!(
            v2.reason.starts_with(
                "the configuration predicts unreachable, the packets found interface-endpoint: "
            ),
            "{}",
            v2.reason
        );
        // No prediction without the EC2 API: auto asks for reachable.
        let mut t = target(&["10.10.1.100"], &v);
        crate::verdict::judge(&mut t, Some(Expect::Auto), None, Some(&instance()));
        assert_eq!((t.verdict.agrees, t.verdict.pass), (None, false));
        assert!(
            t.verdict.reason.starts_with("expected reachable (auto"),
            "{}",
            t.verdict.reason
        );
    }

    #[test]
    fn a_failure_the_configuration_explains_gets_the_rule_that_would_admit_it() {
        let v = vpc("available", "10.10.0.0/24", &open_acl());
        let mut t = target(&["10.10.1.100"], &v);
        crate::verdict::judge(&mut t, None, Some(&v), Some(&instance()));
        assert_eq!(t.verdict.agrees, Some(true));
        let d: Vec<String> = t
            .verdict
            .diagnoses
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect();
        assert_eq!(
            d,
            vec![
                "security-group-ingress: sg-ep (ingress): no rule allows tcp 443 from 10.10.1.10: add an inbound rule to sg-ep: tcp 443 from 10.10.1.10/32, or from the group sg-inst"
            ]
        );
    }
}
