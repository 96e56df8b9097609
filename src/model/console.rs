//! The verdict line on the serial console: one target's verdict, marked, as compact JSON. The
//! agent writes it (`--console`, `-o console`); the collector reads it back from EC2
//! GetConsoleOutput. One type for both ends, like the report.

use super::{Expect, Path, Report};
use serde::{Deserialize, Serialize};

/// The marker that starts every verdict line.
pub const MARKER: &str = "probe.verdict/v1";

/// One verdict line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleLine {
    /// The report's id.
    pub id: String,
    /// The agent's host name.
    pub host: String,
    /// probe's version; older agents did not write it.
    #[serde(default)]
    pub version: Option<String>,
    /// The instance id, when the metadata gave it.
    #[serde(default)]
    pub instance: Option<String>,
    /// When the run started (RFC 3339).
    pub at: String,
    /// The target as given.
    pub target: String,
    /// The URL checked.
    pub url: String,
    /// The path found.
    pub path: Path,
    /// The expectation, when given.
    #[serde(default)]
    pub expected: Option<Expect>,
    /// Reached at all.
    pub reachable: bool,
    /// The expectation was met.
    pub pass: bool,
    /// The endpoint that carried the traffic.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl ConsoleLine {
    /// One line per target of `report`.
    #[must_use]
    pub fn of(report: &Report) -> Vec<Self> {
        let instance = report
            .agent
            .instance
            .as_ref()
            .and_then(|i| i.instance_id.clone());
        report
            .targets
            .iter()
            .map(|t| Self {
                id: report.id.clone(),
                host: report.agent.hostname.clone(),
                version: Some(report.agent.version.clone()),
                instance: instance.clone(),
                at: report.started_at.clone(),
                target: t.target.clone(),
                url: t.url.clone(),
                path: t.verdict.path,
                expected: t.verdict.expected,
                reachable: t.verdict.reachable,
                pass: t.verdict.pass,
                endpoint: t.verdict.endpoint_id.clone(),
            })
            .collect()
    }

    /// The line as written: the marker, a space, compact JSON.
    #[must_use]
    pub fn render(&self) -> String {
        // Plain fields with string keys: serializing cannot fail.
        format!(
            "{MARKER} {}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// The line in `raw` (console text may precede the marker), when it holds one that reads.
    /// `None` when there is no marker; `Some(Err)` when the line after it does not read.
    #[must_use]
    pub fn find(raw: &str) -> Option<Result<Self, serde_json::Error>> {
        let at = raw.find(MARKER)?;
        Some(serde_json::from_str(raw[at + MARKER.len()..].trim()))
    }
}
