//! The check engine with fake resolvers and pingers: deadlines, ICMP without privilege,
//! ICMP that never answers an address that does, and deterministic order.

mod support;

use probe::check::{Deps, Format, Plan, run};
use probe::context::Discovery;
use probe::model::{Agent, ContextStatus, Status};
use probe::net::dns::{Answer, Failure, Resolve};
use probe::net::ping::{Echo, Ping};
use probe::net::tls::Trust;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use support::servers::{self, Behavior};

/// Answers every name with 127.0.0.1 after a delay taken from the name's first label
/// (`d300.test` waits 300 ms); `stuck.test` never answers.
struct ScriptedResolver;

impl Resolve for ScriptedResolver {
    async fn resolve(&self, host: &str) -> Result<Answer, Failure> {
        if host == "stuck.test" {
            std::future::pending::<()>().await;
        }
        let ms: u64 = host
            .trim_start_matches('d')
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Answer {
            addresses: vec![IpAddr::from([127, 0, 0, 1])],
            cname: vec![],
            records: vec![],
            rcode: "NOERROR".into(),
            server: "fake".into(),
        })
    }
    fn servers(&self) -> Vec<String> {
        vec!["fake".into()]
    }
}

/// No ICMP socket could be opened.
struct NoPrivilege;

impl Ping for NoPrivilege {
    fn unavailable(&self, _: IpAddr) -> Option<String> {
        Some("no permission for ICMP sockets: run as root".into())
    }
    async fn echo(&self, _: IpAddr, _: u16, _: u16, _: Duration) -> Echo {
        unreachable!("never called when unavailable")
    }
    fn mode(&self) -> &'static str {
        "unavailable"
    }
}

/// ICMP is filtered: every echo waits its whole timeout.
struct Filtered;

impl Ping for Filtered {
    fn unavailable(&self, _: IpAddr) -> Option<String> {
        None
    }
    async fn echo(&self, _: IpAddr, _: u16, _: u16, timeout: Duration) -> Echo {
        tokio::time::sleep(timeout).await;
        Echo::Timeout
    }
    fn mode(&self) -> &'static str {
        "raw"
    }
}

fn plan(targets: &[String], timeout: Duration, deadline: Duration) -> Plan {
    Plan {
        targets: targets
            .iter()
            .map(|t| (probe::target::parse(t, None).unwrap(), None))
            .collect(),
        region: None,
        resolver: None,
        vpc_cidrs: vec![],
        ping_count: 2,
        ping_interval: Duration::from_millis(20),
        timeout,
        deadline,
        concurrency: Some(4),
        ca_files: vec![],
        expect_body: None,
        format: Format::Json,
        report_to: None,
        every: None,
        console: false,
    }
}

fn deps<P: Ping>(pinger: P) -> Deps<ScriptedResolver, P> {
    Deps {
        resolver: Arc::new(ScriptedResolver),
        pinger: Arc::new(pinger),
        trust: Trust::new(&[]).unwrap(),
        agent: Agent {
            hostname: "test".into(),
            version: "0".into(),
            region: None,
            vpc_cidrs: vec![],
            resolvers: vec![],
            icmp: "raw".into(),
            instance: None,
            context: ContextStatus::default(),
        },
    }
}

#[tokio::test]
async fn the_deadline_ends_a_resolver_that_never_answers() {
    let report = run(
        &plan(
            &["stuck.test:80".into()],
            Duration::from_secs(30),
            Duration::from_millis(300),
        ),
        &deps(NoPrivilege),
        std::future::ready(Discovery::off()),
    )
    .await;
    let t = &report.targets[0];
    assert_eq!(t.dns.error.as_ref().unwrap().kind.as_str(), "deadline");
    assert_eq!(t.verdict.path.as_str(), "dns-failed");
    support::assert_valid(&serde_json::to_value(&report).unwrap());
}

#[tokio::test]
async fn the_deadline_names_the_stage_it_cut() {
    let stall = servers::http(Behavior::StallAfterHandshake);
    let url = format!("http://d0.test:{}/", stall.addr.port());
    let report = run(
        &plan(&[url], Duration::from_secs(30), Duration::from_millis(400)),
        &deps(NoPrivilege),
        std::future::ready(Discovery::off()),
    )
    .await;
    let a = &report.targets[0].addresses[0];
    assert_eq!(a.tcp.status, Status::Ok);
    assert_eq!(a.http.status, Status::Fail);
    let e = a.http.error.as_ref().unwrap();
    assert_eq!(
        (e.phase, e.kind.as_str()),
        (probe::model::Phase::Http, "deadline")
    );
}

#[tokio::test]
async fn without_icmp_privilege_the_stage_is_skipped_with_a_hint() {
    let web = servers::http(servers::status(200));
    let url = format!("http://d0.test:{}/", web.addr.port());
    let report = run(
        &plan(&[url], Duration::from_secs(2), Duration::from_secs(5)),
        &deps(NoPrivilege),
        std::future::ready(Discovery::off()),
    )
    .await;
    let icmp = &report.targets[0].addresses[0].icmp;
    assert_eq!(icmp.status, Status::Skipped);
    assert!(icmp.hint.as_deref().unwrap().contains("run as root"));
    assert!(
        report.targets[0].verdict.reachable,
        "ICMP never decides the verdict"
    );
}

#[tokio::test]
async fn filtered_icmp_does_not_hold_a_reachable_address() {
    let web = servers::http(servers::status(200));
    let url = format!("http://d0.test:{}/", web.addr.port());
    let timeout = Duration::from_secs(20);
    let report = run(
        &plan(&[url], timeout, timeout * 2),
        &deps(Filtered),
        std::future::ready(Discovery::off()),
    )
    .await;
    let a = &report.targets[0].addresses[0];
    assert!(report.targets[0].verdict.reachable);
    assert_eq!(
        (a.icmp.status, a.icmp.sent, a.icmp.received),
        (Status::Fail, 2, 0)
    );
    assert!(
        a.icmp.error.as_ref().unwrap().message.contains("filtered"),
        "{:?}",
        a.icmp.error
    );
    // Waiting out the 20 s echo timeout would only measure the filter.
    assert!(
        report.duration_ms < 20_000,
        "took {} ms",
        report.duration_ms
    );
}

#[tokio::test]
async fn reports_keep_command_line_order_whatever_finishes_first() {
    let web = servers::http(servers::status(200));
    let port = web.addr.port();
    let targets: Vec<String> = [300, 0, 200, 100, 0, 250]
        .iter()
        .enumerate()
        .map(|(i, d)| format!("http://d{d}.t{i}.test:{port}/"))
        .collect();
    let report = run(
        &plan(&targets, Duration::from_secs(2), Duration::from_secs(5)),
        &deps(NoPrivilege),
        std::future::ready(Discovery::off()),
    )
    .await;
    let order: Vec<&str> = report.targets.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(
        order,
        targets.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(report.pass);
}
