//! The table renderer: one row per target and address showing what dig, ping and curl would
//! have shown, then the verdicts. On a terminal it fits the width: a long target is shortened
//! in the middle and a verdict's reason wraps under its row; elsewhere (a file, a pipe) every
//! row stays one line, whatever its length, for grep.

use crate::model::{AddressReport, IcmpReport, Phase, Report, Stage, Status};
use std::fmt::Write;

/// The narrowest a shortened target gets: enough to tell `s3` from `sts` by their ends.
const MIN_TARGET: usize = 16;

/// Renders the report for people, one line per row.
#[must_use]
pub fn render(report: &Report) -> String {
    render_width(report, None)
}

/// Renders the report to fit `width` columns, when given.
#[must_use]
pub fn render_width(report: &Report, width: Option<usize>) -> String {
    // The connection stages' columns come from the model's list of them.
    let mut header: Vec<String> = ["TARGET", "ADDRESS", "CLASS", "PING"]
        .map(String::from)
        .to_vec();
    header.extend(Phase::CONNECTION.map(|p| p.as_str().to_ascii_uppercase()));
    let columns = header.len();
    let mut rows: Vec<Vec<String>> = vec![header];
    for t in &report.targets {
        if t.addresses.is_empty() {
            let dns = t
                .dns
                .error
                .as_ref()
                .map_or_else(|| "no address".to_string(), |e| format!("dns {}", e.kind));
            let mut row = vec![t.target.clone(), dns];
            row.resize(columns, "-".into());
            rows.push(row);
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
    let mut widths = vec![0usize; columns];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    if let Some(width) = width {
        // Two spaces between columns; only the target column gives way.
        let others: usize = widths[1..].iter().map(|w| w + 2).sum();
        let room = width.saturating_sub(others + 2).max(MIN_TARGET);
        if widths[0] > room {
            widths[0] = room;
            for row in &mut rows {
                row[0] = shorten(&row[0], room);
            }
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, &w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    verdicts(report, width, &mut out);
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
/// Within `width`, the target is shortened and the reason wraps under the row.
fn verdicts(report: &Report, width: Option<usize>, out: &mut String) {
    let mut name_width = report
        .targets
        .iter()
        .map(|t| t.target.chars().count())
        .max()
        .unwrap_or(0);
    if let Some(w) = width {
        name_width = name_width.min((w / 3).max(MIN_TARGET));
    }
    for t in &report.targets {
        let mark = if t.verdict.pass { "PASS" } else { "FAIL" };
        let state = if t.verdict.reachable {
            "reachable via "
        } else {
            ""
        };
        let target = shorten(&t.target, name_width);
        let head = format!("{mark}  {target:<name_width$}  {state}{}:", t.verdict.path);
        match width {
            Some(w) if head.chars().count() + 1 + t.verdict.reason.chars().count() > w => {
                let _ = writeln!(out, "{head}");
                let indent = 6 + name_width + 2;
                for line in wrap(&t.verdict.reason, w.saturating_sub(indent).max(20)) {
                    let _ = writeln!(out, "{:indent$}{line}", "");
                }
            }
            _ => {
                let _ = writeln!(out, "{head} {}", t.verdict.reason);
            }
        }
        for d in &t.verdict.diagnoses {
            match width {
                Some(w) => {
                    let indent = 6 + name_width + 2;
                    for (i, line) in wrap(&d.message, w.saturating_sub(indent + 2).max(20))
                        .iter()
                        .enumerate()
                    {
                        let mark = if i == 0 { "! " } else { "  " };
                        let _ = writeln!(out, "{:indent$}{mark}{line}", "");
                    }
                }
                None => {
                    let _ = writeln!(out, "      {:<name_width$}  ! {}", "", d.message);
                }
            }
        }
        if let Some(p) = &t.verdict.predicted {
            let mark = if t.verdict.agrees == Some(false) {
                "config DISAGREES: "
            } else {
                "config: "
            };
            let text = format!("{mark}{}", p.says);
            match width {
                Some(w) => {
                    let indent = 6 + name_width + 2;
                    for line in wrap(&text, w.saturating_sub(indent).max(20)) {
                        let _ = writeln!(out, "{:indent$}{line}", "");
                    }
                }
                None => {
                    let _ = writeln!(out, "      {:<name_width$}  {text}", "");
                }
            }
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

/// `text` in at most `max` characters, its middle replaced by `…` when it is longer: the ends
/// of a host name (the service, the domain) say the most.
fn shorten(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max || max < 3 {
        return text.to_string();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let mut s: String = text.chars().take(head).collect();
    s.push('…');
    s.extend(text.chars().skip(n - tail));
    s
}

/// `text` in lines of at most `width` characters, broken at spaces (a word longer than the
/// width gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn address_row(name: String, a: &AddressReport) -> Vec<String> {
    let mut row = vec![name, a.ip.to_string(), a.class.to_string(), ping(&a.icmp)];
    row.extend(a.stages().iter().map(|s| {
        let code = if s.phase == Phase::Http {
            a.http.code
        } else {
            None
        };
        stage(s, code)
    }));
    row
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}ms")).unwrap_or_default()
}

/// A stage's cell: its time when it completed, its failure's kind when not; HTTP shows the
/// status code before either.
fn stage(s: &Stage<'_>, code: Option<u16>) -> String {
    let kind = s.error.map_or("fail", |e| e.kind.as_str());
    match (s.status, code) {
        (Status::Ok, Some(code)) => format!("{code} {}", ms(s.ms)),
        (Status::Ok, None) => format!("ok {}", ms(s.ms)),
        (Status::Fail, Some(code)) => format!("{code} {kind}"),
        (Status::Fail, None) => kind.to_string(),
        (Status::Skipped | Status::NotRun, _) => "-".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_target_is_shortened_in_the_middle() {
        let long = "https://cloudformation.ap-northeast-2.amazonaws.com/health";
        let short = shorten(long, 20);
        assert_eq!(short.chars().count(), 20);
        assert!(short.starts_with("https://c"), "{short}");
        assert!(short.ends_with("/health"), "{short}");
        assert!(short.contains('…'));
        assert_eq!(shorten("s3", 20), "s3");
    }

    #[test]
    fn a_reason_wraps_at_spaces_within_the_width() {
        let reason = "no address completed HTTPS: 10.10.1.5 (endpoint-eni) tcp timeout; 10.10.2.5 (endpoint-eni) tcp timeout";
        let lines = wrap(reason, 40);
        assert!(lines.len() > 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert_eq!(lines.join(" "), reason);
    }

    fn sample() -> Report {
        let mut r: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report.json")).unwrap();
        let t = &mut r.targets[0];
        t.target = format!(
            "https://{}.example.com/health",
            "a-long-service-name".repeat(4)
        );
        t.verdict.reason = "no address completed HTTPS: ".to_string()
            + &"10.10.1.5 (endpoint-eni) tcp timeout; ".repeat(6);
        r
    }

    #[test]
    fn on_a_terminal_every_line_fits_its_width() {
        let text = render_width(&sample(), Some(100));
        for line in text.lines().filter(|l| !l.contains(" targets pass ")) {
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(text.contains('…'), "{text}");
    }

    #[test]
    fn elsewhere_a_verdict_stays_on_one_line() {
        let r = sample();
        let text = render(&r);
        let t = &r.targets[0];
        assert!(
            text.lines()
                .any(|l| l.contains(&t.target) && l.ends_with(&t.verdict.reason)),
            "{text}"
        );
    }
}
