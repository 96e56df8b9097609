//! Retention (`--retain`, `--retain-size`): the database deletes the reports older than the
//! age, then the oldest until the documents fit the size, but always keeps the latest report
//! of every instance and target, so the dashboard, the API's latest verdicts and the change
//! history survive it (the queries are in `db::migrations`, one transaction per pass).

use std::time::Duration;

/// How long and how much the database keeps; `None` is no limit.
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
