//! What each cell was last told (`DATA/alerts/told.jsonl`): a line appended and synced for
//! every message written to the outboxes, so that a restart compares the next reports with
//! what was told, not with the store's newest verdict, which may be a change counted but not
//! yet told. Rewritten with one line per cell at each start, and whenever the lines appended
//! since outnumber the cells (and 10,000).

use super::rule::{Alert, State};
use crate::deliver::SpoolError;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Every cell's verdict last told, by (instance key, target).
pub type Cells = HashMap<(String, String), State>;

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    instance: String,
    target: String,
    #[serde(flatten)]
    told: State,
}

/// Lines appended before the log is compacted, at least.
const COMPACT_AFTER: usize = 10_000;

/// The told log of one data directory.
pub struct Told {
    path: PathBuf,
    /// What the file says (each cell's last line), and the lines appended since it was last
    /// rewritten; held while the file is written, so its lines and this agree.
    written: std::sync::Mutex<(Cells, usize)>,
}

impl Told {
    /// The log in `dir` (the alerts' directory).
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("told.jsonl"),
            written: std::sync::Mutex::new((Cells::new(), 0)),
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, (Cells, usize)> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failed(&self, source: std::io::Error) -> SpoolError {
        SpoolError {
            path: self.path.clone(),
            source,
        }
    }

    /// The log's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every cell's last told verdict; `None` when there is no log yet. A line that cannot
    /// be read (the torn end of a crash) is skipped.
    ///
    /// # Errors
    /// When the log exists and cannot be read.
    pub fn read(&self) -> std::io::Result<Option<Cells>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut cells = Cells::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if let Ok(l) = serde_json::from_str::<Line>(&line) {
                cells.insert((l.instance, l.target), l.told);
            }
        }
        Ok(Some(cells))
    }

    /// Appends what `alerts` told, synced; compacts the log when it has grown.
    ///
    /// # Errors
    /// When the log cannot be written.
    pub fn append(&self, alerts: &[Alert]) -> Result<(), SpoolError> {
        let mut text = Vec::new();
        for a in alerts {
            line(&mut text, &a.instance_key, &a.target, a.to);
        }
        let mut written = self.written();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.failed(e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.failed(e))?;
        let (cells, appended) = &mut *written;
        for a in alerts {
            cells.insert((a.instance_key.clone(), a.target.clone()), a.to);
        }
        *appended += alerts.len();
        if *appended > COMPACT_AFTER.max(cells.len()) {
            self.write_all(cells)?;
            *appended = 0;
        }
        Ok(())
    }

    /// Replaces the log with one line per cell, synced and renamed into place.
    ///
    /// # Errors
    /// When the log cannot be written.
    pub fn rewrite(&self, cells: &Cells) -> Result<(), SpoolError> {
        let mut written = self.written();
        self.write_all(cells)?;
        *written = (cells.clone(), 0);
        Ok(())
    }

    fn write_all(&self, cells: &Cells) -> Result<(), SpoolError> {
        let mut text = Vec::new();
        for ((instance, target), told) in cells {
            line(&mut text, instance, target, *told);
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.failed(e))
    }
}

fn line(out: &mut Vec<u8>, instance: &str, target: &str, told: State) {
    let l = Line {
        instance: instance.to_string(),
        target: target.to_string(),
        told,
    };
    if serde_json::to_writer(&mut *out, &l).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::alerts::rule::Event;
    use crate::model::Path as Route;

    fn alert(target: usize, pass: bool) -> Alert {
        let state = |pass| State {
            path: if pass { Route::Vpc } else { Route::Unreachable },
            pass,
        };
        Alert {
            event: if pass {
                Event::Recovered
            } else {
                Event::Failing
            },
            instance: "web (i-1)".into(),
            instance_key: "i-1".into(),
            target: format!("t{target}"),
            from: state(!pass),
            to: state(pass),
            reason: String::new(),
            at: "2026-12-05T10:00:00Z".into(),
            reports: 1,
        }
    }

    #[test]
    fn the_log_keeps_one_line_per_cell_once_it_has_grown() {
        let dir = tempfile::tempdir().unwrap();
        let told = Told::new(dir.path());
        let lines = || std::fs::read_to_string(dir.path().join("told.jsonl")).unwrap();
        for n in 0..COMPACT_AFTER {
            told.append(&[alert(n % 3, n % 2 == 0)]).unwrap();
        }
        assert_eq!(lines().lines().count(), COMPACT_AFTER, "not yet");
        told.append(&[alert(0, false)]).unwrap();
        assert_eq!(lines().lines().count(), 3, "{}", lines());
        let cells = Told::new(dir.path()).read().unwrap().unwrap();
        assert_eq!(cells.len(), 3);
        assert!(
            !cells[&("i-1".to_string(), "t0".to_string())].pass,
            "the last told"
        );
    }
}
