//! The EC2 API through aws-sdk-ec2: the only file that imports it. `discover` reads the
//! subnet's route table, gateway endpoint routes and their prefix lists, the VPC's endpoints
//! and their ENIs, and the VPC's DNS attributes, in parallel. The collector also lists
//! instances (by id or by CloudFormation stack) and reads their serial console.

use crate::model::{
    AclEntry, Endpoint, EndpointKind, EndpointState, Eni, GatewayRoute, Interface, IpType,
    NatGateway, NetworkAcl, Peering, Policy, Ports, PrefixList, Protocol, Route, RouteState,
    RouteTable, RouteTarget, SecurityGroup, SgRule, SourceStatus, VpcView,
};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::{self, AttributeBooleanValue, Filter, VpcAttributeName};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// What went wrong with the EC2 API: the call, and what AWS or the connection said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    /// No credentials provider could be set up.
    #[error("no AWS credentials provider")]
    NoProvider,
    /// The default chain found no credentials.
    #[error("no AWS credentials (environment, profile, SSO or instance role)")]
    NoCredentials,
    /// The chain did not answer in time.
    #[error("no AWS credentials found in time")]
    CredentialsTimeout,
    /// AWS answered with an error code.
    #[error("{call}: {code}: {message}")]
    Refused {
        /// The API call, as `DescribeRouteTables`.
        call: &'static str,
        /// AWS's error code, as `UnauthorizedOperation`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// No answer came (network, timeout, TLS...).
    #[error("{call}: {detail}")]
    Failed {
        /// The API call.
        call: &'static str,
        /// What the SDK said.
        detail: String,
    },
    /// An answer came that cannot be read.
    #[error("{call} for {id}: {detail}")]
    Garbage {
        /// The API call.
        call: &'static str,
        /// The resource asked about.
        id: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// An instance as DescribeInstances lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `i-...`.
    pub id: String,
    /// Its Name tag.
    pub name: Option<String>,
    /// `subnet-...`.
    pub subnet_id: Option<String>,
    /// `running`, `stopped`...
    pub state: String,
    /// The security groups of its primary network interface.
    pub security_groups: Vec<String>,
}

/// aws-sdk-ec2 with the default credential chain, rustls on ring, short timeouts.
pub struct SdkEc2 {
    client: Client,
}

impl SdkEc2 {
    /// Loads the configuration for `region` (credentials, `AWS_ENDPOINT_URL_EC2`...).
    ///
    /// # Errors
    /// [`Ec2Error::NoProvider`] when no credentials provider can be set up: there is nothing
    /// to ask then.
    pub async fn load(region: &str, timeout: Duration) -> Result<Self, Ec2Error> {
        let config = sdk_config(region, timeout).await;
        if config.credentials_provider().is_none() {
            return Err(Ec2Error::NoProvider);
        }
        Ok(Self {
            client: Client::new(&config),
        })
    }
}

/// The SDK's configuration: the default chains, rustls on ring, short timeouts.
async fn sdk_config(region: &str, timeout: Duration) -> aws_config::SdkConfig {
    use aws_config::timeout::TimeoutConfig;
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        )
        // One attempt: a retry's backoff rarely fits the run's short budget, and the
        // report should say what the API answered (throttling included), not "no answer".
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}

/// Whether this machine has AWS credentials at all (the default chain: environment, profile,
/// SSO, instance role...), so a collector without them can say so once and stop asking.
///
/// # Errors
/// One line saying why no credentials were found.
pub async fn credentials(limit: Duration) -> Result<(), Ec2Error> {
    use aws_sdk_ec2::config::ProvideCredentials;
    // Credentials do not depend on the region; the SDK wants one all the same.
    let config = sdk_config("us-east-1", limit).await;
    let provider = config.credentials_provider().ok_or(Ec2Error::NoProvider)?;
    match tokio::time::timeout(limit, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!("credentials: {}", DisplayErrorContext(&e));
            Err(Ec2Error::NoCredentials)
        }
        Err(_) => Err(Ec2Error::CredentialsTimeout),
    }
}

/// The groups of the instance's primary interface (device 0), which the metadata gives an
/// agent; the instance's own list when the interfaces are not described.
fn primary_groups(i: &types::Instance) -> Vec<String> {
    let ids = |groups: &[types::GroupIdentifier]| -> Vec<String> {
        groups
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect()
    };
    i.network_interfaces()
        .iter()
        .find(|n| {
            n.attachment()
                .and_then(types::InstanceNetworkInterfaceAttachment::device_index)
                == Some(0)
        })
        .map(|n| ids(n.groups()))
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| ids(i.security_groups()))
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn describe<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    call: &'static str,
    e: &aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> Ec2Error {
    match e.code() {
        Some(code) => Ec2Error::Refused {
            call,
            code: code.to_string(),
            message: e.message().unwrap_or_default().to_string(),
        },
        None => Ec2Error::Failed {
            call,
            detail: DisplayErrorContext(e).to_string(),
        },
    }
}

/// The console output is base64, wrapped over several lines in some answers; what the
/// serial port carried is bytes, not always UTF-8.
fn decode_console(encoded: &str) -> Result<String, base64::DecodeError> {
    use base64::Engine as _;
    let compact: Vec<u8> = encoded
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(compact)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every page of a Describe call's answer, as one list: a large VPC's interfaces, groups or
/// tables do not fit in one page, and a prediction from the first page alone would be wrong.
macro_rules! every {
    ($call:expr) => {
        $call
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
    };
}

impl SdkEc2 {
    /// What the EC2 API says around `subnet_id` in `vpc_id`.
    ///
    /// # Errors
    /// The first call that failed.
    pub async fn discover(&self, vpc_id: &str, subnet_id: &str) -> Result<VpcView, Ec2Error> {
        let c = &self.client;
        let (tables, endpoints, enis, support, hostnames, groups, acls, nats, peerings) = tokio::join!(
            every!(c.describe_route_tables().filters(filter("vpc-id", vpc_id))),
            every!(c.describe_vpc_endpoints().filters(filter("vpc-id", vpc_id))),
            every!(
                c.describe_network_interfaces()
                    .filters(filter("vpc-id", vpc_id))
            ),
            c.describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(VpcAttributeName::EnableDnsSupport)
                .send(),
            c.describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send(),
            every!(
                c.describe_security_groups()
                    .filters(filter("vpc-id", vpc_id))
            ),
            every!(c.describe_network_acls().filters(filter("vpc-id", vpc_id))),
            every!(c.describe_nat_gateways().filter(filter("vpc-id", vpc_id))),
            // Either end may be this VPC: the two filters of one call would both have to hold.
            async {
                tokio::try_join!(
                    every!(
                        c.describe_vpc_peering_connections()
                            .filters(filter("requester-vpc-info.vpc-id", vpc_id))
                    ),
                    every!(
                        c.describe_vpc_peering_connections()
                            .filters(filter("accepter-vpc-info.vpc-id", vpc_id))
                    ),
                )
            },
        );
        // The firewalls are read alongside; an instance profile from before they were asked
        // for lacks the permissions, and the routes and endpoints stand without them.
        let mut firewalls = match (&groups, &acls) {
            (Ok(_), Ok(_)) => SourceStatus::Ok,
            (Err(e), _) => {
                SourceStatus::Unavailable(describe("DescribeSecurityGroups", e).to_string())
            }
            (_, Err(e)) => {
                SourceStatus::Unavailable(describe("DescribeNetworkAcls", e).to_string())
            }
        };
        let security_groups: Vec<SecurityGroup> = groups
            .map(|g| g.iter().map(security_group).collect())
            .unwrap_or_default();
        let network_acls = acls
            .map(|a| a.iter().map(network_acl).collect())
            .unwrap_or_default();
        let tables = tables.map_err(|e| describe("DescribeRouteTables", &e))?;
        let endpoints = endpoints.map_err(|e| describe("DescribeVpcEndpoints", &e))?;
        let enis = enis.map_err(|e| describe("DescribeNetworkInterfaces", &e))?;
        // The prefix lists the rules name are read with the gateway routes' lists: one more
        // round trip for both. Without a list's entries its rules cannot be judged, so no
        // prediction is made then.
        let named = named_prefix_lists(&security_groups);
        let (route_table, prefix_lists) = tokio::join!(
            async {
                match subnet_table(&tables, subnet_id) {
                    Some((table, main)) => self.route_table(table, main).await.map(Some),
                    None => Ok(None),
                }
            },
            self.prefix_lists(&named),
        );
        let route_table = route_table?;
        let prefix_lists = prefix_lists.unwrap_or_else(|e| {
            firewalls = SourceStatus::Unavailable(e.to_string());
            Vec::new()
        });
        let (nat_gateways, peerings) = beyond(nats, peerings, &tables, vpc_id);
        Ok(VpcView {
            vpc_id: vpc_id.to_string(),
            subnet_id: subnet_id.to_string(),
            route_table,
            endpoints: endpoints
                .iter()
                .filter_map(|e| endpoint(e, &enis))
                .collect(),
            dns_support: support.ok().and_then(|o| flag(o.enable_dns_support())),
            dns_hostnames: hostnames.ok().and_then(|o| flag(o.enable_dns_hostnames())),
            security_groups,
            network_acls,
            firewalls,
            nat_gateways,
            peerings,
            interfaces: enis.iter().map(interface).collect(),
            prefix_lists: prefix_lists
                .into_iter()
                .map(|(id, cidrs)| PrefixList { id, cidrs })
                .collect(),
        })
    }

    /// The instances with these ids, or of the CloudFormation stack `stack` (by the
    /// `aws:cloudformation:stack-name` tag), or both.
    ///
    /// # Errors
    /// When DescribeInstances fails.
    pub async fn instances(
        &self,
        ids: &[String],
        stack: Option<&str>,
    ) -> Result<Vec<InstanceInfo>, Ec2Error> {
        let mut call = self.client.describe_instances();
        if !ids.is_empty() {
            call = call.set_instance_ids(Some(ids.to_vec()));
        }
        if let Some(stack) = stack {
            call = call.filters(filter("tag:aws:cloudformation:stack-name", stack));
        }
        let reservations = call
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| describe("DescribeInstances", &e))?;
        Ok(reservations
            .iter()
            .flat_map(types::Reservation::instances)
            .map(|i| InstanceInfo {
                id: i.instance_id().unwrap_or_default().to_string(),
                name: i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value().map(str::to_string)),
                subnet_id: i.subnet_id().map(str::to_string),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                security_groups: primary_groups(i),
            })
            .collect())
    }

    /// The instance's serial console output, decoded; empty when there is none yet.
    ///
    /// # Errors
    /// When GetConsoleOutput fails or answers what is not base64.
    pub async fn console_output(&self, id: &str) -> Result<String, Ec2Error> {
        let out = self
            .client
            .get_console_output()
            .instance_id(id)
            .send()
            .await
            .map_err(|e| describe("GetConsoleOutput", &e))?;
        let Some(encoded) = out.output() else {
            return Ok(String::new());
        };
        decode_console(encoded).map_err(|e| Ec2Error::Garbage {
            call: "GetConsoleOutput",
            id: id.to_string(),
            detail: format!("the output is not base64: {e}"),
        })
    }

    /// The route table's gateway routes with their prefix lists' CIDRs, read all at once.
    async fn route_table(&self, t: &types::RouteTable, main: bool) -> Result<RouteTable, Ec2Error> {
        let mut gateway_routes = Vec::new();
        let mut default_route = None;
        let mut routes = Vec::new();
        for r in t.routes() {
            let target = route_target(r);
            let cidr = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())
                .and_then(|c| c.parse().ok());
            if let (Some(pl), RouteTarget::VpcEndpoint(vpce)) =
                (r.destination_prefix_list_id(), &target)
            {
                gateway_routes.push(GatewayRoute {
                    prefix_list: pl.to_string(),
                    endpoint_id: vpce.clone(),
                    cidrs: Vec::new(),
                });
            }
            if r.destination_cidr_block() == Some("0.0.0.0/0") {
                default_route = Some(target.clone());
            }
            routes.push(Route {
                cidr,
                prefix_list: r.destination_prefix_list_id().map(str::to_string),
                target,
                state: match r.state() {
                    Some(types::RouteState::Blackhole) => RouteState::Blackhole,
                    _ => RouteState::Active,
                },
            });
        }
        let ids: Vec<String> = gateway_routes
            .iter()
            .map(|g| g.prefix_list.clone())
            .collect();
        for (g, (_, cidrs)) in gateway_routes
            .iter_mut()
            .zip(self.prefix_lists(&ids).await?)
        {
            g.cidrs = cidrs;
        }
        Ok(RouteTable {
            id: t.route_table_id().unwrap_or_default().to_string(),
            main,
            gateway_routes,
            default_route,
            routes,
        })
    }

    /// The entries of each prefix list, in the order given, every list asked at once.
    async fn prefix_lists(&self, ids: &[String]) -> Result<Vec<(String, Vec<IpNet>)>, Ec2Error> {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                tokio::spawn(
                    self.client
                        .get_managed_prefix_list_entries()
                        .prefix_list_id(id)
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<_>, _>>(),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for (id, h) in ids.iter().zip(handles) {
            let entries = h
                .await
                .map_err(|e| Ec2Error::Failed {
                    call: "GetManagedPrefixListEntries",
                    detail: e.to_string(),
                })?
                .map_err(|e| describe("GetManagedPrefixListEntries", &e))?;
            let cidrs = entries
                .iter()
                .filter_map(|e| e.cidr().and_then(|c| c.parse().ok()))
                .collect();
            out.push((id.clone(), cidrs));
        }
        Ok(out)
    }
}

type Answer<T, E> =
    Result<Vec<T>, aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>>;
type NatAnswer = Answer<
    types::NatGateway,
    aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysError,
>;
type PeeringAnswer = Result<
    (Vec<types::VpcPeeringConnection>, Vec<types::VpcPeeringConnection>),
    aws_sdk_ec2::error::SdkError<
        aws_sdk_ec2::operation::describe_vpc_peering_connections::DescribeVpcPeeringConnectionsError,
        aws_sdk_ec2::config::http::HttpResponse,
    >,
>;

/// The NAT gateways and peerings, which say what a route's target does beyond it. The
/// routes stand without them (an instance profile from before they were asked for).
fn beyond(
    nats: NatAnswer,
    peerings: PeeringAnswer,
    tables: &[types::RouteTable],
    vpc_id: &str,
) -> (Vec<NatGateway>, Vec<Peering>) {
    let nats = nats.map_or_else(
        |e| {
            tracing::debug!("{}", describe("DescribeNatGateways", &e));
            Vec::new()
        },
        |o| o.iter().map(|n| nat_gateway(n, tables)).collect(),
    );
    let peerings = peerings.map_or_else(
        |e| {
            tracing::debug!("{}", describe("DescribeVpcPeeringConnections", &e));
            Vec::new()
        },
        |(requested, accepted)| {
            let ours = |p: &&types::VpcPeeringConnection| {
                [p.requester_vpc_info(), p.accepter_vpc_info()]
                    .into_iter()
                    .any(|v| v.and_then(|v| v.vpc_id()) == Some(vpc_id))
            };
            let mut all: Vec<Peering> = requested
                .iter()
                .chain(&accepted)
                .filter(ours)
                .map(|p| peering(p, vpc_id))
                .collect();
            // An API that ignores the filters lists each peering in both answers.
            all.sort_by(|a, b| a.id.cmp(&b.id));
            all.dedup_by(|a, b| a.id == b.id);
            all
        },
    );
    (nats, peerings)
}

fn flag(v: Option<&AttributeBooleanValue>) -> Option<bool> {
    v.and_then(AttributeBooleanValue::value)
}

/// The prefix lists the groups' rules name, each once.
fn named_prefix_lists(groups: &[SecurityGroup]) -> Vec<String> {
    let named: BTreeSet<&String> = groups
        .iter()
        .flat_map(|g| g.ingress.iter().chain(&g.egress))
        .flat_map(|r| &r.prefix_lists)
        .collect();
    named.into_iter().cloned().collect()
}

/// Where a route goes: the one target field the API filled in (an instance route carries its
/// network interface too; the instance is what the route names).
fn route_target(r: &types::Route) -> RouteTarget {
    r.gateway_id()
        .or(r.egress_only_internet_gateway_id())
        .or(r.nat_gateway_id())
        .or(r.transit_gateway_id())
        .or(r.vpc_peering_connection_id())
        .or(r.carrier_gateway_id())
        .or(r.local_gateway_id())
        .or(r.core_network_arn())
        .or(r.instance_id())
        .or(r.network_interface_id())
        .unwrap_or_default()
        .into()
}

/// A NAT gateway, with its subnet's default route: a public NAT gateway reaches the internet
/// only through its subnet's internet gateway.
fn nat_gateway(n: &types::NatGateway, tables: &[types::RouteTable]) -> NatGateway {
    let subnet_id = n.subnet_id().map(str::to_string);
    let subnet_default_route = subnet_id
        .as_deref()
        .and_then(|s| subnet_table(tables, s))
        .and_then(|(t, _)| {
            t.routes()
                .iter()
                .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        })
        .map(route_target);
    NatGateway {
        id: n.nat_gateway_id().unwrap_or_default().to_string(),
        subnet_id,
        state: n.state().map_or("", |s| s.as_str()).to_string(),
        public: n.connectivity_type() != Some(&types::ConnectivityType::Private),
        public_ips: n
            .nat_gateway_addresses()
            .iter()
            .filter_map(|a| a.public_ip()?.parse().ok())
            .collect(),
        subnet_default_route,
    }
}

/// A peering connection seen from `vpc_id`: the other end's VPC and blocks.
fn peering(p: &types::VpcPeeringConnection, vpc_id: &str) -> Peering {
    let requester = p.requester_vpc_info();
    let peer = if requester.and_then(|v| v.vpc_id()) == Some(vpc_id) {
        p.accepter_vpc_info()
    } else {
        requester
    };
    let peer_cidrs = peer.map_or_else(Vec::new, |v| {
        let mut cidrs: Vec<IpNet> = v
            .cidr_block_set()
            .iter()
            .filter_map(|c| c.cidr_block()?.parse().ok())
            .chain(
                v.ipv6_cidr_block_set()
                    .iter()
                    .filter_map(|c| c.ipv6_cidr_block()?.parse().ok()),
            )
            .collect();
        if cidrs.is_empty() {
            cidrs.extend(v.cidr_block().and_then(|c| c.parse::<IpNet>().ok()));
        }
        cidrs
    });
    Peering {
        id: p
            .vpc_peering_connection_id()
            .unwrap_or_default()
            .to_string(),
        status: p
            .status()
            .and_then(|s| s.code())
            .map_or("", |c| c.as_str())
            .to_string(),
        peer_vpc_id: peer.and_then(|v| v.vpc_id()).map(str::to_string),
        peer_cidrs,
    }
}

/// The subnet's explicitly associated table, else the VPC's main table (`true`).
fn subnet_table<'a>(
    tables: &'a [types::RouteTable],
    subnet_id: &str,
) -> Option<(&'a types::RouteTable, bool)> {
    let associated = |pick: &dyn Fn(&types::RouteTableAssociation) -> bool| {
        tables.iter().find(|t| t.associations().iter().any(pick))
    };
    associated(&|a| a.subnet_id() == Some(subnet_id))
        .map(|t| (t, false))
        .or_else(|| associated(&|a| a.main() == Some(true)).map(|t| (t, true)))
}

fn security_group(g: &types::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        id: g.group_id().unwrap_or_default().to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        ingress: g.ip_permissions().iter().map(sg_rule).collect(),
        egress: g.ip_permissions_egress().iter().map(sg_rule).collect(),
    }
}

fn sg_rule(p: &types::IpPermission) -> SgRule {
    let protocol = Protocol::from(p.ip_protocol().unwrap_or("-1"));
    SgRule {
        ports: ports(&protocol, p.from_port(), p.to_port()),
        protocol,
        cidrs: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip()?.parse().ok())
            .chain(
                p.ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6()?.parse().ok()),
            )
            .collect(),
        groups: p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        prefix_lists: p
            .prefix_list_ids()
            .iter()
            .filter_map(|l| l.prefix_list_id().map(str::to_string))
            .collect(),
    }
}

/// TCP and UDP rules have ports; `-1`, absent, or another protocol's numbers mean every port.
fn ports(protocol: &Protocol, from: Option<i32>, to: Option<i32>) -> Option<Ports> {
    if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
        return None;
    }
    let from = u16::try_from(from?).ok()?;
    let to = u16::try_from(to?).ok()?;
    ((from, to) != (0, u16::MAX) && from <= to).then_some(Ports { from, to })
}

fn network_acl(a: &types::NetworkAcl) -> NetworkAcl {
    let mut entries: Vec<AclEntry> = a
        .entries()
        .iter()
        .map(|e| {
            let protocol = Protocol::from(e.protocol().unwrap_or("-1"));
            let range = e.port_range();
            AclEntry {
                rule: e.rule_number().unwrap_or(i32::MAX),
                egress: e.egress().unwrap_or(false),
                ports: ports(
                    &protocol,
                    range.and_then(types::PortRange::from),
                    range.and_then(types::PortRange::to),
                ),
                protocol,
                cidr: e
                    .cidr_block()
                    .or(e.ipv6_cidr_block())
                    .and_then(|c| c.parse().ok()),
                allow: e.rule_action().is_some_and(|r| r.as_str() == "allow"),
            }
        })
        .collect();
    entries.sort_by_key(|e| (e.egress, e.rule));
    NetworkAcl {
        id: a.network_acl_id().unwrap_or_default().to_string(),
        default: a.is_default().unwrap_or(false),
        subnets: a
            .associations()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .collect(),
        entries,
    }
}

/// A network interface's addresses, IPv4 and IPv6.
fn interface_ips(n: &types::NetworkInterface) -> Vec<IpAddr> {
    n.private_ip_addresses()
        .iter()
        .filter_map(types::NetworkInterfacePrivateIpAddress::private_ip_address)
        .chain(n.private_ip_address())
        .chain(
            n.ipv6_addresses()
                .iter()
                .filter_map(types::NetworkInterfaceIpv6Address::ipv6_address),
        )
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn interface(n: &types::NetworkInterface) -> Interface {
    Interface {
        id: n.network_interface_id().unwrap_or_default().to_string(),
        ips: interface_ips(n),
        subnet_id: n.subnet_id().map(str::to_string),
        groups: n
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
    }
}

/// One endpoint with its ENIs; `None` for endpoints being deleted, which carry no traffic
/// though AWS lists them for a while.
fn endpoint(e: &types::VpcEndpoint, enis: &[types::NetworkInterface]) -> Option<Endpoint> {
    let state = EndpointState::from(e.state().map_or("", |s| s.as_str()));
    if matches!(state, EndpointState::Deleted | EndpointState::Deleting) {
        return None;
    }
    let id = e.vpc_endpoint_id().unwrap_or_default().to_string();
    let listed: BTreeSet<&str> = e
        .network_interface_ids()
        .iter()
        .map(String::as_str)
        .collect();
    // An endpoint ENI is one the endpoint lists, or one whose description names the
    // endpoint (how AWS describes requester-managed endpoint interfaces).
    let enis = enis
        .iter()
        .filter(|n| {
            n.network_interface_id().is_some_and(|i| listed.contains(i))
                || n.description().is_some_and(|d| d.contains(&id))
        })
        .map(|n| Eni {
            id: n.network_interface_id().unwrap_or_default().to_string(),
            ips: interface_ips(n),
            availability_zone: n.availability_zone().map(str::to_string),
            subnet_id: n.subnet_id().map(str::to_string),
        })
        .collect();
    Some(Endpoint {
        service: e.service_name().unwrap_or_default().to_string(),
        kind: e
            .vpc_endpoint_type()
            .map_or(EndpointKind::Other(String::new()), |k| k.as_str().into()),
        state,
        private_dns: e.private_dns_enabled().unwrap_or(false),
        dns_names: e
            .dns_entries()
            .iter()
            .filter_map(|d| d.dns_name().map(str::to_string))
            .collect(),
        security_groups: e
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        enis,
        ip_address_type: e
            .ip_address_type()
            .map(|t| IpType::from(t.as_str().to_string())),
        dns_record_ip_type: e
            .dns_options()
            .and_then(types::DnsOptions::dns_record_ip_type)
            .map(|t| IpType::from(t.as_str().to_string())),
        policy: e.policy_document().and_then(|d| {
            Policy::parse(d)
                .inspect_err(|why| tracing::debug!("{id}'s policy: {why}"))
                .ok()
        }),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::decode_console;

    #[test]
    fn console_output_is_decoded_across_wrapped_lines() {
        assert_eq!(
            decode_console("cHJvYmUudmVy\nZGljdC92\r\nMQ==").unwrap(),
            "probe.verdict/v1"
        );
        assert!(decode_console("not base64!").is_err());
    }
}
