//! The verdict of one target: reachable or not, by which path, against the expectation, in
//! plain words.

use crate::model::{
    AddressClass, AddressReport, DnsReport, Expect, Family, FamilyVerdict, Path, Verdict, VpcView,
};
use std::fmt::Write as _;

/// Decides a target's verdict from its DNS answer and per-address results.
#[must_use]
pub fn verdict(
    dns: &DnsReport,
    addresses: &[AddressReport],
    expect: Option<Expect>,
    scheme_label: &str,
    vpc: Option<&VpcView>,
) -> Verdict {
    let reached: Vec<&AddressReport> = addresses.iter().filter(|a| a.completed()).collect();
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
    let families = by_family(addresses);
    if !families.is_empty() {
        let each: Vec<String> = families
            .iter()
            .map(|f| format!("{} {}", f.family, f.path))
            .collect();
        let _ = write!(reason, "; by family: {}", each.join(", "));
    }
    let pass = match expect {
        // Auto is decided once the prediction is known (`super::judge`).
        None | Some(Expect::Reachable | Expect::Auto) => reachable,
        Some(Expect::Unreachable) => !reachable,
        Some(Expect::Path(p)) => p == path,
    };
    if let Some(e) = expect.filter(|e| !pass && *e != Expect::Auto) {
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
        expected: expect,
        pass,
        reason,
        endpoint_id,
        diagnoses: Vec::new(),
        predicted: None,
        agrees: None,
        families,
    }
}

/// Each family's verdict, when the name answered in both and they part.
fn by_family(addresses: &[AddressReport]) -> Vec<FamilyVerdict> {
    let of = |family: Family| {
        let mine: Vec<&AddressReport> = addresses
            .iter()
            .filter(|a| Family::of(a.ip) == family)
            .collect();
        (!mine.is_empty()).then(|| {
            let path = mine
                .iter()
                .filter(|a| a.completed())
                .map(|a| Path::of(a))
                .min()
                .unwrap_or(Path::Unreachable);
            FamilyVerdict {
                family,
                reachable: path != Path::Unreachable,
                path,
            }
        })
    };
    match (of(Family::Ipv4), of(Family::Ipv6)) {
        (Some(v4), Some(v6)) if v4.path != v6.path => vec![v4, v6],
        _ => Vec::new(),
    }
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
            .map(|a| match a.first_failure() {
                Some(e) => format!("{} ({}) {} {}", a.ip, a.class, e.phase, e.kind),
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
        Path::GatewayEndpoint | Path::Public | Path::NatGateway => "public address",
        Path::Vpc => "VPC address",
        // An appliance's route (a NAT instance) carries public addresses too.
        Path::Private if on_path.iter().all(|a| a.class == AddressClass::Private) => {
            "private address outside the VPC"
        }
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
            if let Some(over) = on_path.iter().find_map(|a| a.route.as_ref()?.over.as_ref()) {
                let _ = write!(s, ", over {over}: the prefix list's entry is more specific");
            }
        }
        (Path::Public, _, None) => s.push_str("; route unknown without EC2 access"),
        _ => match on_path.iter().find_map(|a| a.route.as_ref()) {
            Some(r) => {
                let _ = write!(s, " via {} ({}", r.target, r.target.what());
                if let Some(ip) = r.public_ip {
                    let _ = write!(s, ", public {ip}");
                }
                let _ = write!(s, "; route {} of {})", r.destination, r.route_table);
            }
            None if path == Path::Public && vpc.is_some() => {
                s.push_str(", in no route of the subnet's table");
            }
            None => {}
        },
    }
    s
}
