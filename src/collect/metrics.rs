//! `GET /metrics`: Prometheus text format, named in the style of blackbox_exporter.

use super::store::Views;
use std::fmt::Write;

/// Renders the latest verdicts and the collector's counters.
#[must_use]
pub fn render(v: &Views, dead_letters: Option<u64>) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "probe_success",
        "gauge",
        "Whether the target was reachable in the latest report (1) or not (0).",
    );
    for ((instance, target), cell) in &v.matrix {
        let _ = writeln!(
            out,
            "probe_success{{instance=\"{}\",target=\"{}\",path=\"{}\"}} {}",
            escape(instance),
            escape(target),
            escape(cell.path.as_str()),
            u8::from(cell.reachable)
        );
    }
    family(
        &mut out,
        "probe_expectation_met",
        "gauge",
        "Whether the latest verdict met the operator's expectation.",
    );
    for ((instance, target), cell) in &v.matrix {
        let _ = writeln!(
            out,
            "probe_expectation_met{{instance=\"{}\",target=\"{}\"}} {}",
            escape(instance),
            escape(target),
            u8::from(cell.pass)
        );
    }
    family(
        &mut out,
        "probe_duration_seconds",
        "gauge",
        "Wall time of the latest run of each instance.",
    );
    let mut latest = std::collections::BTreeMap::new();
    for e in &v.recent {
        latest.insert(super::store::instance_key(&e.report), e.report.duration_ms);
    }
    for (instance, ms) in latest {
        let _ = writeln!(
            out,
            "probe_duration_seconds{{instance=\"{}\"}} {:.3}",
            escape(&instance),
            std::time::Duration::from_millis(ms).as_secs_f64()
        );
    }
    family(
        &mut out,
        "probe_collector_reports_total",
        "counter",
        "Reports stored in the database, deleted by retention since or not.",
    );
    let _ = writeln!(out, "probe_collector_reports_total {}", v.stored);
    family(
        &mut out,
        "probe_collector_duplicates_total",
        "counter",
        "Resent reports refused as duplicates.",
    );
    let _ = writeln!(out, "probe_collector_duplicates_total {}", v.duplicates);
    if let Some(dead) = dead_letters {
        family(
            &mut out,
            "probe_relay_dead_letters_total",
            "counter",
            "Reports the upstream kept refusing, moved to DATA/forward/dead.",
        );
        let _ = writeln!(out, "probe_relay_dead_letters_total {dead}");
    }
    out
}

/// The HELP and TYPE lines that open a metric family.
pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, quote and newline.
pub(super) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
