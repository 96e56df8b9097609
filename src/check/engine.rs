//! The check engine: every target and address at once under a semaphore, each stage under
//! its own timeout, the whole run under one deadline, results in command-line order.

use super::plan::Plan;
use super::{connection, dns, icmp};
use crate::context::Discovery;
use crate::model::Expect;
use crate::model::{
    AddressReport, Agent, DnsReport, Instance, Report, SCHEMA, TargetReport, Verdict, VpcView,
};
use crate::net::dns::Resolve;
use crate::net::ping::Ping;
use crate::net::tls::Trust;
use crate::target::Target;
use crate::verdict;
use ipnet::IpNet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The outside systems a run uses.
pub struct Deps<R, P> {
    /// Name resolution.
    pub resolver: Arc<R>,
    /// ICMP echo.
    pub pinger: Arc<P>,
    /// TLS trust roots.
    pub trust: Trust,
    /// Where the run happens, for the report.
    pub agent: Agent,
}

/// What every task of a run shares.
pub(super) struct Ctx<R, P> {
    pub resolver: Arc<R>,
    pub pinger: Arc<P>,
    pub trust: Trust,
    pub vpc_cidrs: Vec<IpNet>,
    pub timeout: Duration,
    pub ping_count: u16,
    pub ping_interval: Duration,
    pub expect_body: Option<String>,
    pub deadline: tokio::time::Instant,
    pub permits: Semaphore,
}

/// One target's results before the verdict.
struct Checked {
    target: Target,
    expect: Option<Expect>,
    dns: DnsReport,
    addresses: Vec<AddressReport>,
}

/// Checks every target of `plan` while `discovery` reads the VPC, then decides the verdicts
/// with whatever the EC2 API told.
pub async fn run<R: Resolve, P: Ping, F>(plan: &Plan, deps: &Deps<R, P>, discovery: F) -> Report
where
    F: Future<Output = Discovery> + Send,
{
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let t0 = Instant::now();
    let ctx = Arc::new(Ctx {
        resolver: deps.resolver.clone(),
        pinger: deps.pinger.clone(),
        trust: deps.trust.clone(),
        vpc_cidrs: plan.vpc_cidrs.clone(),
        timeout: plan.timeout,
        ping_count: plan.ping_count,
        ping_interval: plan.ping_interval,
        expect_body: plan.expect_body.clone(),
        deadline: tokio::time::Instant::now() + plan.deadline,
        permits: Semaphore::new(crate::limits::checks_at_once(plan.concurrency)),
    });
    let mut tasks = JoinSet::new();
    for (index, (target, expect)) in plan.targets.iter().cloned().enumerate() {
        let ctx = ctx.clone();
        tasks.spawn(async move { (index, check_target(ctx, target, expect).await) });
    }
    let checks = async {
        let mut checked: Vec<(usize, Checked)> = Vec::with_capacity(plan.targets.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(t) => checked.push(t),
                Err(e) => tracing::error!("a target task failed: {e}"),
            }
        }
        checked.sort_by_key(|(i, _)| *i);
        checked
    };
    let (checked, discovery) = tokio::join!(checks, discovery);
    let mut agent = deps.agent.clone();
    agent.context.ec2.clone_from(&discovery.status);
    let targets: Vec<TargetReport> = checked
        .into_iter()
        .map(|(_, c)| finish(c, discovery.view.as_ref(), agent.instance.as_ref()))
        .collect();
    Report {
        schema: SCHEMA.into(),
        id: uuid::Uuid::new_v4().to_string(),
        agent,
        started_at,
        duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
        pass: targets.iter().all(|t| t.verdict.pass),
        targets,
        via: None,
        authenticated: None,
    }
}

fn finish(c: Checked, vpc: Option<&VpcView>, instance: Option<&Instance>) -> TargetReport {
    let Checked {
        target,
        expect,
        dns,
        addresses,
    } = c;
    let mut report = TargetReport {
        url: target.url(),
        target: target.input,
        host: target.host,
        port: target.port,
        scheme: target.scheme,
        dns,
        addresses,
        verdict: Verdict::undecided(),
    };
    verdict::judge(&mut report, expect, vpc, instance);
    report
}

async fn check_target<R: Resolve, P: Ping>(
    ctx: Arc<Ctx<R, P>>,
    target: Target,
    expect: Option<Expect>,
) -> Checked {
    let dns = dns::resolve(&ctx, &target).await;
    let mut tasks = JoinSet::new();
    for (index, ip) in dns.addresses.iter().copied().enumerate() {
        let ctx = ctx.clone();
        let target = target.clone();
        tasks.spawn(async move { (index, check_address(ctx, &target, ip).await) });
    }
    let mut addresses = Vec::with_capacity(dns.addresses.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(a) => addresses.push(a),
            Err(e) => tracing::error!("an address task failed: {e}"),
        }
    }
    addresses.sort_by_key(|(i, _)| *i);
    Checked {
        target,
        expect,
        dns,
        addresses: addresses.into_iter().map(|(_, a)| a).collect(),
    }
}

async fn check_address<R: Resolve, P: Ping>(
    ctx: Arc<Ctx<R, P>>,
    target: &Target,
    ip: IpAddr,
) -> AddressReport {
    let _permit = ctx.permits.acquire().await;
    let class = verdict::classify(ip, &target.host, &ctx.vpc_cidrs);
    let (cutoff, cutoff_rx) = tokio::sync::watch::channel(None);
    let chain = async {
        let conn = connection::run(&ctx, target, ip).await;
        if conn.completed() {
            // The address is proven reachable: ICMP only gets time for replies in flight.
            let _ = cutoff.send(Some(tokio::time::Instant::now()));
        }
        conn
    };
    let (icmp, conn) = tokio::join!(icmp::run(&ctx, ip, cutoff_rx), chain);
    AddressReport {
        ip,
        class,
        icmp,
        tcp: conn.tcp,
        tls: conn.tls,
        http: conn.http,
        endpoint: None,
        route: None,
    }
}
