//! Each report also counted into its hour, per instance and target, in the transaction that
//! stores it: how many reports, how many met the expectation, how many parted from the
//! configuration, and the newest one's path. A year at a report every 30 s is a million
//! reports an instance, some 4 TB kept whole for 1,000 instances; counted by the hour it is
//! 8,760 rows a cell, which a timeline reads at once and which outlive `--retain` (they go
//! after [`KEPT_MS`], or the age retention keeps, whichever is longer).

use crate::collect::entry::parted;
use crate::model::{Report, TargetReport};
use std::collections::BTreeMap;

/// An hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// How long hours are kept when `--retain` keeps reports less long: 400 days, a year and a
/// month to compare it with.
pub const KEPT_MS: i64 = 400 * 24 * HOUR_MS;

/// Adds a tally to its hour (the same in both engines). The SET's right-hand sides read the
/// row as it was, in both.
pub const ADD: &str = "INSERT INTO hours
    (instance, target, hour_ms, reports, passed, parted, path, newest_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (instance, target, hour_ms) DO UPDATE SET
    reports = hours.reports + excluded.reports,
    passed = hours.passed + excluded.passed,
    parted = hours.parted + excluded.parted,
    path = CASE WHEN excluded.newest_ms >= hours.newest_ms THEN excluded.path ELSE hours.path END,
    newest_ms = CASE WHEN excluded.newest_ms >= hours.newest_ms
        THEN excluded.newest_ms ELSE hours.newest_ms END";

/// A cell's hours from `$3` on, the newest `$4`, newest first.
pub const SINCE: &str = "SELECT hour_ms, reports, passed, parted, path FROM hours
    WHERE instance = $1 AND target = $2 AND hour_ms >= $3 ORDER BY hour_ms DESC LIMIT $4";

/// Hours before `$1`.
pub const OLDER: &str = "DELETE FROM hours WHERE hour_ms < $1";

/// The reports an upgrade counts into hours, in the order stored.
pub const STORED: &str = "SELECT instance, at_ms, doc FROM reports ORDER BY seq";

/// How many reports an upgrade counts.
pub const HOW_MANY: &str = "SELECT COUNT(*) FROM reports";

/// Says in the log that an upgrade counts `n` reports, which holds the start (a million
/// took 12 s on a 2-core machine).
pub fn say_counting(n: i64) {
    if n > 0 {
        tracing::warn!(
            "upgrade: counting the {n} stored report(s) into hours, once; the collector starts when that is done"
        );
    }
}

/// Hours a tally holds before an upgrade writes them out.
pub const FLUSH: usize = 50_000;

/// What the age retention deletes of the hours: those before `reports_before`, the reports'
/// limit, or before [`KEPT_MS`] ago, whichever is older.
#[must_use]
pub fn retained(reports_before: i64, now_ms: i64) -> i64 {
    reports_before.min(now_ms.saturating_sub(KEPT_MS))
}

/// A report's verdict for one target, as its hour counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark<'a> {
    /// The target.
    pub target: &'a str,
    /// The expectation was met.
    pub pass: bool,
    /// The configuration predicted another path.
    pub parted: bool,
    /// The path.
    pub path: &'static str,
}

impl<'a> Mark<'a> {
    /// The mark of `t`.
    #[must_use]
    pub fn of(t: &'a TargetReport) -> Self {
        Self {
            target: &t.target,
            pass: t.verdict.pass,
            parted: parted(t).is_some(),
            path: t.verdict.path.as_str(),
        }
    }
}

/// One hour of a cell, as stored and as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hour {
    /// Its start, milliseconds since 1970.
    pub hour_ms: i64,
    /// Reports made in it.
    pub reports: i64,
    /// Of them, those that met the expectation.
    pub passed: i64,
    /// Of them, those whose path the configuration did not predict.
    pub parted: i64,
    /// The newest one's path.
    pub path: String,
}

/// The hour `at_ms` falls in.
#[must_use]
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// What reports add to hours, summed per hour, in the order every collector writes them
/// (on PostgreSQL, two transactions then never wait on each other's rows).
#[derive(Debug, Default)]
pub struct Tally {
    hours: BTreeMap<(String, String, i64), (Hour, i64)>,
}

impl Tally {
    /// Counts one report's mark, made at `at_ms` by `instance`.
    pub fn add(&mut self, instance: &str, at_ms: i64, mark: &Mark<'_>) {
        let key = (
            instance.to_string(),
            mark.target.to_string(),
            hour_of(at_ms),
        );
        let (hour, newest) = self.hours.entry(key).or_insert_with(|| {
            (
                Hour {
                    hour_ms: hour_of(at_ms),
                    reports: 0,
                    passed: 0,
                    parted: 0,
                    path: String::new(),
                },
                i64::MIN,
            )
        });
        hour.reports += 1;
        hour.passed += i64::from(mark.pass);
        hour.parted += i64::from(mark.parted);
        if at_ms >= *newest {
            *newest = at_ms;
            mark.path.clone_into(&mut hour.path);
        }
    }

    /// Counts a stored document (an upgrade's); what is not a report counts nothing.
    pub fn add_doc(&mut self, instance: &str, at_ms: i64, doc: &str) {
        if let Ok(report) = serde_json::from_str::<Report>(doc) {
            for t in &report.targets {
                self.add(instance, at_ms, &Mark::of(t));
            }
        }
    }

    /// Hours held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.hours.len()
    }

    /// Nothing held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// Takes what is held, in order: (instance, target, the hour's sums, its newest time).
    pub fn drain(&mut self) -> impl Iterator<Item = (String, String, Hour, i64)> {
        std::mem::take(&mut self.hours)
            .into_iter()
            .map(|((instance, target, _), (hour, newest))| (instance, target, hour, newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark<'a>(target: &'a str, pass: bool, path: &'static str) -> Mark<'a> {
        Mark {
            target,
            pass,
            parted: !pass,
            path,
        }
    }

    #[test]
    fn reports_are_summed_by_cell_and_hour_with_the_newest_path() {
        let mut t = Tally::default();
        let ten: i64 = 1_764_583_200_000; // 2025-12-01T10:00:00Z
        t.add("i-a", ten + 60_000, &mark("s3", true, "gateway-endpoint"));
        t.add("i-a", ten + 30_000, &mark("s3", false, "public"));
        t.add("i-a", ten + HOUR_MS, &mark("s3", true, "gateway-endpoint"));
        t.add("i-b", ten, &mark("s3", true, "public"));
        let hours: Vec<_> = t.drain().collect();
        assert_eq!(hours.len(), 3);
        let (instance, target, first, newest) = &hours[0];
        assert_eq!((instance.as_str(), target.as_str()), ("i-a", "s3"));
        assert_eq!(
            (first.hour_ms, first.reports, first.passed, first.parted),
            (ten, 2, 1, 1)
        );
        assert_eq!(
            first.path, "gateway-endpoint",
            "the newest, not the last added"
        );
        assert_eq!(*newest, ten + 60_000);
        assert_eq!(hours[1].2.hour_ms, ten + HOUR_MS);
        assert_eq!(hours[2].0, "i-b");
        assert!(t.is_empty());
    }

    #[test]
    fn an_hour_starts_on_the_hour_before_1970_too() {
        assert_eq!(hour_of(HOUR_MS + 1), HOUR_MS);
        assert_eq!(hour_of(-1), -HOUR_MS);
    }

    #[test]
    fn hours_outlive_a_shorter_age_retention() {
        let now = 1_000 * KEPT_MS;
        assert_eq!(retained(now - 7 * 24 * HOUR_MS, now), now - KEPT_MS);
        assert_eq!(retained(now - 2 * KEPT_MS, now), now - 2 * KEPT_MS);
    }
}
