//! The collector's store: reports in the database ([`super::db`]), each committed before it
//! is acknowledged, the writes of concurrent requests grouped into one transaction, and each
//! stored once by its id. In memory, rebuilt from the database at the start: the latest
//! verdict per instance and target, a bounded history of changes and the latest reports.
//! With a shared database, what other collectors store is followed into these views.

use super::db::{Database, DbError, Engine, Healing, Row};
use super::entry::Entry;
use super::repeated::Repeated;
use super::retention::Retention;
use crate::model::Report;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Latest reports kept in memory for `GET /v1/reports`.
const RECENT: usize = 1_000;
/// Reports read from the database per query when the views are rebuilt or followed.
const PAGE: i64 = 10_000;
/// Reports replayed at the start for the recent changes and reports; older ones count only
/// as their cells' newest verdicts.
const TAIL: i64 = 20_000;
/// How often a shared database is read for what other collectors stored.
const FOLLOW: Duration = Duration::from_millis(500);
/// How long a number not seen below the highest is looked for at least, whatever the
/// database's horizon says (a transaction may take its number an instant before its id).
const GAP_FLOOR: Duration = Duration::from_secs(10);
/// How long without a horizon (the database cannot tell which transactions run).
const GAP_CEILING: Duration = Duration::from_secs(120);
/// The most gaps looked for at once; past it, the oldest is given up, and said.
const GAPS: usize = 65_536;

/// Why the store cannot open, or a report was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be made.
    #[error("cannot create the data directory {}: {source}; check --data and its permissions", path.display())]
    Data {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database cannot be used.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The writer thread cannot start.
    #[error("cannot start the store writer: {0}")]
    Writer(std::io::Error),
    /// The writer thread is gone.
    #[error("the store writer has stopped")]
    Stopped,
    /// The transaction failed; every report of the batch fails with it.
    #[error("cannot store the report: {0}")]
    Write(String),
}

/// Verdict changes kept in memory for the dashboard.
const CHANGES: usize = 500;
/// Reports grouped into one transaction at most.
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
    /// Reports ever stored in the database.
    pub stored: u64,
    /// Duplicates refused since start.
    pub duplicates: u64,
}

impl Views {
    /// Takes a stored report: its verdicts into the matrix, its changes, the latest reports.
    fn apply(&mut self, entry: Entry) -> Vec<Change> {
        let changes = self.place(&entry.report);
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

    /// Puts a report's verdicts in the matrix where they are the newest; returns the
    /// verdicts that changed.
    fn place(&mut self, report: &Report) -> Vec<Change> {
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
        changes
    }
}

pub use super::entry::parted;

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

pub use super::entry::instance_key;

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

/// Sequence numbers already in the views, so that a follow applies each report once, and
/// the gaps below the highest: numbers another collector's transaction took before later
/// ones committed, which it may still commit (or it rolled back, or a resend's conflict used
/// the number up). A gap is looked for until every transaction that ran when it was noticed
/// has ended ([`Engine::horizon`]), and for [`GAP_FLOOR`] at least.
#[derive(Default)]
struct Applied {
    /// The highest applied.
    high: i64,
    /// Whether gaps are tracked: only a store other collectors write to has them.
    follows: bool,
    /// Ranges not seen yet, in order.
    gaps: VecDeque<Gap>,
    /// The horizon at the end of the last follow.
    horizon: Option<(i64, i64)>,
}

/// Numbers `from..=to`, not seen yet.
#[derive(Debug, Clone, Copy)]
struct Gap {
    from: i64,
    to: i64,
    noticed: Instant,
    /// The next transaction id at the first horizon after it was noticed: the transaction
    /// holding these numbers, if any, is older.
    before: Option<i64>,
}

impl Applied {
    fn new(follows: bool) -> Self {
        Self {
            follows,
            ..Self::default()
        }
    }

    /// Remembers `seq`: a number past the highest opens a gap below it; one within a gap
    /// closes that part of it.
    fn mark(&mut self, seq: i64) {
        if !self.follows {
            self.high = self.high.max(seq);
            return;
        }
        if seq > self.high {
            if seq > self.high + 1 {
                self.gaps.push_back(Gap {
                    from: self.high + 1,
                    to: seq - 1,
                    noticed: Instant::now(),
                    before: None,
                });
                if self.gaps.len() > GAPS {
                    if let Some(lost) = self.gaps.pop_front() {
                        tracing::warn!(
                            "more than {GAPS} gaps in the reports' numbers: reports {}..={} are no longer looked for (restart to read them)",
                            lost.from,
                            lost.to
                        );
                    }
                }
            }
            self.high = seq;
            return;
        }
        let i = self.gaps.partition_point(|g| g.to < seq);
        if self.gaps.get(i).is_none_or(|g| g.from > seq) {
            return;
        }
        let gap = self.gaps[i];
        match (seq == gap.from, seq == gap.to) {
            (true, true) => {
                self.gaps.remove(i);
            }
            (true, false) => self.gaps[i].from = seq + 1,
            (false, true) => self.gaps[i].to = seq - 1,
            (false, false) => {
                self.gaps[i].to = seq - 1;
                self.gaps.insert(
                    i + 1,
                    Gap {
                        from: seq + 1,
                        ..gap
                    },
                );
            }
        }
    }

    /// The gaps' ranges, to read.
    fn ranges(&self) -> Vec<(i64, i64)> {
        self.gaps.iter().map(|g| (g.from, g.to)).collect()
    }

    /// Gives up the gaps whose transactions have all ended by the last horizon (so what
    /// they committed was read since), then takes `now` as the horizon.
    fn settle(&mut self, now: Option<(i64, i64)>) {
        let oldest_running = self.horizon.map(|(oldest, _)| oldest);
        self.gaps.retain(|g| {
            let age = g.noticed.elapsed();
            let ended = match (g.before, oldest_running) {
                (Some(before), Some(oldest)) => oldest >= before,
                _ => age >= GAP_CEILING,
            };
            !(ended && age >= GAP_FLOOR)
        });
        if let Some((_, next)) = now {
            for g in self.gaps.iter_mut().filter(|g| g.before.is_none()) {
                g.before = Some(next);
            }
        }
        self.horizon = now;
    }
}

struct Pending {
    entry: Entry,
    done: oneshot::Sender<Result<(Stored, Vec<Change>), StoreError>>,
}

/// Where the writer sends the reports other collectors stored, once someone asks for them.
type Followers = Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Report>>>>;

/// Reports followed from other collectors waiting to be taken; the writer waits past it.
const FOLLOWED: usize = 4_096;

/// The durable store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::SyncSender<Pending>,
    views: Arc<RwLock<Views>>,
    database: Arc<Database>,
    followers: Followers,
}

impl Store {
    /// Opens (or creates) the SQLite database in `data`; see [`Store::open_with`].
    ///
    /// # Errors
    /// A one-line message naming the directory or database and the problem.
    pub fn open(data: &Path) -> Result<Self, StoreError> {
        Self::open_with(data, Database::choose(data, None)?, Retention::default())
    }

    /// Opens `database` (migrating it), imports `data`'s report log when an older collector
    /// left one, rebuilds the views from what is stored, and starts the writer thread, which
    /// keeps the reports within `retention`.
    ///
    /// # Errors
    /// A one-line message naming the directory or database and the problem.
    pub fn open_with(
        data: &Path,
        database: Database,
        retention: Retention,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data).map_err(|source| StoreError::Data {
            path: data.to_path_buf(),
            source,
        })?;
        let mut db = database.connect()?;
        if let Some(done) = super::db::import::log(db.as_mut(), data)? {
            tracing::warn!(
                "imported the report log of {} into {database}: {} stored, {} known already, {} unreadable; it is kept as reports.jsonl.imported",
                data.display(),
                done.stored,
                done.known,
                done.skipped
            );
        }
        let mut views = Views::default();
        let mut applied = Applied::new(database.shared());
        load(db.as_mut(), &mut views, &mut applied, TAIL)?;
        let views = Arc::new(RwLock::new(views));
        let (tx, rx) = mpsc::sync_channel::<Pending>(GROUP);
        let shared = views.clone();
        let follows = database.shared();
        let followers = Followers::default();
        let to = followers.clone();
        let db = Healing::new(db, &database, Database::attach);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let mut w = Writer {
                    db,
                    retention,
                    applied,
                    follows,
                    followers: to,
                    lost: Repeated::default(),
                    unread: Repeated::default(),
                };
                w.run(&rx, &shared);
            })
            .map_err(StoreError::Writer)?;
        Ok(Self {
            tx,
            views,
            database: Arc::new(database),
            followers,
        })
    }

    /// The reports other collectors store from now on, as they are followed; `None` when
    /// the database is this collector's alone. One receiver at a time: a new one replaces
    /// the last.
    #[must_use]
    pub fn follow(&self) -> Option<tokio::sync::mpsc::Receiver<Report>> {
        if !self.database.shared() {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(FOLLOWED);
        *self
            .followers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        Some(rx)
    }

    /// Stores a validated report; returns once it is committed (or known already).
    ///
    /// # Errors
    /// When the transaction fails: the report must not be acknowledged.
    pub async fn put(&self, entry: Entry) -> Result<(Stored, Vec<Change>), StoreError> {
        let (done, wait) = oneshot::channel();
        let pending = Pending { entry, done };
        match self.tx.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(StoreError::Stopped),
            // Only a full queue waits, and off the async threads: a blocking thread for
            // every report would cost more than the report's own work.
            Err(mpsc::TrySendError::Full(pending)) => {
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || tx.send(pending).map_err(|_| ()))
                    .await
                    .map_err(|_| StoreError::Stopped)?
                    .map_err(|()| StoreError::Stopped)?;
            }
        }
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

    /// Where the reports are.
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.database
    }
}

/// Visits every stored report in the order it was stored, from a connection of its own
/// (a blocking call).
///
/// # Errors
/// When the database cannot be reached or read.
pub fn each(database: &Database, visit: &mut dyn FnMut(Entry)) -> Result<(), StoreError> {
    let mut db = database.connect()?;
    pages(db.as_mut(), 0, &mut |_, entry| {
        if let Some(entry) = entry {
            visit(entry);
        }
    })?;
    Ok(())
}

/// A stored document as a report; one that no longer parses is said and skipped.
fn parsed(doc: &str) -> Option<Entry> {
    Entry::stored(doc.as_bytes())
        .inspect_err(|e| tracing::warn!("skipping an unreadable stored report: {e:?}"))
        .ok()
}

/// Visits every report stored after `from`, a page at a time, in the order stored (`None`
/// for one that no longer parses).
fn pages(
    db: &mut dyn Engine,
    mut from: i64,
    visit: &mut dyn FnMut(i64, Option<Entry>),
) -> Result<(), DbError> {
    loop {
        let mut last = from;
        db.after(from, PAGE, &mut |seq, doc| {
            last = seq;
            visit(seq, parsed(doc));
        })?;
        if last == from {
            return Ok(());
        }
        from = last;
    }
}

/// Builds the views at the start from the last `tail` reports (the recent changes and
/// reports) and every cell's newest report: the time it takes grows with the instances and
/// targets, not with the history kept.
fn load(
    db: &mut dyn Engine,
    views: &mut Views,
    applied: &mut Applied,
    tail: i64,
) -> Result<(), DbError> {
    let count = db.count()?;
    let mut first = None;
    db.tail(tail, &mut |seq, doc| {
        if first.is_none() {
            // What was stored before the tail is no gap.
            first = Some(seq);
            applied.high = applied.high.max(seq - 1);
        }
        applied.mark(seq);
        if let Some(entry) = parsed(doc) {
            views.apply(entry);
        }
    })?;
    let first = first.unwrap_or(i64::MAX);
    db.newest(&mut |seq, doc| {
        // The tail's are in already.
        if let Some(entry) = (seq < first).then(|| parsed(doc)).flatten() {
            views.place(&entry.report);
        }
    })?;
    views.stored = count;
    Ok(())
}

/// Applies to `views` what is stored and not applied yet: the reports that came into the
/// gaps below the highest applied, then those after it. Returns them when `keep` asks.
fn follow(
    db: &mut dyn Engine,
    views: &mut Views,
    applied: &mut Applied,
    keep: bool,
) -> Result<Vec<Report>, DbError> {
    let mut followed = Vec::new();
    let mut apply = |applied: &mut Applied, seq: i64, entry: Option<Entry>| {
        applied.mark(seq);
        if let Some(entry) = entry {
            if keep {
                followed.push(entry.report.clone());
            }
            views.apply(entry);
        }
    };
    let mut found = Vec::new();
    if !applied.gaps.is_empty() {
        db.within(&applied.ranges(), &mut |seq, doc| {
            found.push((seq, parsed(doc)));
        })?;
    }
    for (seq, entry) in found {
        apply(applied, seq, entry);
    }
    pages(db, applied.high, &mut |seq, entry| {
        apply(applied, seq, entry);
    })?;
    let now = db.horizon()?;
    applied.settle(now);
    Ok(followed)
}

/// The thread that owns the writing connection.
struct Writer {
    db: Healing<dyn Engine>,
    retention: Retention,
    applied: Applied,
    /// Other collectors write to the database too.
    follows: bool,
    followers: Followers,
    /// The connection cannot be opened again.
    lost: Repeated,
    /// What other collectors stored cannot be read.
    unread: Repeated,
}

impl Writer {
    /// Takes every waiting report, stores them in one transaction, then answers them all.
    fn run(&mut self, rx: &mpsc::Receiver<Pending>, views: &RwLock<Views>) {
        let mut size = self.size();
        let mut retained = (Instant::now(), size);
        let mut followed = Instant::now();
        let wait = if self.follows {
            FOLLOW
        } else {
            Duration::from_secs(1)
        };
        loop {
            self.heal();
            if self.retention.any() {
                self.retain(&mut size, &mut retained);
            }
            if self.follows && followed.elapsed() >= FOLLOW {
                let mut v = views
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let keep = self
                    .followers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_some();
                let applied = &mut self.applied;
                let reports = self.db.watch(|c| follow(c, &mut v, applied, keep));
                drop(v);
                match reports {
                    Ok(reports) => {
                        self.unread.clear();
                        self.pass_on(reports);
                    }
                    Err(e) => {
                        if let Some(more) = self.unread.due(Instant::now()) {
                            tracing::warn!("cannot read what other collectors stored: {e}{more}");
                        }
                    }
                }
                followed = Instant::now();
            }
            let first = match rx.recv_timeout(wait) {
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
            size += self.store(batch, views);
        }
    }

    /// Opens the connection again when it was lost: a PostgreSQL server restarted (an
    /// upgrade, a failover) costs the reports sent meanwhile a 503 each, not the collector.
    /// Says whether it opened a new one.
    fn heal(&mut self) -> bool {
        match self.db.heal() {
            Ok(false) => false,
            Ok(true) => {
                tracing::warn!(
                    "the connection to {} was lost; connected again",
                    self.db.database()
                );
                self.lost.clear();
                self.unread.clear();
                true
            }
            Err(e) => {
                if let Some(more) = self.lost.due(Instant::now()) {
                    tracing::warn!("the connection to the database was lost: {e}{more}");
                }
                false
            }
        }
    }

    /// Gives the reports other collectors stored to whoever follows them (the alerts),
    /// waiting while they are behind: a report is never skipped.
    fn pass_on(&self, reports: Vec<Report>) {
        let follower = self
            .followers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(follower) = follower else {
            return;
        };
        for report in reports {
            if follower.blocking_send(report).is_err() {
                return;
            }
        }
    }

    /// Stores one batch and answers it; returns the bytes stored.
    fn store(&mut self, batch: Vec<Pending>, views: &RwLock<Views>) -> u64 {
        let keys: Vec<String> = batch
            .iter()
            .map(|p| instance_key(&p.entry.report))
            .collect();
        let rows: Vec<Row<'_>> = batch
            .iter()
            .zip(&keys)
            .map(|(p, k)| Row::of(&p.entry, k))
            .collect();
        let mut result = self.db.watch(|c| c.insert(&rows));
        if result.is_err() && self.heal() {
            // The server closed the connection (it restarted while this one sat idle): once
            // more on the new one. A row the failed try did commit is found stored.
            result = self.db.watch(|c| c.insert(&rows));
        }
        drop(rows);
        let mut views = views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut bytes = 0;
        match result {
            Ok(seqs) => {
                for (p, seq) in batch.into_iter().zip(seqs) {
                    let answer = if let Some(seq) = seq {
                        self.applied.mark(seq);
                        bytes += p.entry.doc().len() as u64;
                        Ok((Stored::New, views.apply(p.entry)))
                    } else {
                        views.duplicates += 1;
                        Ok((Stored::Duplicate, Vec::new()))
                    };
                    let _ = p.done.send(answer);
                }
            }
            Err(e) => {
                let e = e.to_string();
                for p in batch {
                    let _ = p.done.send(Err(StoreError::Write(e.clone())));
                }
            }
        }
        bytes
    }

    /// The bytes stored, when a size limit needs them.
    fn size(&mut self) -> u64 {
        if self.retention.bytes.is_none() {
            return 0;
        }
        self.db.watch(super::db::Engine::size).unwrap_or_else(|e| {
            tracing::warn!("retention: {e}");
            0
        })
    }

    /// Applies the retention when due: by size after a write that passed the limit, by age
    /// every tenth of the age.
    fn retain(&mut self, size: &mut u64, last: &mut (Instant, u64)) {
        let r = self.retention;
        let over = r.bytes.is_some_and(|b| *size > b && *size > last.1);
        let due = r.age.is_some() && last.0.elapsed() >= r.every();
        if !over && !due {
            return;
        }
        let now = std::time::SystemTime::now();
        let before = r
            .age
            .and_then(|a| now.checked_sub(a))
            .map(super::db::millis_of);
        let now = super::db::millis_of(now);
        match self.db.watch(|c| c.retain(before, r.bytes, now)) {
            Ok(0) => {}
            Ok(dropped) => tracing::info!("retention: {dropped} report(s) deleted"),
            Err(e) => tracing::warn!("retention: {e}"),
        }
        *size = self.size();
        *last = (Instant::now(), *size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_open_past_the_highest_and_close_as_their_numbers_come() {
        let mut a = Applied::new(true);
        a.mark(3);
        assert_eq!(
            a.ranges(),
            [(1, 2)],
            "an empty store's first numbers may come late"
        );
        a.mark(1);
        a.mark(2);
        // load() starts past what was stored before the tail it reads.
        a.high = 9;
        a.mark(10);
        assert!(a.gaps.is_empty());
        a.mark(11);
        a.mark(20);
        a.mark(30);
        assert_eq!(a.ranges(), [(12, 19), (21, 29)]);
        a.mark(12);
        a.mark(19);
        a.mark(15);
        assert_eq!(a.ranges(), [(13, 14), (16, 18), (21, 29)]);
        for seq in [13, 14, 16, 17, 18, 21, 22, 23, 24, 25, 26, 27, 28, 29] {
            a.mark(seq);
        }
        assert!(a.gaps.is_empty());
        assert_eq!(a.high, 30);
        // A store of one collector's alone numbers in the order it commits: no gaps.
        let mut alone = Applied::new(false);
        alone.mark(1);
        alone.mark(50);
        assert!(alone.gaps.is_empty());
    }

    #[test]
    fn a_gap_is_given_up_once_every_transaction_of_its_time_has_ended() {
        let long_ago = Instant::now().checked_sub(GAP_FLOOR * 2).unwrap();
        let mut a = Applied::new(true);
        a.mark(1);
        a.mark(5);
        assert_eq!(a.ranges(), [(2, 4)]);
        a.gaps[0].noticed = long_ago;
        // The first horizon: transactions 100 and later had not begun.
        a.settle(Some((90, 100)));
        assert_eq!(a.ranges(), [(2, 4)], "transaction 90 may hold them");
        a.settle(Some((99, 120)));
        assert_eq!(a.ranges(), [(2, 4)], "still");
        // The horizon of the last follow is what the reads since were made after.
        a.settle(Some((100, 130)));
        assert_eq!(
            a.ranges(),
            [(2, 4)],
            "the reads after (99, 120) came before 99 ended"
        );
        a.settle(Some((131, 140)));
        assert!(a.gaps.is_empty(), "every transaction of its time has ended");
        // Never before GAP_FLOOR, and without a horizon only after GAP_CEILING.
        a.mark(9);
        a.settle(Some((200, 210)));
        a.settle(Some((300, 310)));
        assert_eq!(a.ranges(), [(6, 8)], "too young to give up");
        a.gaps[0].noticed = Instant::now().checked_sub(GAP_CEILING * 2).unwrap();
        a.gaps[0].before = None;
        a.settle(None);
        assert!(a.gaps.is_empty());
    }

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

    /// A database whose every transaction fails, as a full disk makes them.
    struct Failing;

    impl crate::collect::db::Connection for Failing {}

    impl Engine for Failing {
        fn insert(&mut self, _: &[Row<'_>]) -> Result<Vec<Option<i64>>, DbError> {
            Err(DbError::Query("database or disk is full".into()))
        }
        fn after(&mut self, _: i64, _: i64, _: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
            Ok(())
        }
        fn within(
            &mut self,
            _: &[(i64, i64)],
            _: &mut dyn FnMut(i64, &str),
        ) -> Result<(), DbError> {
            Ok(())
        }
        fn newest(&mut self, _: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
            Ok(())
        }
        fn tail(&mut self, _: i64, _: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
            Ok(())
        }
        fn count(&mut self) -> Result<u64, DbError> {
            Ok(0)
        }
        fn history(
            &mut self,
            _: &str,
            _: i64,
            _: &mut dyn FnMut(&str) -> bool,
        ) -> Result<(), DbError> {
            Ok(())
        }
        fn hours(
            &mut self,
            _: &str,
            _: &str,
            _: i64,
            _: i64,
            _: &mut dyn FnMut(super::super::db::hours::Hour),
        ) -> Result<(), DbError> {
            Ok(())
        }
        fn retain(&mut self, _: Option<i64>, _: Option<u64>, _: i64) -> Result<u64, DbError> {
            Ok(0)
        }
        fn size(&mut self) -> Result<u64, DbError> {
            Ok(0)
        }
    }

    /// Issue 9, 5: with the disk full, concurrent posts of one id were grouped into the
    /// failed write, and the copies after the first were told "already stored".
    #[tokio::test]
    async fn every_copy_in_a_failed_write_fails_with_it() {
        let (tx, rx) = mpsc::sync_channel::<Pending>(GROUP);
        let mut answers = Vec::new();
        // Both are queued before the writer starts, so they share one transaction.
        for _ in 0..2 {
            let (done, wait) = oneshot::channel();
            let entry = report("same-id", "public");
            tx.send(Pending { entry, done }).unwrap();
            answers.push(wait);
        }
        let views = Arc::new(RwLock::new(Views::default()));
        let shared = views.clone();
        let writer = std::thread::spawn(move || {
            let mut w = Writer {
                db: Healing::new(
                    Box::new(Failing),
                    &Database::Sqlite(PathBuf::from("unused")),
                    Database::attach,
                ),
                retention: Retention::default(),
                applied: Applied::default(),
                follows: false,
                followers: Followers::default(),
                lost: Repeated::default(),
                unread: Repeated::default(),
            };
            w.run(&rx, &shared);
        });
        for wait in answers {
            let answer = wait.await.unwrap();
            assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("disk is full")),
                "{:?}",
                answer.map(|(s, _)| s)
            );
        }
        drop(tx);
        writer.join().unwrap();
        let v = views.read().unwrap();
        assert_eq!((v.duplicates, v.stored), (0, 0));
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
        assert_eq!(stored, Stored::New, "stored all the same");
        assert!(changes.is_empty(), "{changes:?}");
        let v = store.views();
        let cell = v.matrix.values().next().unwrap();
        assert_eq!(cell.path, "gateway-endpoint");
        assert_eq!(v.stored, 2);
    }

    /// The start reads the newest report of each cell and a tail of the rest: its matrix is
    /// the one a replay of every report makes, however short the tail.
    #[tokio::test]
    async fn the_views_at_the_start_are_those_of_a_full_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, path, at) in [
            ("1", "gateway-endpoint", "2026-11-25T10:00:00Z"),
            ("2", "unreachable", "2026-11-25T10:05:00Z"),
            ("3", "public", "2026-11-25T10:01:00Z"),
            ("4", "interface-endpoint", "2026-11-25T09:00:00Z"),
        ] {
            let mut entry = report_at(id, path, at);
            // Two instances, so that one's newest lies outside a short tail.
            if id == "2" {
                entry.report.agent.hostname = "other".into();
                entry.report.agent.instance = None;
                entry.sync();
            }
            store.put(entry).await.unwrap();
        }
        let database = store.database().clone();
        let full = store.views().matrix.clone();
        drop(store);
        for tail in [1, 2, 10] {
            let mut db = database.connect().unwrap();
            let mut views = Views::default();
            load(db.as_mut(), &mut views, &mut Applied::default(), tail).unwrap();
            assert_eq!(views.matrix, full, "tail {tail}");
            assert_eq!(views.stored, 4);
            assert_eq!(views.recent.len(), usize::try_from(tail.min(4)).unwrap());
        }
    }

    /// The upgrade: an older collector's log is imported once, without its torn last line,
    /// and the ids it held are still refused as duplicates.
    #[tokio::test]
    async fn an_older_collectors_log_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("reports.jsonl");
        let lines: String = [
            report("a", "public"),
            report("b", "interface-endpoint"),
            report("a", "public"),
        ]
        .iter()
        .map(|e| e.doc().to_string() + "\n")
        .collect();
        std::fs::write(
            &log,
            lines + "{\"schema\":\"probe.report/v1\",\"id\":\"torn",
        )
        .unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let v = store.views();
            assert_eq!(v.stored, 2);
            assert_eq!(v.changes.len(), 1, "public -> interface-endpoint");
            assert_eq!(v.changes[0].to, "interface-endpoint");
        }
        assert!(!log.exists(), "set aside");
        assert!(dir.path().join("reports.jsonl.imported").exists());
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.views().stored, 2, "not imported twice");
        assert_eq!(
            store.put(report("b", "public")).await.unwrap().0,
            Stored::Duplicate,
            "ids survive the import and a restart"
        );
        assert_eq!(
            store.put(report("c", "public")).await.unwrap().0,
            Stored::New
        );
        let mut ids = Vec::new();
        each(store.database(), &mut |e| ids.push(e.report.id)).unwrap();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
