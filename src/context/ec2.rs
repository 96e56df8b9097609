//! The EC2 API through aws-sdk-ec2: the only file that imports it. `discover` reads the
//! subnet's route table, gateway endpoint routes and their prefix lists, the VPC's endpoints
//! and their ENIs, and the VPC's DNS attributes, in parallel.

use super::vpc::{Endpoint, Eni, GatewayRoute, RouteTable, VpcView};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::{self, AttributeBooleanValue, Filter, VpcAttributeName};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

/// Reads a VPC's routing and endpoints.
pub trait Ec2: Send + Sync {
    /// What the EC2 API says around `subnet_id` in `vpc_id`.
    fn discover(
        &self,
        vpc_id: &str,
        subnet_id: &str,
    ) -> impl Future<Output = Result<VpcView, String>> + Send;
}

/// aws-sdk-ec2 with the default credential chain, rustls on ring, short timeouts.
pub struct SdkEc2 {
    client: Client,
}

impl SdkEc2 {
    /// Loads the configuration for `region` (credentials, `AWS_ENDPOINT_URL_EC2`...), or
    /// `None` when no credentials can be found: there is nothing to ask then.
    pub async fn load(region: &str, timeout: Duration) -> Result<Self, String> {
        use aws_config::timeout::TimeoutConfig;
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
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
            .await;
        if config.credentials_provider().is_none() {
            return Err("no AWS credentials provider".into());
        }
        Ok(Self {
            client: Client::new(&config),
        })
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn describe<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    call: &str,
    e: &aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> String {
    match e.code() {
        Some(code) => format!("{call}: {code}: {}", e.message().unwrap_or_default()),
        None => format!("{call}: {}", DisplayErrorContext(e)),
    }
}

impl Ec2 for SdkEc2 {
    async fn discover(&self, vpc_id: &str, subnet_id: &str) -> Result<VpcView, String> {
        let c = &self.client;
        let (tables, endpoints, enis, support, hostnames) = tokio::join!(
            c.describe_route_tables()
                .filters(filter("vpc-id", vpc_id))
                .send(),
            c.describe_vpc_endpoints()
                .filters(filter("vpc-id", vpc_id))
                .send(),
            c.describe_network_interfaces()
                .filters(filter("vpc-id", vpc_id))
                .send(),
            c.describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(VpcAttributeName::EnableDnsSupport)
                .send(),
            c.describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send(),
        );
        let tables = tables.map_err(|e| describe("DescribeRouteTables", &e))?;
        let endpoints = endpoints.map_err(|e| describe("DescribeVpcEndpoints", &e))?;
        let enis = enis.map_err(|e| describe("DescribeNetworkInterfaces", &e))?;
        let route_table = match subnet_table(tables.route_tables(), subnet_id) {
            Some((table, main)) => Some(self.route_table(table, main).await?),
            None => None,
        };
        Ok(VpcView {
            vpc_id: vpc_id.to_string(),
            subnet_id: subnet_id.to_string(),
            route_table,
            endpoints: endpoints
                .vpc_endpoints()
                .iter()
                .filter_map(|e| endpoint(e, enis.network_interfaces()))
                .collect(),
            dns_support: support.ok().and_then(|o| {
                o.enable_dns_support()
                    .and_then(AttributeBooleanValue::value)
            }),
            dns_hostnames: hostnames.ok().and_then(|o| {
                o.enable_dns_hostnames()
                    .and_then(AttributeBooleanValue::value)
            }),
        })
    }
}

impl SdkEc2 {
    /// The route table's gateway routes with their prefix lists' CIDRs, read all at once.
    async fn route_table(&self, t: &types::RouteTable, main: bool) -> Result<RouteTable, String> {
        let mut gateway_routes = Vec::new();
        let mut default_route = None;
        for r in t.routes() {
            let target = r
                .gateway_id()
                .or(r.nat_gateway_id())
                .or(r.transit_gateway_id());
            if let (Some(pl), Some(vpce)) = (r.destination_prefix_list_id(), target) {
                if vpce.starts_with("vpce-") {
                    gateway_routes.push(GatewayRoute {
                        prefix_list: pl.to_string(),
                        endpoint_id: vpce.to_string(),
                        cidrs: Vec::new(),
                    });
                }
            }
            if r.destination_cidr_block() == Some("0.0.0.0/0") {
                default_route = target.map(str::to_string);
            }
        }
        let handles: Vec<_> = gateway_routes
            .iter()
            .map(|g| {
                tokio::spawn(
                    self.client
                        .get_managed_prefix_list_entries()
                        .prefix_list_id(&g.prefix_list)
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<_>, _>>(),
                )
            })
            .collect();
        for (g, h) in gateway_routes.iter_mut().zip(handles) {
            let entries = h
                .await
                .map_err(|e| format!("GetManagedPrefixListEntries: {e}"))?
                .map_err(|e| describe("GetManagedPrefixListEntries", &e))?;
            g.cidrs = entries
                .iter()
                .filter_map(|e| e.cidr().and_then(|c| c.parse().ok()))
                .collect::<Vec<IpNet>>();
        }
        Ok(RouteTable {
            id: t.route_table_id().unwrap_or_default().to_string(),
            main,
            gateway_routes,
            default_route,
        })
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

/// One endpoint with its ENIs; `None` for endpoints being deleted, which carry no traffic
/// though AWS lists them for a while.
fn endpoint(e: &types::VpcEndpoint, enis: &[types::NetworkInterface]) -> Option<Endpoint> {
    let state = e
        .state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if matches!(state.to_ascii_lowercase().as_str(), "deleted" | "deleting") {
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
            ips: n
                .private_ip_addresses()
                .iter()
                .filter_map(types::NetworkInterfacePrivateIpAddress::private_ip_address)
                .chain(n.private_ip_address())
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            availability_zone: n.availability_zone().map(str::to_string),
            subnet_id: n.subnet_id().map(str::to_string),
        })
        .collect();
    Some(Endpoint {
        service: e.service_name().unwrap_or_default().to_string(),
        kind: e
            .vpc_endpoint_type()
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
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
        id,
    })
}
