//! `--from-console` and `--stack`: verdicts read back from instances' serial consoles with
//! EC2 GetConsoleOutput, for instances with no network path to any collector. Agents run
//! with `--console` write one marked line per verdict; each run's lines become one report
//! (`via: console`), stored like a posted one, so re-reading the same console stores nothing
//! twice.

use super::entry::Entry;
use super::store::{Bootstrap, Host, Store, Stored, print_changes};
use crate::context::ec2::{InstanceInfo, SdkEc2};
use crate::model::{
    Agent, ConsoleLine, ContextStatus, DnsReport, Instance, Path, Report, SCHEMA, TargetReport,
    Verdict,
};
use std::time::Duration;

/// Which consoles to read, and how often.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Instances named on the command line.
    pub ids: Vec<String>,
    /// A CloudFormation stack whose instances are read too.
    pub stack: Option<String>,
    /// The region the instances are in.
    pub region: String,
    /// Time between two readings.
    pub every: Duration,
}

/// The marker of the UserData bootstrap's console lines (userdata/fetch.sh writes them).
pub const BOOTSTRAP_MARKER: &str = "probe.bootstrap/v1";

/// What one console held.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The last readable bootstrap line, when the UserData's bootstrap wrote any.
    pub bootstrap: Option<Bootstrap>,
    /// One report per agent run, oldest first.
    pub reports: Vec<Report>,
    /// Marked lines that could not be read (cut by the console's 64 KiB window, or mixed
    /// with kernel messages).
    pub unreadable: usize,
}

/// Reads the marked lines of `output`, the console of `instance` in `region`.
#[must_use]
pub fn parse(output: &str, instance: &InstanceInfo, region: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for raw in output.lines() {
        if let Some(at) = raw.find(BOOTSTRAP_MARKER) {
            if let Ok(line) = serde_json::from_str(raw[at + BOOTSTRAP_MARKER.len()..].trim()) {
                parsed.bootstrap = Some(line);
            }
            continue;
        }
        let Some(read) = ConsoleLine::find(raw) else {
            continue;
        };
        let Some((line, target)) = read
            .ok()
            .and_then(|l| crate::target::parse(&l.url, None).ok().map(|t| (l, t)))
        else {
            parsed.unreadable += 1;
            continue;
        };
        let id = format!("{}-console", line.id);
        let index = if let Some(i) = parsed.reports.iter().position(|r| r.id == id) {
            i
        } else {
            parsed.reports.push(report(id, &line, instance, region));
            parsed.reports.len() - 1
        };
        let report = &mut parsed.reports[index];
        report.targets.push(TargetReport {
            target: line.target,
            host: target.host,
            port: target.port,
            scheme: target.scheme,
            url: line.url,
            dns: DnsReport {
                ok: line.path != Path::DnsFailed,
                ..DnsReport::none()
            },
            addresses: Vec::new(),
            verdict: Verdict {
                reachable: line.reachable,
                path: line.path,
                expected: line.expected,
                pass: line.pass,
                reason:
                    "read from the serial console: the details of the checks stay on the instance"
                        .into(),
                endpoint_id: line.endpoint,
                diagnoses: Vec::new(),
                predicted: None,
                agrees: None,
                families: Vec::new(),
            },
        });
        report.pass = report.targets.iter().all(|t| t.verdict.pass);
    }
    parsed
}

fn report(id: String, line: &ConsoleLine, instance: &InstanceInfo, region: &str) -> Report {
    Report {
        schema: SCHEMA.into(),
        id,
        agent: Agent {
            hostname: line.host.clone(),
            version: line.version.clone().unwrap_or_else(|| "unknown".into()),
            region: Some(region.to_string()),
            vpc_cidrs: Vec::new(),
            resolvers: Vec::new(),
            icmp: "unknown".into(),
            instance: Some(Instance {
                instance_id: Some(instance.id.clone()),
                name: instance.name.clone(),
                region: Some(region.to_string()),
                subnet_id: instance.subnet_id.clone(),
                ..Instance::default()
            }),
            context: ContextStatus {
                imds: "unknown".into(),
                ec2: "unknown".into(),
                collector_ec2: None,
            },
        },
        started_at: line.at.clone(),
        duration_ms: 0,
        pass: true,
        targets: Vec::new(),
        via: Some("console".into()),
        authenticated: None,
    }
}

/// Reads every console now and then, for ever; what it stores is alerted on like a report
/// that was posted.
pub async fn poll(
    ec2: SdkEc2,
    sources: Sources,
    store: Store,
    alerts: Option<std::sync::Arc<super::alerts::Alerts>>,
) {
    loop {
        for instance in instances(&ec2, &sources).await {
            read(&ec2, &instance, &sources.region, &store, alerts.as_deref()).await;
        }
        tokio::time::sleep(sources.every).await;
    }
}

/// The named instances and the stack's live ones, described once each. A named instance the
/// API cannot describe is still read by its id; what cannot be found is said on the terminal.
async fn instances(ec2: &SdkEc2, s: &Sources) -> Vec<InstanceInfo> {
    let bare = |id: &String| InstanceInfo {
        id: id.clone(),
        name: None,
        subnet_id: None,
        state: String::new(),
        security_groups: Vec::new(),
    };
    let mut list = Vec::new();
    if !s.ids.is_empty() {
        match ec2.instances(&s.ids, None).await {
            Ok(found) => {
                for id in s
                    .ids
                    .iter()
                    .filter(|id| !found.iter().any(|f| &f.id == *id))
                {
                    eprintln!(
                        "probe collect: console: DescribeInstances does not know {id} in {}: reading it by id all the same",
                        s.region
                    );
                    list.push(bare(id));
                }
                list.extend(found);
            }
            Err(why) => {
                eprintln!("probe collect: console: {why}: reading the instances by id alone");
                list.extend(s.ids.iter().map(bare));
            }
        }
    }
    if let Some(stack) = &s.stack {
        match ec2.instances(&[], Some(stack)).await {
            Ok(found) if found.is_empty() => eprintln!(
                "probe collect: console: stack {stack:?} has no instances (tag aws:cloudformation:stack-name) in {}: check the stack name and --region",
                s.region
            ),
            Ok(found) => {
                // A stack's replaced instances stay listed, terminated, for an hour: their
                // consoles are gone.
                let live = found
                    .into_iter()
                    .filter(|i| !matches!(i.state.as_str(), "terminated" | "shutting-down"));
                for i in live {
                    if !list.iter().any(|l| l.id == i.id) {
                        list.push(i);
                    }
                }
            }
            Err(why) => eprintln!("probe collect: console: stack {stack:?}: {why}"),
        }
    }
    list
}

async fn read(
    ec2: &SdkEc2,
    instance: &InstanceInfo,
    region: &str,
    store: &Store,
    alerts: Option<&super::alerts::Alerts>,
) {
    // Name tags are anyone's text: safe on the terminal.
    let label = crate::terminal::safe(&match &instance.name {
        Some(name) => format!("{} ({name})", instance.id),
        None => instance.id.clone(),
    })
    .into_owned();
    let output = match ec2.console_output(&instance.id).await {
        Ok(o) => o,
        Err(why) => {
            eprintln!("probe collect: console of {label}: {why}");
            return;
        }
    };
    let parsed = parse(&output, instance, region);
    if let Some(line) = &parsed.bootstrap {
        let host = Host {
            label: label.clone(),
            subnet: instance.subnet_id.clone(),
            last: String::new(),
        };
        if store.note_bootstrap(&instance.id, host, line.clone()) {
            println!("{}", bootstrap_line(&label, line));
        }
    }
    let mut new = 0;
    for report in parsed.reports {
        let for_alerts = alerts.map(|_| report.clone());
        let stored = match Entry::from_report(report) {
            Ok(entry) => store.put(entry).await.map_err(|e| e.to_string()),
            Err(why) => Err(why.to_string()),
        };
        match stored {
            Ok((Stored::New, changes)) => {
                new += 1;
                print_changes(&changes);
                if let (Some(alerts), Some(report)) = (alerts, &for_alerts) {
                    if let Err(e) = alerts.observe(report).await {
                        tracing::error!("an alert is not written: {e}; the next start writes it");
                    }
                }
            }
            Ok((Stored::Duplicate, _)) => {}
            Err(why) => eprintln!("probe collect: console of {label}: not stored: {why}"),
        }
    }
    if new > 0 || parsed.unreadable > 0 {
        eprintln!(
            "probe collect: console of {label}: {new} new report(s), {} unreadable marked line(s)",
            parsed.unreadable
        );
    }
}

/// The terminal line for a changed bootstrap state. Console text comes from the instance:
/// control characters are escaped, so it can neither move the cursor nor forge a line.
fn bootstrap_line(label: &str, b: &Bootstrap) -> String {
    let attempt = b
        .attempt
        .map(|n| format!(" (attempt {n})"))
        .unwrap_or_default();
    let source = b
        .source
        .as_deref()
        .map(|s| format!(" from {s}"))
        .unwrap_or_default();
    let text = format!(
        "{label} bootstrap: {}{source}{attempt}: {}",
        b.result, b.detail
    );
    crate::terminal::safe(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::console_lines;

    fn instance() -> InstanceInfo {
        InstanceInfo {
            id: "i-0123456789abcdef0".into(),
            name: Some("private-ec2".into()),
            subnet_id: Some("subnet-0456".into()),
            state: "running".into(),
            security_groups: vec!["sg-0789".into()],
        }
    }

    #[test]
    fn the_agents_console_lines_come_back_as_one_report_per_run() {
        let report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report.json")).unwrap();
        let mut console = String::from("[   10.1] cloud-init[712]: boot\r\n");
        for line in console_lines(&report) {
            console.push_str(&line);
            console.push_str("\r\n");
        }
        // A line the console's window cut, and one a kernel message broke.
        console.insert_str(0, "t\":\"s3\",\"path\":\"public\"}\r\n");
        console.push_str("probe.verdict/v1 {\"id\":\"x\",\"ho[  99.0] random: crng\r\n");
        let parsed = parse(&console, &instance(), "ap-northeast-2");
        assert_eq!(parsed.unreadable, 1);
        assert_eq!(parsed.reports.len(), 1);
        let back = &parsed.reports[0];
        assert_eq!(back.id, format!("{}-console", report.id));
        assert_eq!(back.via.as_deref(), Some("console"));
        assert_eq!(back.agent.hostname, report.agent.hostname);
        let i = back.agent.instance.as_ref().unwrap();
        assert_eq!(i.name.as_deref(), Some("private-ec2"));
        assert_eq!(back.targets.len(), report.targets.len());
        for (got, sent) in back.targets.iter().zip(&report.targets) {
            assert_eq!(got.target, sent.target);
            assert_eq!(got.host, sent.host);
            assert_eq!(got.port, sent.port);
            assert_eq!(got.verdict.path, sent.verdict.path);
            assert_eq!(got.verdict.pass, sent.verdict.pass);
            assert_eq!(got.verdict.endpoint_id, sent.verdict.endpoint_id);
        }
        assert_eq!(back.pass, report.pass);
    }

    #[test]
    fn the_last_bootstrap_line_says_why_an_instance_never_reported() {
        let console = concat!(
            "[  3.1] cloud-init[90]: probe.bootstrap/v1 {\"step\":\"bootstrap\",\"result\":\"started\",\"detail\":\"probe-fetch started\"}\r\n",
            "probe.bootstrap/v1 {\"step\":\"fetch\",\"attempt\":1,\"arch\":\"x86_64\",\"source\":\"http://10.10.0.10:7878/v1/probe\",\"result\":\"refused\",\"detail\":\"no probe\"}\r\n",
            "probe.bootstrap/v1 {\"step\":\"fetch\",\"attempt\":2,\"arch\":\"x86_64\",\"source\":\"http://h/\\u001b[2Jx\",\"result\":\"sha-mismatch\",\"detail\":\"got\\nfake\"}\r\n",
            "probe.bootstrap/v1 {\"step\":\"fetch\",\"att[ 9.9] random: crng\r\n",
        );
        let parsed = parse(console, &instance(), "ap-northeast-2");
        let b = parsed.bootstrap.expect("a bootstrap line");
        assert_eq!(b.result, "sha-mismatch");
        assert_eq!(b.attempt, Some(2));
        assert!(!b.done());
        let line = bootstrap_line("private-ec2 (i-0123)", &b);
        assert_eq!(
            line,
            "private-ec2 (i-0123) bootstrap: sha-mismatch from http://h/\\u{1b}[2Jx (attempt 2): got\\nfake"
        );
        assert!(!line.contains('\u{1b}') && !line.contains('\n'));
    }
}
