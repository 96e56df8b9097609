//! The tutorial's failure patterns, recognised from a target's results and the VPC as the
//! EC2 API describes it. Each finding is one sentence that ends with the fix.

use super::aws_service;
use crate::model::{
    Code, Diagnosis, Endpoint, EndpointKind, EndpointState, Family, Instance, Path, RouteTarget,
    TargetReport, VpcView,
};

/// What looks wrong for one target, given its results and the VPC.
#[must_use]
pub fn diagnose(t: &TargetReport, vpc: &VpcView, instance: Option<&Instance>) -> Vec<Diagnosis> {
    let service = aws_service(&t.host);
    let interfaces: Vec<&Endpoint> = service
        .as_deref()
        .map(|s| vpc.interface_endpoints_for(s))
        .unwrap_or_default();
    let mut out = Vec::new();
    out.extend(private_dns(t, vpc, &interfaces));
    out.extend(gateway_route(t, vpc, service.as_deref()));
    out.extend(gateway_across(t, service.as_deref()));
    out.extend(endpoint_policy(t, vpc));
    out.extend(ipv6_bypass(t));
    for e in matching_endpoints(t, vpc, &interfaces) {
        out.extend(pending(e));
        out.extend(other_zone(e, instance));
    }
    out
}

fn diagnosis(code: Code, message: String) -> Diagnosis {
    Diagnosis { code, message }
}

/// The service's name resolved to public addresses although an interface endpoint exists.
fn private_dns(t: &TargetReport, vpc: &VpcView, interfaces: &[&Endpoint]) -> Option<Diagnosis> {
    let on_eni = t.addresses.iter().any(|a| {
        a.endpoint
            .as_ref()
            .is_some_and(|e| e.kind == EndpointKind::Interface)
    });
    if !t.dns.ok || on_eni {
        return None;
    }
    if let Some(e) = interfaces
        .iter()
        .find(|e| e.private_dns && e.state == EndpointState::Available)
    {
        let fix = if vpc.dns_support == Some(false) || vpc.dns_hostnames == Some(false) {
            "turn on the VPC's enableDnsSupport and enableDnsHostnames"
        } else {
            "this host does not ask the VPC resolver (VPC base + 2): check /etc/resolv.conf"
        };
        return Some(diagnosis(
            Code::PrivateDnsUnused,
            format!(
                "{} resolves to public addresses although {} has Private DNS on: {fix}",
                t.host, e.id
            ),
        ));
    }
    let e = interfaces.iter().find(|e| !e.private_dns)?;
    let name = e
        .dns_names
        .first()
        .map_or_else(|| format!("{}'s own DNS name", e.id), Clone::clone);
    Some(diagnosis(
        Code::PrivateDnsDisabled,
        format!(
            "{} has Private DNS off, so {} stays public: use {name}, or turn Private DNS on",
            e.id, t.host
        ),
    ))
}

/// S3 or DynamoDB not reachable, and this subnet's route table has no gateway route for it.
fn gateway_route(t: &TargetReport, vpc: &VpcView, service: Option<&str>) -> Option<Diagnosis> {
    let svc = service.filter(|s| matches!(s.rsplit('.').next(), Some("s3" | "dynamodb")))?;
    let table = vpc.route_table.as_ref()?;
    if t.verdict.reachable || t.addresses.iter().any(|a| a.endpoint.is_some()) {
        return None;
    }
    let fix = vpc
        .endpoints_for_service(svc)
        .find(|e| e.kind == EndpointKind::Gateway)
        .map_or_else(
            || {
                format!(
                    "create a gateway endpoint for {svc} with {} in its route tables",
                    table.id
                )
            },
            |e| {
                format!(
                    "gateway endpoint {} exists but {} is not one of its route tables: add it",
                    e.id, table.id
                )
            },
        );
    Some(diagnosis(
        Code::NoGatewayRoute,
        format!(
            "route table {} of {} has no gateway endpoint route for {svc}{}: {fix}",
            table.id,
            vpc.subnet_id,
            if table.default_route.is_none() {
                " and no internet route"
            } else {
                ""
            },
        ),
    ))
}

/// S3 or DynamoDB sent across a transit gateway or a core network: whatever gateway endpoint
/// the other side has, it serves only its own VPC. (A peering connection's route says the
/// same in the prediction: it carries nothing beyond the peer VPC.)
fn gateway_across(t: &TargetReport, service: Option<&str>) -> Option<Diagnosis> {
    let svc = service.filter(|s| matches!(s.rsplit('.').next(), Some("s3" | "dynamodb")))?;
    let r = t.addresses.iter().find_map(|a| {
        a.route.as_ref().filter(|r| {
            matches!(
                r.target,
                RouteTarget::TransitGateway(_) | RouteTarget::CoreNetwork(_)
            )
        })
    })?;
    Some(diagnosis(
        ACROSS,
        format!(
            "{}'s addresses go to {} ({}) by route {} of {}: a gateway endpoint serves only its own VPC, so one on the other side is never used: add a gateway endpoint for {svc} to {}, or use an interface endpoint",
            t.host,
            r.target,
            r.target.what(),
            r.destination,
            r.route_table,
            r.route_table
        ),
    ))
}

/// HTTP 403 through an endpoint whose policy refuses probe's request: the policy answered,
/// the path works.
fn endpoint_policy(t: &TargetReport, vpc: &VpcView) -> Option<Diagnosis> {
    let (e, policy) = t.addresses.iter().find_map(|a| {
        let e = vpc.endpoint(&a.endpoint.as_ref()?.id)?;
        (a.http.code == Some(403)).then_some((e, e.policy.as_ref()?))
    })?;
    let path = t
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let req = super::policy::request(&e.service, &t.host, path);
    let why = super::policy::refuses(policy, &req)?;
    Some(diagnosis(
        Code::EndpointPolicyDenies,
        format!(
            "HTTP 403 through {} comes from its endpoint policy, not from the path (the service answered through the endpoint): {why}; allow {} on {} in {}'s policy if requests like this should pass",
            e.id, req.action, req.resource, e.id
        ),
    ))
}

/// The classic dual-stack fault: the name's A answers use an endpoint, its AAAA answers leave
/// another way (an internet or egress-only gateway), so a client that prefers IPv6 bypasses
/// the endpoint and its policy.
fn ipv6_bypass(t: &TargetReport) -> Option<Diagnosis> {
    let [v4, v6] = t.verdict.families.as_slice() else {
        return None;
    };
    let endpoint = matches!(v4.path, Path::GatewayEndpoint | Path::InterfaceEndpoint);
    if v4.family != Family::Ipv4 || !endpoint || !v6.reachable || v6.path == v4.path {
        return None;
    }
    let via = |family: Family| {
        t.addresses
            .iter()
            .filter(|a| Family::of(a.ip) == family && a.completed())
            .find_map(|a| Some((a.ip, a.route.as_ref()?)))
    };
    let (v6_ip, r6) = via(Family::Ipv6)?;
    let endpoint = via(Family::Ipv4).map_or_else(String::new, |(_, r)| r.target.to_string());
    let endpoint = t.verdict.endpoint_id.clone().unwrap_or(endpoint);
    Some(diagnosis(
        Code::Ipv6BypassesEndpoint,
        format!(
            "{}'s AAAA answers ({v6_ip}) leave by {} ({}; route {} of {}) while its A answers use {endpoint}: clients that prefer IPv6 bypass the endpoint and its policy; make the endpoint dual-stack (its route or ENIs then carry the service's IPv6 too), or take the IPv6 route away",
            t.host,
            r6.target,
            r6.target.what(),
            r6.destination,
            r6.route_table
        ),
    ))
}

/// An endpoint service connection the service's owner has not accepted.
fn pending(e: &Endpoint) -> Option<Diagnosis> {
    if e.state != EndpointState::PendingAcceptance {
        return None;
    }
    let svc_id = e.service.rsplit('.').next().unwrap_or(&e.service);
    Some(diagnosis(
        Code::EndpointPendingAcceptance,
        format!(
            "{} is pendingAcceptance: the owner of {svc_id} must accept it (aws ec2 accept-vpc-endpoint-connections --service-id {svc_id} --vpc-endpoint-ids {})",
            e.id, e.id
        ),
    ))
}

/// The code of a diagnosis that explains no failure: traffic crossing zones costs money and
/// latency, but it gets through.
const CROSS_ZONE: Code = Code::EndpointNoEniInZone;

/// Advice too: S3 across a transit gateway may still get through another VPC's NAT.
const ACROSS: Code = Code::GatewayEndpointNotTransitive;

/// Whether `d` may explain why a target failed (every pattern but the advice).
#[must_use]
pub fn explains_failure(d: &Diagnosis) -> bool {
    d.code != CROSS_ZONE && d.code != ACROSS
}

/// An endpoint with ENIs, none of them in this instance's zone.
fn other_zone(e: &Endpoint, instance: Option<&Instance>) -> Option<Diagnosis> {
    let zone = instance?.availability_zone.as_deref()?;
    let zones: Vec<&str> = e
        .enis
        .iter()
        .filter_map(|n| n.availability_zone.as_deref())
        .collect();
    if zones.is_empty() || zones.contains(&zone) {
        return None;
    }
    Some(diagnosis(
        CROSS_ZONE,
        format!(
            "{} has no ENI in {zone}, this instance's zone: traffic crosses zones; add a subnet in {zone} to the endpoint",
            e.id
        ),
    ))
}

/// Endpoints a target goes to: by ENI address, by an endpoint id in the host name, or by
/// the AWS service the host names.
fn matching_endpoints<'a>(
    t: &TargetReport,
    vpc: &'a VpcView,
    interfaces: &[&'a Endpoint],
) -> Vec<&'a Endpoint> {
    let host = t.host.to_ascii_lowercase();
    vpc.endpoints
        .iter()
        .filter(|e| {
            let by_address = t
                .addresses
                .iter()
                .any(|a| a.endpoint.as_ref().is_some_and(|r| r.id == e.id));
            let by_name = host.starts_with(&format!("{}-", e.id)) || e.has_name(&host);
            by_address || by_name || interfaces.iter().any(|i| i.id == e.id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddressReport, DnsReport, StageReport, Status};
    use crate::model::{CheckError, Kind, Phase};
    use crate::model::{Eni, GatewayRoute, RouteTable};
    use crate::verdict as classify;
    use std::net::IpAddr;

    const REGION: &str = "ap-northeast-2";

    fn endpoint(
        id: &str,
        service: &str,
        kind: &str,
        state: &str,
        private_dns: bool,
        enis: &[(&str, &str)],
    ) -> Endpoint {
        Endpoint {
            id: id.into(),
            service: service.into(),
            kind: kind.into(),
            state: state.into(),
            private_dns,
            dns_names: vec![format!(
                "{id}-abcd.{}.vpce.amazonaws.com",
                service.rsplit('.').next().unwrap()
            )],
            security_groups: vec!["sg-0e1".into()],
            enis: enis
                .iter()
                .map(|(ip, zone)| Eni {
                    id: format!("eni-{ip}"),
                    ips: vec![ip.parse().unwrap()],
                    availability_zone: Some((*zone).into()),
                    subnet_id: None,
                })
                .collect(),
            policy: None,
            ip_address_type: None,
            dns_record_ip_type: None,
        }
    }

    /// S3's gateway endpoint, available.
    fn s3_gateway() -> Endpoint {
        endpoint(
            "vpce-s3",
            &format!("com.amazonaws.{REGION}.s3"),
            "Gateway",
            "available",
            false,
            &[],
        )
    }

    /// The CloudFormation interface endpoint, available, with ENIs at (address, zone).
    fn cf(private_dns: bool, enis: &[(&str, &str)]) -> Endpoint {
        endpoint(
            "vpce-cf",
            &format!("com.amazonaws.{REGION}.cloudformation"),
            "Interface",
            "available",
            private_dns,
            enis,
        )
    }

    fn vpc(endpoints: Vec<Endpoint>, gateway: Option<&str>) -> VpcView {
        VpcView {
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-priv".into(),
            route_table: Some(RouteTable {
                id: "rtb-priv".into(),
                main: false,
                gateway_routes: gateway
                    .map(|id| GatewayRoute {
                        prefix_list: "pl-s3".into(),
                        endpoint_id: id.into(),
                        cidrs: vec!["52.219.0.0/16".parse().unwrap()],
                    })
                    .into_iter()
                    .collect(),
                default_route: None,
                routes: Vec::new(),
            }),
            endpoints,
            dns_support: Some(true),
            dns_hostnames: Some(true),
            ..VpcView::default()
        }
    }

    /// A target whose addresses all completed TCP (`up`) or all timed out, enriched and
    /// judged as the engine does.
    fn target(host: &str, ips: &[&str], up: bool, v: &VpcView) -> TargetReport {
        let mut addresses: Vec<AddressReport> = ips
            .iter()
            .map(|ip| {
                let ip: IpAddr = ip.parse().unwrap();
                AddressReport {
                    ip,
                    class: classify::classify(ip, host, &["10.10.0.0/16".parse().unwrap()]),
                    icmp: crate::model::IcmpReport::default(),
                    tcp: StageReport {
                        status: if up { Status::Ok } else { Status::Fail },
                        ms: Some(1.0),
                        error: (!up).then(|| CheckError::new(Phase::Tcp, Kind::Timeout, "timeout")),
                    },
                    tls: crate::model::TlsReport {
                        status: Status::Skipped,
                        ..Default::default()
                    },
                    http: crate::model::HttpReport {
                        status: Status::Skipped,
                        ..Default::default()
                    },
                    endpoint: None,
                    route: None,
                }
            })
            .collect();
        classify::enrich(&mut addresses, v);
        let dns = DnsReport {
            ok: !ips.is_empty(),
            addresses: addresses.iter().map(|a| a.ip).collect(),
            cname: vec![],
            rcode: Some("NOERROR".into()),
            server: None,
            records: vec![],
            ms: 1.0,
            error: None,
        };
        let verdict = classify::verdict(&dns, &addresses, None, "TCP", Some(v));
        TargetReport {
            target: host.into(),
            host: host.into(),
            port: 443,
            scheme: crate::model::Scheme::Tcp,
            url: String::new(),
            dns,
            addresses,
            verdict,
        }
    }

    fn codes(t: &TargetReport, v: &VpcView, zone: Option<&str>) -> Vec<String> {
        let instance = Instance {
            availability_zone: zone.map(str::to_string),
            local_ipv4: Some("10.10.1.10".parse().unwrap()),
            ..Instance::default()
        };
        diagnose(t, v, Some(&instance))
            .into_iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect()
    }

    const CF: &str = "cloudformation.ap-northeast-2.amazonaws.com";

    #[test]
    fn a_healthy_interface_endpoint_has_nothing_to_say() {
        let v = vpc(
            vec![cf(
                true,
                &[
                    ("10.10.0.100", "ap-northeast-2a"),
                    ("10.10.1.100", "ap-northeast-2c"),
                ],
            )],
            None,
        );
        let t = target(CF, &["10.10.0.100", "10.10.1.100"], true, &v);
        assert_eq!(t.verdict.path.as_str(), "interface-endpoint");
        assert_eq!(t.verdict.endpoint_id.as_deref(), Some("vpce-cf"));
        assert!(codes(&t, &v, Some("ap-northeast-2c")).is_empty());
    }

    #[test]
    fn private_dns_on_but_the_name_resolves_public() {
        let mut v = vpc(vec![cf(true, &[("10.10.0.100", "ap-northeast-2a")])], None);
        let t = target(CF, &["52.95.1.1"], false, &v);
        let found = codes(&t, &v, None);
        assert!(
            found[0].starts_with("private-dns-unused:") && found[0].contains("/etc/resolv.conf"),
            "{found:?}"
        );
        v.dns_hostnames = Some(false);
        let found = codes(&t, &v, None);
        assert!(
            found[0].contains("enableDnsSupport and enableDnsHostnames"),
            "{found:?}"
        );
    }

    #[test]
    fn private_dns_off_keeps_the_service_name_public() {
        let v = vpc(vec![cf(false, &[("10.10.0.100", "ap-northeast-2a")])], None);
        let found = codes(&target(CF, &["52.95.1.1"], false, &v), &v, None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("private-dns-disabled: vpce-cf has Private DNS off")
                && found[0].contains("use vpce-cf-abcd."),
            "{found:?}"
        );
    }

    #[test]
    fn s3_across_a_transit_gateway_is_told_that_gateway_endpoints_do_not_carry_over() {
        let s3 = "s3.ap-northeast-2.amazonaws.com";
        let mut v = vpc(vec![], None);
        v.route_table.as_mut().unwrap().routes = vec![crate::model::Route {
            cidr: Some("0.0.0.0/0".parse().unwrap()),
            prefix_list: None,
            target: "tgw-1".into(),
            state: crate::model::RouteState::Active,
        }];
        let t = target(s3, &["52.219.1.1"], true, &v);
        assert_eq!(t.verdict.path.as_str(), "transit-gateway");
        assert!(
            t.verdict.reason.ends_with(
                "; address 52.219.1.1 via tgw-1 (transit gateway; route 0.0.0.0/0 of rtb-priv)"
            ),
            "{}",
            t.verdict.reason
        );
        assert_eq!(
            codes(&t, &v, None),
            vec![
                "gateway-endpoint-not-transitive: s3.ap-northeast-2.amazonaws.com's addresses go to tgw-1 (transit gateway) by route 0.0.0.0/0 of rtb-priv: a gateway endpoint serves only its own VPC, so one on the other side is never used: add a gateway endpoint for com.amazonaws.ap-northeast-2.s3 to rtb-priv, or use an interface endpoint"
            ]
        );
        let d = diagnose(&t, &v, None);
        assert!(!explains_failure(&d[0]), "advice, not a cause");
    }

    #[test]
    fn a_public_address_through_a_nat_instance_is_not_called_private() {
        let mut v = vpc(vec![], None);
        v.route_table.as_mut().unwrap().routes = vec![crate::model::Route {
            cidr: Some("0.0.0.0/0".parse().unwrap()),
            prefix_list: None,
            target: "eni-nat".into(),
            state: crate::model::RouteState::Active,
        }];
        let t = target(CF, &["52.95.1.1"], true, &v);
        assert_eq!(t.verdict.path.as_str(), "private");
        assert!(
            t.verdict.reason.ends_with(
                "; address 52.95.1.1 via eni-nat (network interface; route 0.0.0.0/0 of rtb-priv)"
            ),
            "{}",
            t.verdict.reason
        );
    }

    #[test]
    fn a_403_through_an_endpoint_whose_policy_refuses_the_request_is_the_policy() {
        let s3 = "s3.ap-northeast-2.amazonaws.com";
        let mut gateway = s3_gateway();
        let mut v = vpc(vec![gateway.clone()], Some("vpce-s3"));
        let mut t = target(s3, &["52.219.1.1"], true, &v);
        t.addresses[0].http.code = Some(403);
        assert!(codes(&t, &v, None).is_empty(), "no policy, nothing to say");
        gateway.policy = Some(
            crate::model::Policy::parse(
                r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::lab-bucket/*"}]}"#,
            )
            .unwrap(),
        );
        v.endpoints = vec![gateway];
        assert_eq!(
            codes(&t, &v, None),
            vec![
                "endpoint-policy-denies: HTTP 403 through vpce-s3 comes from its endpoint policy, not from the path (the service answered through the endpoint): no statement allows s3:ListAllMyBuckets on * (it allows s3:GetObject on arn:aws:s3:::lab-bucket/*); allow s3:ListAllMyBuckets on * in vpce-s3's policy if requests like this should pass"
            ]
        );
        t.url = "https://s3.ap-northeast-2.amazonaws.com:443/lab-bucket/index.html".into();
        assert!(codes(&t, &v, None).is_empty(), "the policy allows this one");
    }

    #[test]
    fn aaaa_answers_leaving_by_the_egress_only_gateway_bypass_the_endpoint() {
        let host = "s3.dualstack.ap-northeast-2.amazonaws.com";
        let mut v = vpc(vec![], Some("vpce-s3"));
        v.route_table.as_mut().unwrap().routes = vec![crate::model::Route {
            cidr: Some("::/0".parse().unwrap()),
            prefix_list: None,
            target: "eigw-1".into(),
            state: crate::model::RouteState::Active,
        }];
        let t = target(host, &["52.219.1.1", "2600:1f18::1"], true, &v);
        assert_eq!(t.verdict.path.as_str(), "gateway-endpoint");
        let families: Vec<String> = t
            .verdict
            .families
            .iter()
            .map(|f| format!("{} {}", f.family, f.path))
            .collect();
        assert_eq!(families, ["IPv4 gateway-endpoint", "IPv6 public"]);
        assert!(
            t.verdict
                .reason
                .ends_with("; by family: IPv4 gateway-endpoint, IPv6 public"),
            "{}",
            t.verdict.reason
        );
        assert_eq!(
            codes(&t, &v, None),
            vec![
                "ipv6-bypasses-endpoint: s3.dualstack.ap-northeast-2.amazonaws.com's AAAA answers (2600:1f18::1) leave by eigw-1 (egress-only internet gateway; route ::/0 of rtb-priv) while its A answers use vpce-s3: clients that prefer IPv6 bypass the endpoint and its policy; make the endpoint dual-stack (its route or ENIs then carry the service's IPv6 too), or take the IPv6 route away"
            ]
        );
        // The endpoint's route covers the IPv6 prefix too: one path, nothing to say.
        v.route_table.as_mut().unwrap().gateway_routes[0]
            .cidrs
            .push("2600:1f18::/32".parse().unwrap());
        let t = target(host, &["52.219.1.1", "2600:1f18::1"], true, &v);
        assert!(t.verdict.families.is_empty());
        assert!(codes(&t, &v, None).is_empty());
    }

    #[test]
    fn s3_without_a_gateway_route() {
        let s3 = "s3.ap-northeast-2.amazonaws.com";
        let v = vpc(vec![], None);
        let found = codes(&target(s3, &["52.219.1.1"], false, &v), &v, None);
        assert!(found[0].starts_with("no-gateway-route: route table rtb-priv of subnet-priv has no gateway endpoint route for com.amazonaws.ap-northeast-2.s3 and no internet route: create"), "{found:?}");
        let elsewhere = vpc(vec![s3_gateway()], None);
        let found = codes(
            &target(s3, &["52.219.1.1"], false, &elsewhere),
            &elsewhere,
            None,
        );
        assert!(
            found[0].contains(
                "gateway endpoint vpce-s3 exists but rtb-priv is not one of its route tables"
            ),
            "{found:?}"
        );
        let routed = vpc(vec![], Some("vpce-s3"));
        let t = target(s3, &["52.219.1.1"], true, &routed);
        assert_eq!(t.verdict.path.as_str(), "gateway-endpoint");
        assert_eq!(t.verdict.endpoint_id.as_deref(), Some("vpce-s3"));
        assert!(codes(&t, &routed, None).is_empty());
    }

    #[test]
    fn an_endpoint_waiting_for_acceptance() {
        let svc = "com.amazonaws.vpce.ap-northeast-2.vpce-svc-0123";
        let v = vpc(
            vec![endpoint(
                "vpce-0fed",
                svc,
                "Interface",
                "pendingAcceptance",
                false,
                &[("10.10.0.200", "ap-northeast-2a")],
            )],
            None,
        );
        let host = "vpce-0fed-7hj3.vpce-svc-0123.ap-northeast-2.vpce.amazonaws.com";
        let found = codes(
            &target(host, &["10.10.0.200"], false, &v),
            &v,
            Some("ap-northeast-2a"),
        );
        assert!(
            found.iter().any(|d| d
                .starts_with("endpoint-pending-acceptance: vpce-0fed is pendingAcceptance")
                && d.contains("--service-id vpce-svc-0123")),
            "{found:?}"
        );
    }

    #[test]
    fn an_endpoint_eni_that_times_out_is_not_blamed_on_a_group_the_configuration_does_not_show() {
        // Issue 11: a timeout alone names no cause; the security groups, when the EC2 API
        // gave them, do (verdict::predict, security-group-ingress).
        let v = vpc(vec![cf(true, &[("10.10.0.100", "ap-northeast-2a")])], None);
        let found = codes(
            &target(CF, &["10.10.0.100"], false, &v),
            &v,
            Some("ap-northeast-2a"),
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn an_endpoint_without_an_eni_in_this_zone() {
        let v = vpc(vec![cf(true, &[("10.10.0.100", "ap-northeast-2a")])], None);
        let found = codes(
            &target(CF, &["10.10.0.100"], true, &v),
            &v,
            Some("ap-northeast-2c"),
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("endpoint-no-eni-in-zone: vpce-cf has no ENI in ap-northeast-2c"),
            "{found:?}"
        );
    }
}
