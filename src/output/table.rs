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
    let mut out = String::new();
    match width {
        Some(width) if !fit_columns(&mut rows, &mut widths, width) => {
            stacked(&rows, width, &mut out);
        }
        _ => columns_out(&rows, &widths, &mut out),
    }
    out.push('\n');
    verdicts(report, width, &mut out);
    let passed = report.targets.iter().filter(|t| t.verdict.pass).count();
    let summary = format!(
        "{} of {} targets pass · {:.2} s · {} · resolver {} · metadata {} · EC2 API {}",
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
    out.push('\n');
    put(&mut out, 0, &summary, width);
    out
}

/// Shortens the target column until the rows fit `width` (two spaces between columns; only
/// the target gives way, down to [`MIN_TARGET`]); false when they cannot fit even so.
fn fit_columns(rows: &mut [Vec<String>], widths: &mut [usize], width: usize) -> bool {
    let others: usize = widths[1..].iter().map(|w| w + 2).sum();
    if others + MIN_TARGET > width {
        return false;
    }
    let room = width - others;
    if widths[0] > room {
        widths[0] = room;
        for row in rows {
            row[0] = shorten(&row[0], room);
        }
    }
    true
}

fn columns_out(rows: &[Vec<String>], widths: &[usize], out: &mut String) {
    for row in rows {
        let mut line = String::new();
        for (cell, &w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The rows for a terminal too narrow for the columns (an IPv6 address and a few failures
/// take over 130): the target on a line of its own, each address under it, and its stages
/// named on the next line, wrapped.
fn stacked(rows: &[Vec<String>], width: usize, out: &mut String) {
    let Some((header, rows)) = rows.split_first() else {
        return;
    };
    for row in rows {
        if !row[0].is_empty() {
            put(out, 0, &shorten(&row[0], width), Some(width));
        }
        if row[2..].iter().all(|c| c == "-") {
            // No address: the row says why (`dns nxdomain`).
            put(out, 2, &row[1], Some(width));
            continue;
        }
        put(out, 2, &format!("{}  {}", row[1], row[2]), Some(width));
        let stages: Vec<String> = header
            .iter()
            .zip(row)
            .skip(3)
            .map(|(name, cell)| format!("{} {cell}", name.to_ascii_lowercase()))
            .collect();
        put(out, 4, &stages.join(" · "), Some(width));
    }
}

/// Writes `text` indented by `indent`: wrapped within `width` when given, else on one line.
fn put(out: &mut String, indent: usize, text: &str, width: Option<usize>) {
    match width {
        Some(w) => {
            for line in wrap(text, w.saturating_sub(indent).max(20)) {
                let _ = writeln!(out, "{:indent$}{line}", "");
            }
        }
        None => {
            let _ = writeln!(out, "{:indent$}{text}", "");
        }
    }
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
    let indent = 6 + name_width + 2;
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
                put(out, indent, &t.verdict.reason, width);
            }
            _ => {
                let _ = writeln!(out, "{head} {}", t.verdict.reason);
            }
        }
        for d in &t.verdict.diagnoses {
            // The first line marked, the lines it wraps into under its text.
            let mut lines = String::new();
            put(&mut lines, indent + 2, &d.message, width);
            let mut lines = lines.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(out, "{:indent$}! {}", "", first.trim_start());
            }
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(p) = &t.verdict.predicted {
            let mark = if t.verdict.agrees == Some(false) {
                "config DISAGREES: "
            } else {
                "config: "
            };
            put(out, indent, &format!("{mark}{}", p.says), width);
        }
        if !t.dns.cname.is_empty() {
            put(
                out,
                indent,
                &format!("CNAME {}", t.dns.cname.join(" -> ")),
                width,
            );
        }
        for a in &t.addresses {
            if let (Some(cert), Some(e)) = (&a.tls.cert, &a.tls.error) {
                let text = format!(
                    "{} certificate {}: names {}, issuer {}, valid until {}",
                    a.ip,
                    e.kind,
                    cert.names.join(" "),
                    cert.issuer,
                    cert.not_after
                );
                put(out, indent, &text, width);
            }
            if let Some(hint) = &a.icmp.hint {
                put(out, indent, &format!("ping skipped: {hint}"), width);
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

/// `text` in lines of at most `width` characters, broken at spaces; a word longer than the
/// width (a URL) is cut into pieces that fit.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let chars: Vec<char> = word.chars().collect();
        for piece in chars.chunks(width) {
            let piece: String = piece.iter().collect();
            if !line.is_empty() && line.chars().count() + 1 + piece.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&piece);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn address_row(name: String, a: &AddressReport) -> Vec<String> {
    let mut row = vec![name];
    row.extend(address_cells(a));
    row
}

/// An address's cells as the table shows them: the address, its class, ping, then each
/// connection stage (its time, or how it failed; HTTP with its status code). The collector's
/// cell page shows the same.
#[must_use]
pub fn address_cells(a: &AddressReport) -> Vec<String> {
    let mut row = vec![a.ip.to_string(), a.class.to_string(), ping(&a.icmp)];
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

    /// A dual-stack target whose stages failed: an IPv6 address and the failures' names
    /// make the columns wider than 100 whatever the target's length.
    fn dual_stack() -> Report {
        let mut r = sample();
        r.agent.hostname = "ip-10-10-1-5.eu-central-1.compute.internal".repeat(2);
        let t = &mut r.targets[0];
        let mut v6 = t.addresses[0].clone();
        v6.ip = "2a05:d014:1234:5678:9abc:def0:1234:5678".parse().unwrap();
        t.addresses.push(v6);
        r
    }

    fn assert_fits(text: &str, width: usize) {
        for line in text.lines() {
            assert!(
                line.chars().count() <= width,
                "{} columns: {line}\n{text}",
                line.chars().count()
            );
        }
    }

    #[test]
    fn on_a_terminal_every_line_fits_its_width() {
        let text = render_width(&sample(), Some(100));
        assert_fits(&text, 100);
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("TARGET"), "{text}");
    }

    #[test]
    fn columns_too_wide_for_the_terminal_are_stacked_under_their_target() {
        let r = dual_stack();
        let text = render_width(&r, Some(100));
        assert_fits(&text, 100);
        assert!(
            text.contains("2a05:d014:1234:5678:9abc:def0:1234:5678"),
            "{text}"
        );
        assert!(text.contains("tcp "), "{text}");
        assert!(!text.contains("TARGET"), "{text}");
        // Past the target column, the columns need more than 100 less the shortest target.
        let wide = render(&r);
        let header = wide.lines().next().unwrap();
        let rest = header.len() - header.find("ADDRESS").unwrap();
        assert!(
            rest + MIN_TARGET + 2 > 100,
            "the sample no longer needs stacking: {wide}"
        );
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
