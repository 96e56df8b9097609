//! The collector's store: an append-only log of reports (one JSON line each), fsynced before
//! a report is acknowledged, with the writes of concurrent requests grouped into one fsync.
//! In memory: the latest verdict per instance and target, a bounded history of changes, the
//! latest reports, and the ids seen recently (for exactly-once storage of resent reports).

use super::entry::Entry;
use super::retention::Retention;
use crate::model::Report;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Report ids remembered for deduplication: a resend older than this many reports stores a
/// second copy. Bounded so memory stays flat however long the collector runs.
const DEDUP_IDS: usize = 250_000;
/// Latest reports kept in memory for `GET /v1/reports`.
const RECENT: usize = 1_000;
/// Why the store cannot open, or a report was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log cannot be opened.
    #[error("cannot open {}: {source}; check --data and its permissions", path.display())]
    Open {
        /// The log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file operation on the log or its directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread cannot start.
    #[error("cannot start the store writer: {0}")]
    Writer(std::io::Error),
    /// The writer thread is gone.
    #[error("the store writer has stopped")]
    Stopped,
    /// The write (or its fsync) failed; every report of the batch fails with it.
    #[error("cannot write the report to disk: {0}")]
    Write(String),
}

/// Verdict changes kept in memory for the dashboard.
const CHANGES: usize = 500;
/// Writes grouped into one fsync at most.
const GROUP: usize = 4_096;

/// What storing a report came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written and fsynced.
    New,
    /// A report with this id is stored already; nothing was written.
    Duplicate,
}

/// The latest verdict for one instance and target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cell {
    /// Path (`gateway-endpoint`, `unreachable`...).
    pub path: crate::model::Path,
    /// Reachable or not.
    pub reachable: bool,
    /// The expectation was met.
    pub pass: bool,
    /// When the report was made (RFC 3339).
    pub at: String,
    /// The path the configuration predicted, when it and the packets part.
    pub parted: Option<crate::model::Path>,
}

/// A verdict that changed between two reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Instance label.
    pub instance: String,
    /// Target as the agent named it.
    pub target: String,
    /// Previous path.
    pub from: crate::model::Path,
    /// New path.
    pub to: crate::model::Path,
    /// When the new report was made.
    pub at: String,
}

/// How an instance is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Its Name tag (else host name), with the instance id.
    pub label: String,
    /// Its subnet, when known.
    pub subnet: Option<String>,
    /// When its newest report was made (RFC 3339); empty before the first.
    pub last: String,
}

/// The terminal line for each verdict that changed.
pub fn print_changes(changes: &[Change]) {
    use crate::terminal::safe;
    for c in changes {
        println!(
            "{} {} -> {}: {} -> {}",
            safe(&c.at),
            safe(&c.instance),
            safe(&c.target),
            safe(c.from.as_str()),
            safe(c.to.as_str())
        );
    }
}

/// The last bootstrap line read from an instance's console (`probe.bootstrap/v1`, written
/// by the UserData's fetch service before probe runs there).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Bootstrap {
    /// `bootstrap` (the UserData itself) or `fetch` (the service).
    pub step: String,
    /// The fetch attempt, counted since the service started.
    #[serde(default)]
    pub attempt: Option<u64>,
    /// The source tried.
    #[serde(default)]
    pub source: Option<String>,
    /// `refused`, `dns`, `sha-mismatch`, `installed`...
    pub result: String,
    /// One line saying more.
    #[serde(default)]
    pub detail: String,
}

impl Bootstrap {
    /// Whether probe is in place: nothing left for the operator to look at.
    #[must_use]
    pub fn done(&self) -> bool {
        matches!(self.result.as_str(), "installed" | "up-to-date" | "ok")
    }
}

/// What the dashboard and the API read.
#[derive(Debug, Default)]
pub struct Views {
    /// Counts every change to the views, so a rendering can be reused until the next one.
    pub version: u64,
    /// The last bootstrap line of each instance whose console was read, with how it is
    /// shown; kept in memory only (the next reading brings it back).
    pub bootstraps: BTreeMap<String, (Host, Bootstrap)>,
    /// Latest verdict per (instance key, target); see [`instance_key`].
    pub matrix: BTreeMap<(String, String), Cell>,
    /// Each instance's label and subnet, by instance key.
    pub hosts: BTreeMap<String, Host>,
    /// Newest last.
    pub changes: VecDeque<Change>,
    /// Newest last.
    pub recent: VecDeque<Arc<Entry>>,
    /// Reports stored since start.
    pub stored: u64,
    /// Duplicates refused since start.
    pub duplicates: u64,
}

impl Views {
    fn apply(&mut self, entry: Entry) -> Vec<Change> {
        let report = &entry.report;
        let key = instance_key(report);
        let known = report.agent.instance.as_ref();
        let host = self.hosts.entry(key.clone()).or_default();
        // A Name tag, once learned, is not replaced by a report that does not carry it.
        if host.label.is_empty() || known.is_some_and(|i| i.name.is_some()) {
            host.label = instance_label(report);
        }
        if let Some(subnet) = known.and_then(|i| i.subnet_id.clone()) {
            host.subnet = Some(subnet);
        }
        if report.started_at > host.last {
            host.last.clone_from(&report.started_at);
        }
        self.version += 1;
        let instance = host.label.clone();
        let mut changes = Vec::new();
        for t in &report.targets {
            let cell = Cell {
                path: t.verdict.path,
                parted: parted(t),
                reachable: t.verdict.reachable,
                pass: t.verdict.pass,
                at: report.started_at.clone(),
            };
            let cell_key = (key.clone(), t.target.clone());
            if let Some(old) = self.matrix.get(&cell_key) {
                // Reports arrive out of order (a spool flushed late, a console read back
                // hours later): a cell keeps the newest verdict.
                if older(&cell.at, &old.at) {
                    continue;
                }
                if let Some((from, to)) = crate::verdict::moved(old.path, cell.path) {
                    changes.push(Change {
                        instance: instance.clone(),
                        target: t.target.clone(),
                        from,
                        to,
                        at: report.started_at.clone(),
                    });
                }
            }
            self.matrix.insert(cell_key, cell);
        }
        for c in &changes {
            if self.changes.len() == CHANGES {
                self.changes.pop_front();
            }
            self.changes.push_back(c.clone());
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Arc::new(entry));
        self.stored += 1;
        changes
    }
}

/// The path the configuration predicted for `t`, when it and the packets parted.
#[must_use]
pub fn parted(t: &crate::model::TargetReport) -> Option<crate::model::Path> {
    t.verdict
        .predicted
        .as_ref()
        .filter(|_| t.verdict.agrees == Some(false))
        .map(|p| p.path)
}

/// `a` is before `b`; times that do not parse are taken as they come.
#[must_use]
pub fn older(a: &str, b: &str) -> bool {
    match (
        humantime::parse_rfc3339_weak(a),
        humantime::parse_rfc3339_weak(b),
    ) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}

/// What identifies an instance across reports: its id, else its host name.
#[must_use]
pub fn instance_key(report: &Report) -> String {
    report
        .agent
        .instance
        .as_ref()
        .and_then(|i| i.instance_id.clone())
        .unwrap_or_else(|| report.agent.hostname.clone())
}

/// How an instance is shown: its Name tag, else its host name, with the instance id.
#[must_use]
pub fn instance_label(report: &Report) -> String {
    let instance = report.agent.instance.as_ref();
    let name = instance
        .and_then(|i| i.name.as_deref())
        .unwrap_or(&report.agent.hostname);
    match instance.and_then(|i| i.instance_id.as_deref()) {
        Some(id) if !name.contains(id) => format!("{name} ({id})"),
        _ => name.to_string(),
    }
}

/// Bounded set of recently seen ids.
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == DEDUP_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

struct Pending {
    entry: Entry,
    line: Vec<u8>,
    done: oneshot::Sender<Result<(Stored, Vec<Change>), StoreError>>,
}

/// The durable store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::SyncSender<Pending>,
    views: Arc<RwLock<Views>>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) `dir/reports.jsonl`, replays it into memory, cuts off a torn last
    /// line left by a crash, and starts the writer thread.
    ///
    /// # Errors
    /// A one-line message naming the directory or file and the problem.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Retention::default())
    }

    /// [`Store::open`], keeping the log within `retention` while it runs.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create the data directory", dir))?;
        let path = dir.join("reports.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let mut views = Views::default();
        let mut seen = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
        };
        let good = replay(&file, &mut views, &mut seen).map_err(io("read", &path))?;
        let len = file.metadata().map_err(io("read", &path))?.len();
        if good < len {
            tracing::warn!(
                "{}: cutting {} bytes of a torn last write",
                path.display(),
                len - good
            );
            file.set_len(good).map_err(io("repair", &path))?;
            file.sync_all().map_err(io("repair", &path))?;
        }
        file.seek(std::io::SeekFrom::End(0))
            .map_err(io("read", &path))?;
        let views = Arc::new(RwLock::new(views));
        let (tx, rx) = mpsc::sync_channel::<Pending>(GROUP);
        let shared = views.clone();
        let log = Log {
            path: path.clone(),
            retention,
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(file, &rx, &shared, seen, &log))
            .map_err(StoreError::Writer)?;
        Ok(Self { tx, views, path })
    }

    /// Stores a validated report as one line; returns once it is on disk (or known already).
    ///
    /// # Errors
    /// When the disk write or fsync fails: the report must not be acknowledged.
    pub async fn put(&self, entry: Entry) -> Result<(Stored, Vec<Change>), StoreError> {
        let line = entry.doc().as_bytes().to_vec();
        let (done, wait) = oneshot::channel();
        let tx = self.tx.clone();
        let pending = Pending { entry, line, done };
        // A full queue blocks; keep that off the async threads.
        tokio::task::spawn_blocking(move || tx.send(pending).map_err(|_| ()))
            .await
            .map_err(|_| StoreError::Stopped)?
            .map_err(|()| StoreError::Stopped)?;
        wait.await.map_err(|_| StoreError::Stopped)?
    }

    /// Records an instance's last bootstrap line; true when it differs from the one before.
    pub fn note_bootstrap(&self, key: &str, host: Host, line: Bootstrap) -> bool {
        let mut views = self
            .views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = views
            .bootstraps
            .get(key)
            .is_none_or(|(_, old)| *old != line);
        if changed {
            views.version += 1;
        }
        views.bootstraps.insert(key.to_string(), (host, line));
        changed
    }

    /// Read access to the views.
    pub fn views(&self) -> std::sync::RwLockReadGuard<'_, Views> {
        self.views
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The log file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Loads every complete line; returns the length of the intact prefix.
fn replay(file: &File, views: &mut Views, seen: &mut Seen) -> std::io::Result<u64> {
    let mut reader = BufReader::new(file);
    let mut good = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match Entry::parse(&line) {
            Ok(entry) => {
                seen.insert(&entry.report.id);
                views.apply(entry);
            }
            Err(e) => {
                tracing::warn!("skipping an unreadable stored line: {e:?}");
            }
        }
        good += n as u64;
    }
    Ok(good)
}

/// The log's path and how much of it to keep.
struct Log {
    path: PathBuf,
    retention: Retention,
}

/// Applies the retention when due: by size after a write that passed the limit, by age every
/// tenth of the age. Reopens `file` on the rewritten log.
fn retain(log: &Log, file: &mut File, committed: &mut u64, last: &mut (Instant, u64)) {
    let r = log.retention;
    let over = r
        .bytes
        .is_some_and(|b| *committed > b && *committed > last.1);
    let due = r.age.is_some() && last.0.elapsed() >= r.every();
    if !over && !due {
        return;
    }
    match super::retention::apply(&log.path, r, std::time::SystemTime::now()) {
        Ok((kept, dropped)) => {
            if dropped > 0 {
                match OpenOptions::new().append(true).open(&log.path) {
                    Ok(f) => *file = f,
                    Err(e) => {
                        tracing::warn!("retention: cannot reopen {}: {e}", log.path.display());
                    }
                }
                *committed = file.metadata().map_or(*committed, |m| m.len());
                tracing::info!("retention: {dropped} report(s) dropped from the log, {kept} kept");
            }
        }
        Err(e) => tracing::warn!("retention of {}: {e}", log.path.display()),
    }
    *last = (Instant::now(), *committed);
}

/// Takes every waiting write, appends them, fsyncs once, then answers them all.
fn writer(
    mut file: File,
    rx: &mpsc::Receiver<Pending>,
    views: &RwLock<Views>,
    mut seen: Seen,
    log: &Log,
) {
    let mut committed = file.metadata().map_or(0, |m| m.len());
    let mut last = (Instant::now(), committed);
    loop {
        if log.retention.any() {
            retain(log, &mut file, &mut committed, &mut last);
        }
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(p) => p,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut buf = Vec::new();
        let mut fresh = Vec::with_capacity(batch.len());
        let mut in_batch = HashSet::new();
        for p in batch {
            let copy = if seen.contains(&p.entry.report.id) {
                Copy::OnDisk
            } else if in_batch.insert(p.entry.report.id.clone()) {
                buf.extend_from_slice(&p.line);
                buf.push(b'\n');
                Copy::First
            } else {
                Copy::SameBatch
            };
            fresh.push((p, copy));
        }
        let result = if buf.is_empty() {
            Ok(())
        } else {
            file.write_all(&buf).and_then(|()| file.sync_data())
        };
        // Only what is on disk counts as seen: a failed write must be retried, not refused,
        // and must not leave half a line for the next write to land after.
        if result.is_ok() {
            committed += buf.len() as u64;
            for id in &in_batch {
                seen.insert(id);
            }
        } else {
            let _ = file.set_len(committed);
        }
        let mut views = views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (p, copy) in fresh {
            // "Already stored" only for what is on disk: a copy that shared a failed write
            // fails with it.
            let answer = match (&result, copy) {
                (Err(e), Copy::First | Copy::SameBatch) => Err(StoreError::Write(e.to_string())),
                (_, Copy::OnDisk) | (Ok(()), Copy::SameBatch) => {
                    views.duplicates += 1;
                    Ok((Stored::Duplicate, Vec::new()))
                }
                (Ok(()), Copy::First) => Ok((Stored::New, views.apply(p.entry))),
            };
            let _ = p.done.send(answer);
        }
    }
}

/// Where a posted report's id stands when its batch is written.
#[derive(Clone, Copy)]
enum Copy {
    /// Written before: on disk already.
    OnDisk,
    /// The first copy in this batch: this write stores it.
    First,
    /// Another copy in this batch: stored only if the write succeeds.
    SameBatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, path: &str) -> Entry {
        report_at(id, path, "2026-11-25T09:19:38.074Z")
    }

    fn report_at(id: &str, path: &str, at: &str) -> Entry {
        let text = include_str!("../../tests/fixtures/report.json");
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["id"] = id.into();
        v["started_at"] = at.into();
        v["targets"][0]["verdict"]["path"] = path.into();
        Entry::parse(v.to_string().as_bytes()).unwrap()
    }

    /// Issue 9, 5: with the disk full, concurrent posts of one id were grouped into the
    /// failed write, and the copies after the first were told "already stored".
    #[tokio::test]
    async fn every_copy_in_a_failed_write_fails_with_it() {
        let file = OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .expect("/dev/full");
        let (tx, rx) = mpsc::sync_channel::<Pending>(GROUP);
        let mut answers = Vec::new();
        // Both are queued before the writer starts, so they share one write.
        for _ in 0..2 {
            let entry = report("same-id", "public");
            let line = entry.doc().as_bytes().to_vec();
            let (done, wait) = oneshot::channel();
            tx.send(Pending { entry, line, done }).unwrap();
            answers.push(wait);
        }
        let views = Arc::new(RwLock::new(Views::default()));
        let shared = views.clone();
        let seen = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
        };
        let log = Log {
            path: PathBuf::from("/dev/full"),
            retention: Retention::default(),
        };
        let writer = std::thread::spawn(move || writer(file, &rx, &shared, seen, &log));
        for wait in answers {
            let answer = wait.await.unwrap();
            assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("cannot write the report to disk")),
                "{:?}",
                answer.map(|(s, _)| s)
            );
        }
        drop(tx);
        writer.join().unwrap();
        assert_eq!(views.read().unwrap().duplicates, 0);
    }

    #[tokio::test]
    async fn a_late_older_report_is_stored_but_does_not_turn_the_matrix_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let put = |id: &'static str, path: &'static str, at: &'static str| {
            let store = store.clone();
            async move { store.put(report_at(id, path, at)).await.unwrap() }
        };
        put("new", "gateway-endpoint", "2026-11-25T10:01:00.000Z").await;
        let (stored, changes) = put("old", "unreachable", "2026-11-25T10:00:00.000Z").await;
        assert_eq!(stored, Stored::New, "kept in the log all the same");
        assert!(changes.is_empty(), "{changes:?}");
        let v = store.views();
        let cell = v.matrix.values().next().unwrap();
        assert_eq!(cell.path, "gateway-endpoint");
        assert_eq!(v.stored, 2);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_and_everything_complete_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(
                store.put(report("a", "public")).await.unwrap().0,
                Stored::New
            );
            assert_eq!(
                store
                    .put(report("b", "interface-endpoint"))
                    .await
                    .unwrap()
                    .0,
                Stored::New
            );
            assert_eq!(
                store.put(report("a", "public")).await.unwrap().0,
                Stored::Duplicate
            );
        }
        let log = dir.path().join("reports.jsonl");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"schema\":\"probe.report/v1\",\"id\":\"torn")
            .unwrap();
        drop(f);
        let store = Store::open(dir.path()).unwrap();
        {
            let v = store.views();
            assert_eq!(v.stored, 2);
            assert_eq!(v.changes.len(), 1, "public -> interface-endpoint");
            assert_eq!(v.changes[0].to, "interface-endpoint");
        }
        assert!(std::fs::read_to_string(&log).unwrap().ends_with("}\n"));
        assert_eq!(
            store.put(report("b", "public")).await.unwrap().0,
            Stored::Duplicate,
            "ids survive a restart"
        );
        assert_eq!(
            store.put(report("c", "public")).await.unwrap().0,
            Stored::New
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
    }
}
