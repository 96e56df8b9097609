//! Retention of the report log (`--retain`, `--retain-size`): the log is rewritten without
//! the reports older than the age, then without the oldest until it fits the size, but
//! always with the latest report of every instance and target, so the dashboard, the API's
//! latest verdicts and the change history survive it. The rewrite goes to a new file that
//! is synced and renamed over the log: a crash leaves the old log or the new, never half.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long and how much the log keeps; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Reports made longer ago than this go.
    pub age: Option<Duration>,
    /// The log is kept under this many bytes.
    pub bytes: Option<u64>,
}

impl Retention {
    /// Whether any limit is set.
    #[must_use]
    pub fn any(&self) -> bool {
        self.age.is_some() || self.bytes.is_some()
    }

    /// How often the age limit is applied: a tenth of the age, at least a second, at most
    /// an hour (the size limit is checked after every write).
    #[must_use]
    pub fn every(&self) -> Duration {
        self.age.map_or(Duration::from_secs(3600), |a| {
            (a / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
        })
    }
}

/// What a line says that retention needs.
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    started_at: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    agent: Agent<'a>,
    #[serde(borrow)]
    targets: Vec<Target<'a>>,
}

#[derive(serde::Deserialize)]
struct Agent<'a> {
    #[serde(borrow)]
    hostname: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    instance: Option<Instance<'a>>,
}

#[derive(serde::Deserialize)]
struct Instance<'a> {
    #[serde(default, borrow)]
    instance_id: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Target<'a> {
    #[serde(borrow)]
    target: std::borrow::Cow<'a, str>,
}

/// Rewrites the log at `path` under `r` as of `now`; returns (lines kept, lines dropped).
/// The caller reopens its handle on `path` afterwards.
///
/// # Errors
/// When the log cannot be read, or the new one written, synced or renamed.
pub fn apply(path: &Path, r: Retention, now: SystemTime) -> std::io::Result<(usize, usize)> {
    // First pass: each line's length, time, and whether it is the latest of an instance and
    // target.
    let mut lines: Vec<(u64, Option<SystemTime>)> = Vec::new();
    let mut latest: HashMap<(String, String), (String, usize)> = HashMap::new();
    let mut reader = BufReader::new(File::open(path)?);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        let index = lines.len();
        let parsed: Option<Line<'_>> = serde_json::from_slice(&buf).ok();
        let at = parsed
            .as_ref()
            .and_then(|l| humantime::parse_rfc3339_weak(&l.started_at).ok());
        if let Some(l) = parsed {
            let instance = l
                .agent
                .instance
                .and_then(|i| i.instance_id)
                .unwrap_or(l.agent.hostname)
                .into_owned();
            for t in l.targets {
                let key = (instance.clone(), t.target.into_owned());
                let newer = latest
                    .get(&key)
                    .is_none_or(|(when, _)| l.started_at.as_ref() >= when.as_str());
                if newer {
                    latest.insert(key, (l.started_at.to_string(), index));
                }
            }
        }
        lines.push((n as u64, at));
    }
    let mut pinned = vec![false; lines.len()];
    for (_, index) in latest.values() {
        pinned[*index] = true;
    }
    let cutoff = r.age.and_then(|a| now.checked_sub(a));
    let mut keep: Vec<bool> = lines
        .iter()
        .zip(&pinned)
        .map(|((_, at), pinned)| *pinned || cutoff.is_none_or(|c| at.is_some_and(|at| at >= c)))
        .collect();
    if let Some(limit) = r.bytes {
        let mut size: u64 = lines
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|((n, _), _)| n)
            .sum();
        // Oldest in the log first; the latest of each instance and target stays.
        for (i, (n, _)) in lines.iter().enumerate() {
            if size <= limit {
                break;
            }
            if keep[i] && !pinned[i] {
                keep[i] = false;
                size -= n;
            }
        }
    }
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return Ok((lines.len(), 0));
    }
    // Second pass: the kept lines into a new file, synced, renamed over the log.
    let tmp = path.with_extension("jsonl.retain");
    let mut out = std::io::BufWriter::new(File::create(&tmp)?);
    let mut reader = BufReader::new(File::open(path)?);
    for keep in &keep {
        buf.clear();
        reader.read_until(b'\n', &mut buf)?;
        if *keep {
            out.write_all(&buf)?;
        }
    }
    let file = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok((lines.len() - dropped, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, instance: &str, target: &str, at: &str) -> String {
        let text = include_str!("../../tests/fixtures/report.json");
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["id"] = id.into();
        v["started_at"] = at.into();
        v["agent"]["instance"]["instance_id"] = instance.into();
        v["targets"] = serde_json::json!([v["targets"][0].clone()]);
        v["targets"][0]["target"] = target.into();
        v.to_string() + "\n"
    }

    #[test]
    fn old_reports_go_but_the_latest_of_each_instance_and_target_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports.jsonl");
        let log = [
            line("a-old", "i-a", "s3", "2026-11-20T10:00:00Z"),
            line("b-only", "i-b", "s3", "2026-11-20T10:00:00Z"),
            line("a-new", "i-a", "s3", "2026-11-25T09:00:00Z"),
            line("a-cf", "i-a", "cloudformation", "2026-11-25T09:30:00Z"),
        ]
        .concat();
        std::fs::write(&path, &log).unwrap();
        let now = humantime::parse_rfc3339("2026-11-25T10:00:00Z").unwrap();
        let r = Retention {
            age: Some(Duration::from_secs(24 * 3600)),
            bytes: None,
        };
        assert_eq!(apply(&path, r, now).unwrap(), (3, 1));
        let kept = std::fs::read_to_string(&path).unwrap();
        assert!(!kept.contains("a-old"));
        assert!(kept.contains("b-only"), "the latest of i-b, however old");
        assert!(kept.contains("a-new") && kept.contains("a-cf"));

        // The size limit takes the oldest that are not the latest of anything.
        std::fs::write(&path, &log).unwrap();
        let r = Retention {
            age: None,
            bytes: Some(1),
        };
        assert_eq!(apply(&path, r, now).unwrap(), (3, 1));
        assert!(!std::fs::read_to_string(&path).unwrap().contains("a-old"));
    }
}
