//! Pure functions: what an address is, and what a target's results mean.

use crate::context::vpc::VpcView;
use crate::report::{AddressReport, DnsReport, EndpointRef, Instance, TargetReport, Verdict};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};
use std::net::IpAddr;
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
    /// A private address outside the VPC.
    Private,
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
            Self::Private => "private",
            Self::Public => "public",
            Self::Special => "special",
            Self::Unreachable => "unreachable",
            Self::DnsFailed => "dns-failed",
        }
    }

    const ALL: [Self; 8] = [
        Self::InterfaceEndpoint,
        Self::GatewayEndpoint,
        Self::Vpc,
        Self::Private,
        Self::Public,
        Self::Special,
        Self::Unreachable,
        Self::DnsFailed,
    ];

    fn of(address: &AddressReport) -> Self {
        if address
            .endpoint
            .as_ref()
            .is_some_and(|e| e.kind == "gateway")
        {
            return Self::GatewayEndpoint;
        }
        match address.class {
            AddressClass::EndpointEni => Self::InterfaceEndpoint,
            AddressClass::Vpc => Self::Vpc,
            AddressClass::Private => Self::Private,
            AddressClass::Public => Self::Public,
            AddressClass::Special => Self::Special,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator expects of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Reachable by any path.
    Reachable,
    /// Not reachable, whether DNS failed or not.
    Unreachable,
    /// Exactly this path.
    Path(Path),
}

impl FromStr for Expect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reachable" => Ok(Self::Reachable),
            "unreachable" => Ok(Self::Unreachable),
            _ => Path::ALL
                .into_iter()
                .find(|p| p.as_str() == s)
                .map(Self::Path)
                .ok_or_else(|| {
                    let all: Vec<_> = Path::ALL.iter().map(|p| p.as_str()).collect();
                    format!(
                        "unknown expectation {s:?}; use reachable, {}",
                        all.join(", ")
                    )
                }),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reachable => f.write_str("reachable"),
            Self::Unreachable => f.write_str("unreachable"),
            Self::Path(p) => p.fmt(f),
        }
    }
}

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

fn is_private(ip: IpAddr) -> bool {
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
    let [.., service, region] = labels.as_slice() else {
        return None;
    };
    (is_region(region) && !matches!(*service, "elb" | "compute" | "vpce"))
        .then(|| format!("com.amazonaws.{region}.{service}"))
}

/// Marks addresses the EC2 API explains: interface endpoint ENIs, and public addresses this
/// subnet's route table sends to a gateway endpoint.
pub fn enrich(addresses: &mut [AddressReport], vpc: &VpcView) {
    for a in addresses {
        if let Some(e) = vpc.endpoint_of(a.ip) {
            a.class = AddressClass::EndpointEni;
            a.endpoint = Some(EndpointRef {
                id: e.id.clone(),
                service: e.service.clone(),
                kind: "interface".into(),
                prefix_list: None,
                route_table: None,
            });
        } else if a.class == AddressClass::Public {
            if let Some(g) = vpc.gateway_route_for(a.ip) {
                a.endpoint = Some(EndpointRef {
                    id: g.endpoint_id.clone(),
                    service: vpc
                        .endpoint(&g.endpoint_id)
                        .map(|e| e.service.clone())
                        .unwrap_or_default(),
                    kind: "gateway".into(),
                    prefix_list: Some(g.prefix_list.clone()),
                    route_table: vpc.route_table.as_ref().map(|t| t.id.clone()),
                });
            }
        }
    }
}

fn is_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// Decides a target's verdict: labels its addresses first when the EC2 API described the
/// VPC, and adds what looks wrong there. The agent judges after its checks; the collector
/// judges again the reports whose agent could not reach the EC2 API.
pub fn judge(
    t: &mut TargetReport,
    expect: Option<Expect>,
    vpc: Option<&VpcView>,
    instance: Option<&Instance>,
) {
    if let Some(v) = vpc {
        enrich(&mut t.addresses, v);
    }
    let label = t.scheme.to_string().to_ascii_uppercase();
    t.verdict = verdict(&t.dns, &t.addresses, expect, &label, vpc);
    if let Some(v) = vpc {
        t.verdict.diagnoses = crate::diagnose::diagnose(t, v, instance);
    }
}

/// Decides a target's verdict from its DNS answer and per-address results.
#[must_use]
pub fn verdict(
    dns: &DnsReport,
    addresses: &[AddressReport],
    expect: Option<Expect>,
    scheme_label: &str,
    vpc: Option<&VpcView>,
) -> Verdict {
    let reached: Vec<&AddressReport> = addresses.iter().filter(|a| completed(a)).collect();
    let path = if !dns.ok || addresses.is_empty() {
        Path::DnsFailed
    } else {
        reached
            .iter()
            .map(|a| Path::of(a))
            .min()
            .unwrap_or(Path::Unreachable)
    };
    let endpoint_id = reached
        .iter()
        .filter(|a| Path::of(a) == path)
        .find_map(|a| a.endpoint.as_ref().map(|e| e.id.clone()));
    let reachable = !reached.is_empty();
    let mut reason = describe(dns, addresses, &reached, path, scheme_label, vpc);
    let pass = match expect {
        None | Some(Expect::Reachable) => reachable,
        Some(Expect::Unreachable) => !reachable,
        Some(Expect::Path(p)) => p == path,
    };
    if let Some(e) = expect.filter(|_| !pass) {
        let mut why = format!("expected {e}, got {path}");
        if e == Expect::Path(Path::GatewayEndpoint) && path == Path::Public && vpc.is_none() {
            why.push_str(
                " (a gateway endpoint keeps public addresses; telling it from the internet needs the route table from the EC2 API, which was not available)",
            );
        }
        reason = format!("{why}: {reason}");
    }
    Verdict {
        reachable,
        path,
        expected: expect.map(|e| e.to_string()),
        pass,
        reason,
        endpoint_id,
        diagnoses: Vec::new(),
    }
}

fn completed(a: &AddressReport) -> bool {
    crate::report::completed(&a.tcp, &a.tls, &a.http)
}

fn describe(
    dns: &DnsReport,
    addresses: &[AddressReport],
    reached: &[&AddressReport],
    path: Path,
    scheme_label: &str,
    vpc: Option<&VpcView>,
) -> String {
    if path == Path::DnsFailed {
        return match &dns.error {
            Some(e) => format!("DNS failed ({}): {}", e.kind, e.message),
            None => "DNS gave no address".into(),
        };
    }
    if reached.is_empty() {
        let failures: Vec<String> = addresses
            .iter()
            .map(|a| match first_failure(a) {
                Some((phase, kind)) => format!("{} ({}) {phase} {kind}", a.ip, a.class),
                None => format!("{} ({}) incomplete", a.ip, a.class),
            })
            .collect();
        return format!(
            "no address completed {scheme_label}: {}",
            failures.join("; ")
        );
    }
    let on_path: Vec<&&AddressReport> = reached.iter().filter(|a| Path::of(a) == path).collect();
    let ips: Vec<String> = on_path.iter().map(|a| a.ip.to_string()).collect();
    let what = match path {
        Path::InterfaceEndpoint => "interface endpoint ENI",
        Path::GatewayEndpoint | Path::Public => "public address",
        Path::Vpc => "VPC address",
        Path::Private => "private address outside the VPC",
        _ => "address",
    };
    let answered = match reached.iter().find_map(|a| a.http.code) {
        Some(code) => format!("answered HTTP {code}"),
        None => format!("completed {scheme_label}"),
    };
    let mut s = format!(
        "{} of {} addresses {answered}; {what} {}",
        reached.len(),
        addresses.len(),
        ips.join(", ")
    );
    let endpoint = on_path.iter().find_map(|a| a.endpoint.as_ref());
    match (path, endpoint, vpc) {
        (Path::InterfaceEndpoint, Some(e), _) => {
            let _ = write!(s, " of {} ({})", e.id, e.service);
        }
        (Path::GatewayEndpoint, Some(e), _) => {
            let _ = write!(s, " through gateway endpoint {} ({})", e.id, e.service);
            if let (Some(pl), Some(rt)) = (&e.prefix_list, &e.route_table) {
                let _ = write!(s, ": route table {rt} sends prefix list {pl} there");
            }
        }
        (Path::Public, _, None) => s.push_str("; route unknown without EC2 access"),
        (Path::Public, _, Some(v)) => match v
            .route_table
            .as_ref()
            .and_then(|t| t.default_route.as_ref().map(|d| (t, d)))
        {
            Some((t, d)) => {
                let _ = write!(s, " via {d} (route table {})", t.id);
            }
            None => s.push_str(", in no gateway endpoint prefix list"),
        },
        _ => {}
    }
    s
}

fn first_failure(a: &AddressReport) -> Option<(String, String)> {
    [&a.tcp.error, &a.tls.error, &a.http.error]
        .into_iter()
        .flatten()
        .next()
        .map(|e| {
            (
                serde_json::to_value(e.phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                e.kind.to_string(),
            )
        })
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

    #[test]
    fn expectations_parse() {
        assert_eq!("reachable".parse::<Expect>(), Ok(Expect::Reachable));
        assert_eq!(
            "gateway-endpoint".parse::<Expect>(),
            Ok(Expect::Path(Path::GatewayEndpoint))
        );
        let e = "gateway".parse::<Expect>().unwrap_err();
        assert!(e.contains("gateway-endpoint"), "{e}");
    }
}
