//! `probe context`: what probe knows about where it stands, as a table or JSON.

use crate::error::{Error, exit};
use crate::model::{
    EndpointKind, Instance, NetworkAcl, Route, RouteState, RouteTable, RouteTarget, SourceStatus,
    VpcView, region,
};
use crate::output::{self, Form, Output};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

const EXAMPLES: &str = "Examples:
  probe context
  probe context -o json --ec2 required
  probe context --no-imds --ec2 off";

/// Arguments of `probe context`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// AWS region for the EC2 API [default: AWS_REGION, AWS_DEFAULT_REGION, then the
    /// instance metadata's].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Instance metadata and EC2 API options.
    #[command(flatten)]
    pub context: super::Options,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Auto)]
    pub output: Output,
}

/// The document `probe context -o json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextReport {
    /// Always `probe.context/v1`.
    pub schema: String,
    /// What the instance metadata said.
    pub instance: Option<Instance>,
    /// Instance metadata status: `ok`, `off`, or why not.
    pub imds: SourceStatus,
    /// EC2 API status: `ok`, `off`, or why not.
    pub ec2: SourceStatus,
    /// What the EC2 API said about the VPC.
    pub vpc: Option<VpcView>,
}

/// Runs `probe context`.
///
/// # Errors
/// Usage errors; an environment error when `--ec2 required` could not be met.
pub async fn execute(args: &Args) -> Result<u8, Error> {
    let env = |k: &str| std::env::var(k).ok();
    let settings = args.context.settings(&env).map_err(Error::usage)?;
    let metadata = super::metadata(&settings).await;
    let known = metadata.instance.as_ref().and_then(|i| i.region.as_deref());
    let region = region::choose(args.region.as_deref(), &env, known)
        .map_err(Error::usage)?
        .map(|(r, _)| r);
    let discovery = super::discover(&settings, region.as_deref(), metadata.instance.as_ref()).await;
    if settings.ec2 == super::Ec2Mode::Required && discovery.view.is_none() {
        return Err(Error::environment(crate::Environment::Ec2Required(
            discovery.status,
        )));
    }
    let report = ContextReport {
        schema: "probe.context/v1".into(),
        instance: metadata.instance,
        imds: metadata.status,
        ec2: discovery.status,
        vpc: discovery.view,
    };
    let text = match args.output.form(output::stdout_is_terminal()) {
        Form::Json => output::json::render(&report),
        Form::Table => render(&report),
    };
    output::emit(&text)?;
    Ok(exit::PASS)
}

/// The table form.
#[must_use]
pub fn render(r: &ContextReport) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "{k:<18} {v}");
    };
    line(&mut out, "instance metadata", &r.imds.to_string());
    if let Some(i) = &r.instance {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        line(&mut out, "instance", &opt(&i.instance_id));
        line(
            &mut out,
            "region / zone",
            &format!("{} / {}", opt(&i.region), opt(&i.availability_zone)),
        );
        line(
            &mut out,
            "vpc",
            &format!("{} {}", opt(&i.vpc_id), join(&i.vpc_cidrs)),
        );
        line(
            &mut out,
            "subnet",
            &format!(
                "{} {}",
                opt(&i.subnet_id),
                i.subnet_cidr.map(|c| c.to_string()).unwrap_or_default()
            ),
        );
        line(
            &mut out,
            "addresses",
            &format!(
                "private {}, public {}",
                i.local_ipv4.map_or("-".into(), |a| a.to_string()),
                i.public_ipv4.map_or("none".into(), |a| a.to_string())
            ),
        );
        for n in &i.secondary_interfaces {
            line(
                &mut out,
                "  interface",
                &format!(
                    "{} (device {}): {}, {} {}, groups {}",
                    n.mac,
                    n.device_number.map_or("?".into(), |d| d.to_string()),
                    join(&n.local_ipv4s),
                    opt(&n.subnet_id),
                    n.subnet_cidr.map(|c| c.to_string()).unwrap_or_default(),
                    n.security_groups.join(" ")
                ),
            );
        }
    }
    line(&mut out, "EC2 API", &r.ec2.to_string());
    if let Some(v) = &r.vpc {
        render_vpc(&mut out, v);
        // Every interface's groups: the primary's first.
        let groups: Vec<String> = r
            .instance
            .iter()
            .flat_map(|i| {
                i.security_groups.iter().chain(
                    i.secondary_interfaces
                        .iter()
                        .flat_map(|n| &n.security_groups),
                )
            })
            .cloned()
            .collect();
        render_firewalls(&mut out, v, &groups);
    }
    out
}

/// The EC2 API's view: DNS attributes, the route table, the endpoints.
fn render_vpc(out: &mut String, v: &VpcView) {
    let line = |out: &mut String, k: &str, val: &str| {
        let _ = writeln!(out, "{k:<18} {val}");
    };

    let on = |b: Option<bool>| match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    };
    line(
        out,
        "VPC DNS",
        &format!(
            "enableDnsSupport {}, enableDnsHostnames {}",
            on(v.dns_support),
            on(v.dns_hostnames)
        ),
    );
    match &v.route_table {
        Some(t) => {
            line(
                out,
                "route table",
                &format!("{}{}", t.id, if t.main { " (main)" } else { "" }),
            );
            for r in &t.routes {
                line(out, "  route", &route_line(r, t, v));
            }
        }
        None => line(out, "route table", "none found for the subnet"),
    }
    for e in &v.endpoints {
        let ips: Vec<String> = e.ips().iter().map(ToString::to_string).collect();
        line(
            out,
            "endpoint",
            &format!(
                "{} {} {} {}{}{}{}{}",
                e.id,
                e.kind,
                e.service,
                e.state,
                if e.private_dns && e.kind == EndpointKind::Interface {
                    ", private DNS"
                } else {
                    ""
                },
                [
                    ("addresses", &e.ip_address_type),
                    ("DNS records", &e.dns_record_ip_type)
                ]
                .iter()
                .filter_map(|(what, t)| {
                    Some(format!(", {what} {}", String::from((*t).clone()?)))
                })
                .collect::<String>(),
                if ips.is_empty() {
                    String::new()
                } else {
                    format!(", ENIs {}", ips.join(" "))
                },
                if e.security_groups.is_empty() {
                    String::new()
                } else {
                    format!(", groups {}", e.security_groups.join(" "))
                }
            ),
        );
        if let Some(p) = e.policy.as_ref().filter(|p| !p.allows_everything()) {
            for st in &p.statements {
                line(
                    out,
                    "  policy",
                    &format!(
                        "{} {} on {}{}{}",
                        if st.allow { "allow" } else { "deny" },
                        st.actions.join(" "),
                        st.resources.join(" "),
                        if st.any_principal {
                            ""
                        } else {
                            ", to named principals"
                        },
                        if st.conditional {
                            ", with conditions"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
    }
}

/// The instance's security groups, the subnet's network ACL and the endpoints' groups, one
/// rule a line.
fn render_firewalls(out: &mut String, v: &VpcView, instance_groups: &[String]) {
    let line = |out: &mut String, k: &str, val: &str| {
        let _ = writeln!(out, "{k:<18} {val}");
    };
    if !v.firewalls.is_ok() {
        line(out, "firewalls", &v.firewalls.to_string());
        return;
    }
    let mut shown: Vec<&str> = Vec::new();
    let endpoint_groups = v.endpoints.iter().flat_map(|e| e.security_groups.iter());
    for id in instance_groups.iter().chain(endpoint_groups) {
        if shown.contains(&id.as_str()) {
            continue;
        }
        shown.push(id);
        let Some(g) = v.security_groups.iter().find(|g| &g.id == id) else {
            line(
                out,
                "security group",
                &format!("{id} (not in the VPC's list)"),
            );
            continue;
        };
        let users: Vec<&str> = v
            .endpoints
            .iter()
            .filter(|e| e.security_groups.contains(id))
            .map(|e| e.id.as_str())
            .chain(instance_groups.contains(id).then_some("this instance"))
            .collect();
        line(
            out,
            "security group",
            &format!("{} ({}), on {}", g.id, g.name, users.join(", ")),
        );
        for (dir, rules, peer) in [("in", &g.ingress, "from"), ("out", &g.egress, "to")] {
            if rules.is_empty() {
                line(out, "", &format!("  {dir}: nothing"));
            }
            for r in rules {
                let mut peers = r.peers();
                // A customer-managed list's entries, which the rule admits.
                for pl in &r.prefix_lists {
                    if let Some(l) = v.prefix_list(pl) {
                        peers = peers.replace(pl, &format!("{pl} ({})", join(&l.cidrs)));
                    }
                }
                line(out, "", &format!("  {dir}: {} {peer} {peers}", r.traffic()));
            }
        }
    }
    match NetworkAcl::of_subnet(&v.network_acls, &v.subnet_id) {
        Some(acl) => {
            line(
                out,
                "network ACL",
                &format!(
                    "{}{}, on {}",
                    acl.id,
                    if acl.default { " (default)" } else { "" },
                    v.subnet_id
                ),
            );
            for e in &acl.entries {
                let rule = if e.rule == 32767 {
                    "*".to_string()
                } else {
                    e.rule.to_string()
                };
                let ports = e.ports.map(|p| format!(" {p}")).unwrap_or_default();
                let cidr = e.cidr.map(|c| c.to_string()).unwrap_or_default();
                line(
                    out,
                    "",
                    &format!(
                        "  {} {rule} {} {}{ports} {} {cidr}",
                        if e.egress { "out" } else { "in" },
                        if e.allow { "allow" } else { "deny" },
                        e.protocol,
                        if e.egress { "to" } else { "from" },
                    ),
                );
            }
        }
        None => line(out, "network ACL", "none found for the subnet"),
    }
}

/// One route: its destination, target, what the target is, and what lies beyond it (a
/// gateway endpoint's prefix list, a NAT gateway's state and public address, a peering's
/// status and the peer's blocks).
fn route_line(r: &Route, t: &RouteTable, v: &VpcView) -> String {
    let dest = r.destination();
    let beyond = match &r.target {
        RouteTarget::VpcEndpoint(id) => t
            .gateway_routes
            .iter()
            .find(|g| &g.endpoint_id == id)
            .map(|g| format!(" ({})", join(&g.cidrs))),
        RouteTarget::NatGateway(id) => v.nat_gateway(id).map(|n| {
            format!(
                " ({}{}{}, public {})",
                if n.public { "" } else { "private, " },
                n.state,
                n.subnet_id
                    .as_ref()
                    .map(|s| format!(" in {s}"))
                    .unwrap_or_default(),
                if n.public_ips.is_empty() {
                    "none".into()
                } else {
                    join(&n.public_ips)
                }
            )
        }),
        RouteTarget::Peering(id) => v.peering(id).map(|p| {
            format!(
                " ({}, to {} {})",
                p.status,
                p.peer_vpc_id.as_deref().unwrap_or("?"),
                join(&p.peer_cidrs)
            )
        }),
        _ => None,
    };
    let what = if r.target == RouteTarget::Local {
        String::new()
    } else {
        format!(" {}", r.target.what())
    };
    let blackhole = if r.state == RouteState::Blackhole {
        ", blackhole"
    } else {
        ""
    };
    format!(
        "{dest} -> {}{what}{}{blackhole}",
        r.target,
        beyond.unwrap_or_default()
    )
}

fn join(v: &[impl ToString]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
