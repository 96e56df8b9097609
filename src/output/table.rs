//! The table renderer: one row per target and address showing what dig, ping and curl would
//! have shown, then the verdicts.

use crate::model::{AddressReport, HttpReport, IcmpReport, Report, StageReport, Status, TlsReport};
use std::fmt::Write;

/// Renders the report for people.
#[must_use]
pub fn render(report: &Report) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "TARGET".into(),
        "ADDRESS".into(),
        "CLASS".into(),
        "PING".into(),
        "TCP".into(),
        "TLS".into(),
        "HTTP".into(),
    ]];
    for t in &report.targets {
        if t.addresses.is_empty() {
            let dns = t
                .dns
                .error
                .as_ref()
                .map_or_else(|| "no address".to_string(), |e| format!("dns {}", e.kind));
            rows.push([
                t.target.clone(),
                dns,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for (i, a) in t.addresses.iter().enumerate() {
            let name = if i == 0 {
                t.target.clone()
            } else {
                String::new()
            };
            rows.push(address_row(name, a));
        }
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    verdicts(report, &mut out);
    let passed = report.targets.iter().filter(|t| t.verdict.pass).count();
    let _ = writeln!(
        out,
        "\n{} of {} targets pass · {:.2} s · {} · resolver {} · metadata {} · EC2 API {}",
        passed,
        report.targets.len(),
        std::time::Duration::from_millis(report.duration_ms).as_secs_f64(),
        report.agent.hostname,
        if report.agent.resolvers.is_empty() {
            "none".into()
        } else {
            report.agent.resolvers.join(", ")
        },
        report.agent.context.imds,
        report.agent.context.ec2,
    );
    out
}

/// One line per target: PASS or FAIL, the path and the reason, then what explains a failure.
fn verdicts(report: &Report, out: &mut String) {
    let name_width = report
        .targets
        .iter()
        .map(|t| t.target.chars().count())
        .max()
        .unwrap_or(0);
    for t in &report.targets {
        let mark = if t.verdict.pass { "PASS" } else { "FAIL" };
        let state = if t.verdict.reachable {
            "reachable via "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{mark}  {:<name_width$}  {state}{}: {}",
            t.target, t.verdict.path, t.verdict.reason
        );
        for d in &t.verdict.diagnoses {
            let _ = writeln!(out, "      {:<name_width$}  ! {}", "", d.message);
        }
        if !t.dns.cname.is_empty() {
            let _ = writeln!(
                out,
                "      {:<name_width$}  CNAME {}",
                "",
                t.dns.cname.join(" -> ")
            );
        }
        for a in &t.addresses {
            if let (Some(cert), Some(e)) = (&a.tls.cert, &a.tls.error) {
                let _ = writeln!(
                    out,
                    "      {:<name_width$}  {} certificate {}: names {}, issuer {}, valid until {}",
                    "",
                    a.ip,
                    e.kind,
                    cert.names.join(" "),
                    cert.issuer,
                    cert.not_after
                );
            }
            if let Some(hint) = &a.icmp.hint {
                let _ = writeln!(out, "      {:<name_width$}  ping skipped: {hint}", "");
                break;
            }
        }
    }
}

fn address_row(name: String, a: &AddressReport) -> [String; 7] {
    [
        name,
        a.ip.to_string(),
        a.class.to_string(),
        ping(&a.icmp),
        stage(&StageCell::from(&a.tcp)),
        stage(&StageCell::from(&a.tls)),
        http(&a.http),
    ]
}

struct StageCell<'a> {
    status: Status,
    ms: Option<f64>,
    kind: Option<&'a str>,
}

impl<'a> From<&'a StageReport> for StageCell<'a> {
    fn from(s: &'a StageReport) -> Self {
        Self {
            status: s.status,
            ms: s.ms,
            kind: s.error.as_ref().map(|e| e.kind.as_str()),
        }
    }
}

impl<'a> From<&'a TlsReport> for StageCell<'a> {
    fn from(s: &'a TlsReport) -> Self {
        Self {
            status: s.status,
            ms: s.ms,
            kind: s.error.as_ref().map(|e| e.kind.as_str()),
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}ms")).unwrap_or_default()
}

fn stage(s: &StageCell<'_>) -> String {
    match s.status {
        Status::Ok => format!("ok {}", ms(s.ms)),
        Status::Fail => s.kind.unwrap_or("fail").to_string(),
        Status::Skipped | Status::NotRun => "-".into(),
    }
}

fn ping(p: &IcmpReport) -> String {
    match p.status {
        Status::Skipped | Status::NotRun => "-".into(),
        _ => match p.rtt_ms {
            Some(rtt) => format!("{}/{} {rtt:.1}ms", p.received, p.sent),
            None => format!("{}/{}", p.received, p.sent),
        },
    }
}

fn http(h: &HttpReport) -> String {
    match (h.status, h.code) {
        (Status::Ok, Some(code)) => format!("{code} {}", ms(h.ms)),
        (Status::Fail, Some(code)) => format!(
            "{code} {}",
            h.error.as_ref().map_or("fail", |e| e.kind.as_str())
        ),
        (Status::Fail, None) => h
            .error
            .as_ref()
            .map_or("fail", |e| e.kind.as_str())
            .to_string(),
        _ => "-".into(),
    }
}
