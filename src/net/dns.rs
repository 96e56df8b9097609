//! Name resolution through hickory-resolver, one server at a time like the system resolver,
//! so the report can say which server gave the answer.

use crate::model::Kind;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver as Hickory, TokioResolver};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`.
    pub rtype: &'static str,
    /// Seconds the answer may be cached.
    pub ttl: u32,
    /// The record's data as text.
    pub data: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// A then AAAA addresses.
    pub addresses: Vec<IpAddr>,
    /// CNAME targets in chain order.
    pub cname: Vec<String>,
    /// Every answer record.
    pub records: Vec<Record>,
    /// Response code as text.
    pub rcode: String,
    /// The server that answered.
    pub server: String,
}

/// A failed resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// NXDOMAIN, no-data, SERVFAIL, refused, timeout...
    pub kind: Kind,
    /// Response code, when a server answered.
    pub rcode: Option<String>,
    /// The server whose failure is reported.
    pub server: Option<String>,
    /// Details, including what earlier servers said.
    pub message: String,
}

/// Resolves host names to addresses.
pub trait Resolve: Send + Sync + 'static {
    /// Looks up A and AAAA records for `host`.
    fn resolve(&self, host: &str) -> impl Future<Output = Result<Answer, Failure>> + Send;
    /// The servers queried, in order, for the report.
    fn servers(&self) -> Vec<String>;
}

/// hickory-resolver, one resolver per configured name server.
pub struct SystemResolver {
    servers: Vec<(SocketAddr, TokioResolver)>,
    /// The time each server has to answer, whatever hickory does inside it (a retry over
    /// TCP after a truncated answer, say): the stage timeout of the help text.
    timeout: Duration,
}

impl SystemResolver {
    /// From /etc/resolv.conf, or from one `--resolver` address.
    ///
    /// # Errors
    /// A one-line message when the configuration cannot be read or lists no server.
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> Result<Self, SetupError> {
        let (config, mut opts) = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                (
                    ResolverConfig::from_name_servers(vec![ns]),
                    ResolverOpts::default(),
                )
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| SetupError::ResolvConf(e.to_string()))?,
        };
        opts.timeout = timeout;
        // One try per server: the stage timeout is the operator's, not the resolver's.
        opts.attempts = 0;
        opts.cache_size = 0;
        opts.num_concurrent_reqs = 1;
        opts.preserve_intermediates = true;
        // dig does not read /etc/hosts; neither does probe, so both ask the same server.
        opts.use_hosts_file = ResolveHosts::Never;
        let (domain, search, name_servers) = config.into_parts();
        if name_servers.is_empty() {
            return Err(SetupError::NoServer);
        }
        let mut servers = Vec::new();
        for ns in name_servers {
            let port = ns.connections.first().map_or(53, |c| c.port);
            let one = ResolverConfig::from_parts(domain.clone(), search.clone(), vec![ns.clone()]);
            let resolver = Hickory::builder_with_config(one, TokioRuntimeProvider::default())
                .with_options(opts.clone())
                .build()
                .map_err(|e| SetupError::Build {
                    server: ns.ip,
                    detail: e.to_string(),
                })?;
            let addr = SocketAddr::new(ns.ip, port);
            if !servers.iter().any(|(a, _)| *a == addr) {
                servers.push((addr, resolver));
            }
        }
        Ok(Self { servers, timeout })
    }
}

/// Why the resolver cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The system's configuration cannot be read.
    #[error("cannot read /etc/resolv.conf ({0}); fix it or pass --resolver IP")]
    ResolvConf(String),
    /// It names no server.
    #[error("/etc/resolv.conf lists no nameserver; add one or pass --resolver IP")]
    NoServer,
    /// hickory refuses a server.
    #[error("cannot set up the resolver for {server}: {detail}")]
    Build {
        /// The server.
        server: IpAddr,
        /// What hickory said.
        detail: String,
    },
}

impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> Result<Answer, Failure> {
        let mut earlier: Vec<String> = Vec::new();
        let mut last = None;
        for (addr, resolver) in &self.servers {
            let server = addr.to_string();
            let both = async {
                tokio::join!(
                    resolver.lookup(host, RecordType::A),
                    resolver.lookup(host, RecordType::AAAA)
                )
            };
            let outcome = match tokio::time::timeout(self.timeout, both).await {
                Ok((a, aaaa)) => combine(a, aaaa, &server),
                Err(_) => Err(Failure {
                    kind: Kind::Timeout,
                    rcode: None,
                    server: Some(server.clone()),
                    message: format!(
                        "no answer from {server} within {}",
                        humantime::format_duration(self.timeout)
                    ),
                }),
            };
            match outcome {
                Ok(answer) => return Ok(answer),
                Err(mut f) => {
                    // Like the system resolver, only a definite answer stops the search.
                    let definite = matches!(f.kind, Kind::Nxdomain | Kind::NoData);
                    if !earlier.is_empty() {
                        f.message = format!("{} (before: {})", f.message, earlier.join("; "));
                    }
                    if definite {
                        return Err(f);
                    }
                    earlier.push(format!("{server} {}", f.kind));
                    last = Some(f);
                }
            }
        }
        Err(last.unwrap_or_else(|| Failure {
            kind: Kind::Io,
            rcode: None,
            server: None,
            message: "no name server configured".into(),
        }))
    }

    fn servers(&self) -> Vec<String> {
        self.servers.iter().map(|(a, _)| a.to_string()).collect()
    }
}

type Lookup = Result<hickory_resolver::lookup::Lookup, NetError>;

fn combine(a: Lookup, aaaa: Lookup, server: &str) -> Result<Answer, Failure> {
    let mut records = Vec::new();
    let mut addresses = Vec::new();
    let mut cname = Vec::new();
    let mut failures = Vec::new();
    for lookup in [a, aaaa] {
        match lookup {
            Ok(l) => {
                for r in l.answers() {
                    let name = r.name.to_string().trim_end_matches('.').to_string();
                    let (rtype, data) = match &r.data {
                        RData::A(a) => {
                            addresses.push(IpAddr::V4(a.0));
                            ("A", a.0.to_string())
                        }
                        RData::AAAA(a) => {
                            addresses.push(IpAddr::V6(a.0));
                            ("AAAA", a.0.to_string())
                        }
                        RData::CNAME(c) => {
                            let target = c.0.to_string().trim_end_matches('.').to_string();
                            if !cname.contains(&target) {
                                cname.push(target.clone());
                            }
                            ("CNAME", target)
                        }
                        other => {
                            tracing::debug!(?other, "ignoring answer record");
                            continue;
                        }
                    };
                    let record = Record {
                        name,
                        rtype,
                        ttl: r.ttl,
                        data,
                    };
                    if !records.contains(&record) {
                        records.push(record);
                    }
                }
            }
            Err(e) => failures.push(classify(&e, server)),
        }
    }
    addresses.dedup();
    if !addresses.is_empty() {
        return Ok(Answer {
            addresses,
            cname,
            records,
            rcode: "NOERROR".into(),
            server: server.into(),
        });
    }
    // Both lookups failed, or returned only CNAMEs: report the most telling failure.
    failures.sort_by_key(|f| severity(f.kind));
    Err(failures.into_iter().next().unwrap_or_else(|| Failure {
        kind: Kind::NoData,
        rcode: Some("NOERROR".into()),
        server: Some(server.into()),
        message: "the name has no A or AAAA records".into(),
    }))
}

/// Lower is more telling: a server's word beats a silence.
fn severity(kind: Kind) -> u8 {
    match kind {
        Kind::Nxdomain => 0,
        Kind::Servfail | Kind::Refused => 1,
        Kind::Protocol => 2,
        Kind::Timeout => 3,
        Kind::NoData => 5,
        _ => 4,
    }
}

/// The response code as dig prints it.
fn mnemonic(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

fn classify(err: &NetError, server: &str) -> Failure {
    let answered = |kind, code: ResponseCode, message: String| Failure {
        kind,
        rcode: Some(mnemonic(code)),
        server: Some(server.into()),
        message,
    };
    let by_code = |code: ResponseCode| match code {
        ResponseCode::NXDomain => Kind::Nxdomain,
        ResponseCode::NoError => Kind::NoData,
        ResponseCode::ServFail => Kind::Servfail,
        ResponseCode::Refused => Kind::Refused,
        _ => Kind::Protocol,
    };
    match err {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => answered(
            by_code(nr.response_code),
            nr.response_code,
            match nr.response_code {
                ResponseCode::NXDomain => {
                    format!("{server} answered NXDOMAIN: the name does not exist")
                }
                ResponseCode::NoError => format!("{server} has no A or AAAA records for the name"),
                c => format!("{server} answered {}", mnemonic(c)),
            },
        ),
        NetError::Dns(DnsError::ResponseCode(code)) => answered(
            by_code(*code),
            *code,
            format!(
                "{server} answered {}",
                code.to_string().to_ascii_uppercase()
            ),
        ),
        NetError::Timeout => Failure {
            kind: Kind::Timeout,
            rcode: None,
            server: Some(server.into()),
            message: format!("no answer from {server} within the timeout"),
        },
        NetError::Io(io) => Failure {
            kind: Kind::from_io(io),
            rcode: None,
            server: Some(server.into()),
            message: format!("{server}: {io}"),
        },
        other => Failure {
            kind: Kind::Protocol,
            rcode: None,
            server: Some(server.into()),
            message: format!("{server}: {other}"),
        },
    }
}

impl SystemResolver {
    /// A resolver with no server, for runs whose targets are all IP literals.
    #[must_use]
    pub fn none() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::ZERO,
        }
    }
}
