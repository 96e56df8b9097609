//! What the configuration says a name resolves to, before any query: an interface endpoint's
//! own names answer with its ENIs, and so does its service's name under Private DNS, when the
//! endpoint is available and the VPC's enableDnsSupport and enableDnsHostnames are on; other
//! AWS service names answer outside the VPC; a vpce name no endpoint of the VPC carries does
//! not resolve. Of any other name the configuration says nothing.

use super::aws_service;
use crate::model::{EndpointState, Fact, FactKind, VpcView};
use std::net::IpAddr;

/// The answer the configuration expects, and the fact that says so.
pub(super) struct Expected {
    pub fact: Fact,
    pub answer: Answer,
}

/// What the name should resolve to.
pub(super) enum Answer {
    /// An interface endpoint's ENI addresses.
    Enis(Vec<IpAddr>),
    /// Addresses outside the VPC: the service's public ones.
    Outside,
    /// Nothing: the name does not resolve.
    Nothing,
}

/// The answer the configuration expects for `host`, if it says anything of it.
pub(super) fn expected(host: &str, vpc: &VpcView) -> Option<Expected> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.ends_with(".vpce.amazonaws.com") || host.ends_with(".vpce.amazonaws.com.cn") {
        return Some(endpoint_name(&host, vpc));
    }
    let service = aws_service(&host)?;
    Some(service_name(&host, &service, vpc))
}

/// An endpoint's own name: its ENIs, whatever Private DNS says.
fn endpoint_name(host: &str, vpc: &VpcView) -> Expected {
    let owner = vpc.endpoints.iter().find(|e| e.has_name(host));
    match owner {
        None => expect(
            &vpc.vpc_id,
            false,
            format!("{}: no endpoint has the name {host}", vpc.vpc_id),
            Answer::Nothing,
        ),
        Some(e) if vpc.dns_support == Some(false) => expect(
            &vpc.vpc_id,
            false,
            format!(
                "{}: enableDnsSupport is off, so {}'s name does not resolve",
                vpc.vpc_id, e.id
            ),
            Answer::Nothing,
        ),
        Some(e) => {
            let ips = e.dns_ips();
            expect(
                &e.id,
                true,
                format!("{}'s own name: its ENIs {}", e.id, list(&ips)),
                Answer::Enis(ips),
            )
        }
    }
}

/// An AWS service's own name: the ENIs of an interface endpoint with Private DNS, else
/// outside the VPC.
fn service_name(host: &str, service: &str, vpc: &VpcView) -> Expected {
    let interfaces = vpc.interface_endpoints_for(service);
    let Some(e) = interfaces
        .iter()
        .find(|e| e.private_dns && e.state == EndpointState::Available)
        .or_else(|| interfaces.first())
    else {
        return outside(
            &vpc.vpc_id,
            format!(
                "{}: no interface endpoint for {service}, so {host} resolves outside the VPC",
                vpc.vpc_id
            ),
        );
    };
    if !e.private_dns {
        return outside(
            &e.id,
            format!(
                "{} has Private DNS off, so {host} resolves outside the VPC",
                e.id
            ),
        );
    }
    if e.state != EndpointState::Available {
        return outside(
            &e.id,
            format!(
                "{} is {}, so its Private DNS does not answer yet: {host} resolves outside the VPC",
                e.id, e.state
            ),
        );
    }
    let off = [
        ("enableDnsSupport", vpc.dns_support),
        ("enableDnsHostnames", vpc.dns_hostnames),
    ]
    .into_iter()
    .find(|(_, on)| *on == Some(false));
    if let Some((attribute, _)) = off {
        return outside(
            &vpc.vpc_id,
            format!(
                "{}: {attribute} is off, so {}'s Private DNS does not answer: {host} resolves outside the VPC",
                vpc.vpc_id, e.id
            ),
        );
    }
    let ips = e.dns_ips();
    expect(
        &e.id,
        true,
        format!(
            "{} has Private DNS on: {host} resolves to its ENIs {}",
            e.id,
            list(&ips)
        ),
        Answer::Enis(ips),
    )
}

fn outside(id: &str, says: String) -> Expected {
    expect(id, true, says, Answer::Outside)
}

fn expect(id: &str, allows: bool, says: String, answer: Answer) -> Expected {
    Expected {
        fact: Fact {
            kind: FactKind::Dns,
            id: id.to_string(),
            allows,
            says,
            fix: None,
        },
        answer,
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
