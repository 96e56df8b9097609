//! The report: a serde data model with a schema version. The renderers (`crate::output`)
//! read it; the collector reads these very types back.

use super::{
    AddressClass, CheckError, EndpointKind, Expect, Path, Phase, Prediction, RouteTarget, Scheme,
    SourceStatus,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The schema name and version every report carries.
pub const SCHEMA: &str = "probe.report/v1";

/// One run of `probe check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Unique per run; the collector deduplicates on it.
    pub id: String,
    /// Where the check ran.
    pub agent: Agent,
    /// RFC 3339 UTC time the run started.
    pub started_at: String,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Every target's verdict passed.
    pub pass: bool,
    /// One entry per target, in command-line order.
    pub targets: Vec<TargetReport>,
    /// How the collector received it, when not posted by the agent: `console` (read from
    /// the serial console with EC2 GetConsoleOutput; only the verdicts are known then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// How the collector authenticated it; the collector sets it, whatever the agent sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<Authenticated>,
}

/// How a report was proven to come from its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    /// Which proof it carried.
    pub method: AuthMethod,
    /// The instance its key was enrolled for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// That instance's account, from its signed document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The enrolled key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// The proofs a collector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// None: a loopback collector without a token.
    None,
    /// The shared token's HMAC.
    Token,
    /// The key enrolled with the instance's AWS identity.
    AwsIdentity,
    /// Both at once.
    TokenAndAwsIdentity,
}

/// The host the check ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The kernel's host name.
    pub hostname: String,
    /// probe's version.
    pub version: String,
    /// AWS region used to expand service names, when known.
    pub region: Option<String>,
    /// VPC CIDR blocks used to classify addresses.
    pub vpc_cidrs: Vec<IpNet>,
    /// DNS servers queried, in order.
    pub resolvers: Vec<String>,
    /// How ICMP was sent: `datagram`, `raw`, or `unavailable`.
    pub icmp: String,
    /// What the instance metadata said, when it answered.
    #[serde(default)]
    pub instance: Option<Instance>,
    /// Where each source of context stands: `ok`, `off`, or why it is unavailable.
    #[serde(default)]
    pub context: ContextStatus,
}

/// The instance, as IMDSv2 describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Instance {
    /// `i-...`.
    pub instance_id: Option<String>,
    /// Its Name tag: from the metadata when the instance allows tags there, else from the
    /// collector's EC2 API.
    #[serde(default)]
    pub name: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Primary private IPv4 address.
    pub local_ipv4: Option<IpAddr>,
    /// Public IPv4 address; none when the metadata answers 404.
    pub public_ipv4: Option<IpAddr>,
    /// Primary network interface's MAC address.
    pub mac: Option<String>,
    /// `vpc-...`.
    pub vpc_id: Option<String>,
    /// `subnet-...`.
    pub subnet_id: Option<String>,
    /// Every CIDR block of the VPC: IPv4, then IPv6.
    pub vpc_cidrs: Vec<IpNet>,
    /// The subnet's IPv4 CIDR block.
    pub subnet_cidr: Option<IpNet>,
    /// The subnet's IPv6 CIDR block, in a dual-stack subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_ipv6_cidr: Option<IpNet>,
    /// The primary interface's IPv6 addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6s: Vec<IpAddr>,
    /// The security groups of the primary network interface (`sg-...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// The instance's other network interfaces (device 1 and up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_interfaces: Vec<InstanceInterface>,
}

/// A network interface of the instance other than its primary one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInterface {
    /// Its MAC address.
    pub mac: String,
    /// Its device index (1 and up).
    pub device_number: Option<u32>,
    /// Its private IPv4 addresses, the first one primary.
    pub local_ipv4s: Vec<IpAddr>,
    /// `subnet-...`.
    pub subnet_id: Option<String>,
    /// Its subnet's IPv4 CIDR block.
    pub subnet_cidr: Option<IpNet>,
    /// Its security groups.
    pub security_groups: Vec<String>,
}

/// How each source of context fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContextStatus {
    /// Instance metadata: `ok`, `off`, or the reason it is unavailable.
    pub imds: SourceStatus,
    /// EC2 API: `ok`, `off`, or the reason it is unavailable.
    pub ec2: SourceStatus,
    /// Set by a collector that labelled the addresses with its own EC2 API because the
    /// agent had none: `ok`, or why it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_ec2: Option<SourceStatus>,
}

/// Everything checked for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    /// As given on the command line.
    pub target: String,
    /// The host name (or IP literal) checked.
    pub host: String,
    /// The destination port.
    pub port: u16,
    /// Which stages ran.
    pub scheme: Scheme,
    /// The URL requested (or `tcp://host:port`).
    pub url: String,
    /// Name resolution.
    pub dns: DnsReport,
    /// One entry per resolved address.
    pub addresses: Vec<AddressReport>,
    /// What it all means.
    pub verdict: Verdict,
}

/// Result of resolving the target's host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsReport {
    /// At least one address came back.
    pub ok: bool,
    /// A and AAAA answers, in the order the server gave them.
    pub addresses: Vec<IpAddr>,
    /// The CNAME chain, first alias first, without trailing dots.
    pub cname: Vec<String>,
    /// The response code (`NOERROR`, `NXDOMAIN`, ...), when a server answered.
    pub rcode: Option<String>,
    /// The server whose answer is reported.
    pub server: Option<String>,
    /// Every answer record with its TTL.
    pub records: Vec<DnsRecord>,
    /// Time to the answer.
    pub ms: f64,
    /// Why it failed.
    pub error: Option<CheckError>,
}

impl DnsReport {
    /// Nothing resolved yet.
    #[must_use]
    pub fn none() -> Self {
        Self {
            ok: false,
            addresses: Vec::new(),
            cname: Vec::new(),
            rcode: None,
            server: None,
            records: Vec::new(),
            ms: 0.0,
            error: None,
        }
    }
}

/// One DNS answer record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Owner name, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Seconds the answer may be cached.
    pub ttl: u32,
    /// The record's data as text.
    pub data: String,
}

/// The state of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It completed.
    Ok,
    /// It ran and failed; `error` says how.
    Fail,
    /// It does not apply, or could not run here (`error` or `hint` says why).
    Skipped,
    /// An earlier stage failed, so it did not run.
    #[default]
    NotRun,
}

/// The checks run against one address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressReport {
    /// The address.
    pub ip: IpAddr,
    /// What the address is.
    pub class: AddressClass,
    /// ICMP echo.
    pub icmp: IcmpReport,
    /// TCP connect.
    pub tcp: StageReport,
    /// TLS handshake.
    pub tls: TlsReport,
    /// HTTP request.
    pub http: HttpReport,
    /// The VPC endpoint this address belongs to or is routed through, when the EC2 API told.
    #[serde(default)]
    pub endpoint: Option<EndpointRef>,
    /// The route an address outside the VPC takes, when the EC2 API gave the route table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteRef>,
}

/// The route table entry an address outside the VPC takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRef {
    /// `rtb-...`.
    pub route_table: String,
    /// The route's destination: a CIDR block, or a gateway endpoint's prefix list.
    pub destination: String,
    /// Where it sends the traffic.
    pub target: RouteTarget,
    /// For a NAT gateway: its public address, the source the far end sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    /// A broader route that matched too and lost to this one (`0.0.0.0/0 -> nat-...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
}

/// A VPC endpoint an address belongs to (interface) or is routed through (gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRef {
    /// `vpce-...`.
    pub id: String,
    /// `com.amazonaws.<region>.<service>` or `com.amazonaws.vpce.<region>.vpce-svc-...`.
    pub service: String,
    /// `interface` or `gateway`.
    #[serde(rename = "type", serialize_with = "lowercase")]
    pub kind: EndpointKind,
    /// For a gateway endpoint: the prefix list whose CIDR holds the address.
    pub prefix_list: Option<String>,
    /// For a gateway endpoint: the route table that routes it.
    pub route_table: Option<String>,
}

/// ICMP echo results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IcmpReport {
    /// `ok` when any echo came back.
    pub status: Status,
    /// Echo requests sent.
    pub sent: u32,
    /// Echo replies received.
    pub received: u32,
    /// Average round-trip time of the replies.
    pub rtt_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<CheckError>,
    /// How to make a skipped stage run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hint: Option<String>,
}

/// A stage with only a time and an error (TCP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StageReport {
    /// State of the stage.
    pub status: Status,
    /// Time the stage took.
    pub ms: Option<f64>,
    /// Why it failed.
    pub error: Option<CheckError>,
}

/// TLS handshake results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TlsReport {
    /// State of the stage.
    pub status: Status,
    /// Time the handshake took.
    pub ms: Option<f64>,
    /// Negotiated protocol version, as `TLSv1.3`.
    pub version: Option<String>,
    /// The server's certificate, also when verification failed.
    pub cert: Option<CertInfo>,
    /// Why it failed.
    pub error: Option<CheckError>,
}

/// What the server's end-entity certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// DNS names and IP addresses in the subject alternative names.
    pub names: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// RFC 3339 start of validity.
    pub not_before: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
}

/// HTTP request results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HttpReport {
    /// `ok` for any status code (and the expected body, when asked).
    pub status: Status,
    /// Response status code.
    pub code: Option<u16>,
    /// Time from request to the end of the body.
    pub ms: Option<f64>,
    /// Body bytes read.
    pub bytes: Option<u64>,
    /// The `server` response header.
    pub server: Option<String>,
    /// The `x-amz-request-id` response header, proof an AWS front end answered.
    pub request_id: Option<String>,
    /// Why it failed.
    pub error: Option<CheckError>,
}

/// The decision for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// At least one address completed every stage that applies.
    pub reachable: bool,
    /// How it was reached, or why not.
    pub path: Path,
    /// The operator's expectation, when given.
    pub expected: Option<Expect>,
    /// The expectation was met (with none: the target is reachable).
    pub pass: bool,
    /// Plain words.
    pub reason: String,
    /// The endpoint that carried the traffic, when known.
    #[serde(default)]
    pub endpoint_id: Option<String>,
    /// What looks wrong in the VPC and how to fix it.
    #[serde(default)]
    pub diagnoses: Vec<Diagnosis>,
    /// What the VPC's configuration predicts, when the EC2 API gave its routes, security
    /// groups and network ACLs and the metadata the instance's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Prediction>,
    /// The prediction and the packets agree: both reachable by the same path, or both not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agrees: Option<bool>,
    /// The verdict of each address family, when the name answered in both and they differ
    /// (AAAA answers that leave by another way than the A answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<FamilyVerdict>,
}

/// The verdict of one address family's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyVerdict {
    /// Which family.
    pub family: Family,
    /// At least one of its addresses completed every stage.
    pub reachable: bool,
    /// The path of its best address, or `unreachable`.
    pub path: Path,
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// A records.
    Ipv4,
    /// AAAA records.
    Ipv6,
}

impl Family {
    /// The family of `ip`.
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::Ipv4 } else { Self::Ipv6 }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        })
    }
}

impl Verdict {
    /// A placeholder until the verdict logic decides.
    #[must_use]
    pub fn undecided() -> Self {
        Self {
            reachable: false,
            path: Path::Unreachable,
            expected: None,
            pass: false,
            reason: String::new(),
            endpoint_id: None,
            diagnoses: Vec::new(),
            predicted: None,
            agrees: None,
            families: Vec::new(),
        }
    }
}

/// Reports name endpoint kinds in lowercase, where the VPC model keeps the EC2 API's case.
fn lowercase<S: serde::Serializer>(kind: &EndpointKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&kind.as_lowercase())
}

/// One finding about the VPC's configuration, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// A stable name for the pattern, as `private-dns-disabled`.
    pub code: super::Code,
    /// A short sentence with the fix.
    pub message: String,
}

/// One connection stage of an address, whatever its report type: the view the verdict, the
/// first failure and the table's columns all read, so a stage is listed in one place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage<'a> {
    /// Which stage.
    pub phase: Phase,
    /// Its state.
    pub status: Status,
    /// Its time.
    pub ms: Option<f64>,
    /// Why it failed.
    pub error: Option<&'a CheckError>,
}

/// The connection stages in the order they run: TCP, TLS, HTTP. ICMP runs beside them and
/// decides nothing.
#[must_use]
pub fn connection_stages<'a>(
    tcp: &'a StageReport,
    tls: &'a TlsReport,
    http: &'a HttpReport,
) -> [Stage<'a>; 3] {
    let [first, second, third] = Phase::CONNECTION;
    [
        Stage {
            phase: first,
            status: tcp.status,
            ms: tcp.ms,
            error: tcp.error.as_ref(),
        },
        Stage {
            phase: second,
            status: tls.status,
            ms: tls.ms,
            error: tls.error.as_ref(),
        },
        Stage {
            phase: third,
            status: http.status,
            ms: http.ms,
            error: http.error.as_ref(),
        },
    ]
}

/// An address is reached when TCP completed and every later stage completed where it applies.
#[must_use]
pub fn completed(stages: &[Stage<'_>]) -> bool {
    stages.iter().all(|s| match s.status {
        Status::Ok => true,
        Status::Skipped => s.phase != Phase::Tcp,
        Status::Fail | Status::NotRun => false,
    })
}

impl AddressReport {
    /// The connection stages, in the order they run.
    #[must_use]
    pub fn stages(&self) -> [Stage<'_>; 3] {
        connection_stages(&self.tcp, &self.tls, &self.http)
    }

    /// Every stage that applies completed.
    #[must_use]
    pub fn completed(&self) -> bool {
        completed(&self.stages())
    }

    /// The first connection stage that failed.
    #[must_use]
    pub fn first_failure(&self) -> Option<&CheckError> {
        self.stages().into_iter().find_map(|s| s.error)
    }
}

/// Rounds a duration to hundredths of a millisecond, as reports show them.
#[must_use]
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}
