//! SQLite, embedded: one file in `--data`, in WAL mode with `synchronous=FULL`, so a commit
//! is on disk when it returns.

use super::hours::{self, Hour, Tally};
use super::migrations::{
    self, AFTER, BETWEEN, CELL, COUNT, COUNTED, HISTORY, NEWEST, OLDER, OLDEST, SIZE, TAIL,
};
use super::{DbError, Engine, Row};
use rusqlite::{Connection, params};
use std::path::Path;

/// [`migrations::REPORT`] without its `RETURNING`, whose rows SQLite makes as a trigger's:
/// with it, every insert of a transaction of many kept a statement journal (a copy of each
/// page it changed, in memory, allocated and freed each time). The new row's number is the
/// connection's last rowid.
const REPORT: &str = "INSERT INTO reports (id, instance, at_ms, bytes, doc)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";

/// One connection to the file.
pub struct Sqlite {
    pub(super) conn: Connection,
}

impl Sqlite {
    /// Opens (or creates) the file, and brings its tables to this probe's version when
    /// `migrate` asks.
    pub fn open(path: &Path, what: &str, migrate: bool) -> Result<Self, DbError> {
        let conn = Connection::open(path).map_err(|e| DbError::Open {
            what: what.to_string(),
            detail: e.to_string(),
            fix: "check --data and its permissions",
        })?;
        // A second connection (a history query) waits for the writer instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Open {
                what: what.to_string(),
                detail: format!("it stays in journal mode {mode}, not WAL"),
                fix: "put --data on a local file system",
            });
        }
        // FULL: a commit's WAL frames are synced before it returns (NORMAL would lose the
        // last commits to a power cut). A larger cache and fewer, larger checkpoints keep
        // the indexes' pages in memory and the copying out of the commits' way.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4096",
        )?;
        let mut db = Self { conn };
        if migrate {
            db.migrate(what)?;
        }
        Ok(db)
    }

    fn migrate(&mut self, what: &str) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(migrations::TABLE)?;
        let found: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        for (version, sql) in migrations::pending(migrations::SQLITE_SEQ, found, what)? {
            tx.execute_batch(&sql)?;
            if version == migrations::HOURS {
                count_stored(&tx)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                params![version, migrations::now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Counts the reports stored before the hours were made into them.
fn count_stored(tx: &rusqlite::Transaction<'_>) -> Result<(), DbError> {
    hours::say_counting(tx.query_row(hours::HOW_MANY, [], |r| r.get(0))?);
    let mut tally = Tally::default();
    let mut q = tx.prepare(hours::STORED)?;
    let mut rows = q.query([])?;
    while let Some(r) = rows.next()? {
        let instance: String = r.get(0)?;
        let doc: String = r.get(2)?;
        tally.add_doc(&instance, r.get(1)?, &doc);
        if tally.len() >= hours::FLUSH {
            add(tx, &mut tally)?;
        }
    }
    add(tx, &mut tally)
}

/// Adds what `tally` holds to the hours.
fn add(tx: &rusqlite::Transaction<'_>, tally: &mut Tally) -> Result<(), DbError> {
    let mut q = tx.prepare_cached(hours::ADD)?;
    for (instance, target, h, newest) in tally.drain() {
        q.execute(params![
            instance, target, h.hour_ms, h.reports, h.passed, h.parted, h.path, newest
        ])?;
    }
    Ok(())
}

impl Sqlite {
    /// Visits the (seq, doc) rows `sql` gives.
    fn each(
        &mut self,
        sql: &str,
        params: impl rusqlite::Params,
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError> {
        let mut q = self.conn.prepare_cached(sql)?;
        let mut rows = q.query(params)?;
        while let Some(r) = rows.next()? {
            let doc: String = r.get(1)?;
            visit(r.get(0)?, &doc);
        }
        Ok(())
    }
}

/// A file is not lost as a server's connection is.
impl super::Connection for Sqlite {}

impl Engine for Sqlite {
    fn insert(&mut self, rows: &[Row<'_>]) -> Result<Vec<Option<i64>>, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut stored = Vec::with_capacity(rows.len());
        let mut cells = Vec::new();
        let mut tally = Tally::default();
        {
            let mut report = tx.prepare_cached(REPORT)?;
            for row in rows {
                let bytes = i64::try_from(row.doc.len()).unwrap_or(i64::MAX);
                let new =
                    report.execute(params![row.id, row.instance, row.at_ms, bytes, row.doc])? == 1;
                let seq = new.then(|| tx.last_insert_rowid());
                if let Some(seq) = seq {
                    for mark in &row.targets {
                        cells.push((row.instance, mark.target, row.at_ms, seq));
                        tally.add(row.instance, row.at_ms, mark);
                    }
                }
                stored.push(seq);
            }
            let mut cell = tx.prepare_cached(CELL)?;
            for (instance, target, at_ms, seq) in cells {
                cell.execute(params![instance, target, at_ms, seq])?;
            }
            add(&tx, &mut tally)?;
            let new = stored.iter().flatten().count();
            if new > 0 {
                tx.prepare_cached(COUNTED)?
                    .execute(params![i64::try_from(new).unwrap_or(i64::MAX)])?;
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    fn after(
        &mut self,
        seq: i64,
        limit: i64,
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError> {
        self.each(AFTER, params![seq, limit], visit)
    }

    fn within(
        &mut self,
        ranges: &[(i64, i64)],
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError> {
        for (from, to) in ranges {
            self.each(BETWEEN, params![from, to], visit)?;
        }
        Ok(())
    }

    fn newest(&mut self, visit: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
        self.each(NEWEST, params![], visit)
    }

    fn tail(&mut self, n: i64, visit: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
        self.each(TAIL, params![n], visit)
    }

    fn count(&mut self) -> Result<u64, DbError> {
        let n: i64 = self.conn.query_row(COUNT, [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn history(
        &mut self,
        instance: &str,
        since_ms: i64,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), DbError> {
        let mut q = self.conn.prepare_cached(HISTORY)?;
        let mut rows = q.query(params![instance, since_ms])?;
        while let Some(r) = rows.next()? {
            let doc: String = r.get(1)?;
            if !visit(&doc) {
                break;
            }
        }
        Ok(())
    }

    fn hours(
        &mut self,
        instance: &str,
        target: &str,
        since_ms: i64,
        limit: i64,
        visit: &mut dyn FnMut(Hour),
    ) -> Result<(), DbError> {
        let mut q = self.conn.prepare_cached(hours::SINCE)?;
        let mut rows = q.query(params![instance, target, since_ms, limit])?;
        while let Some(r) = rows.next()? {
            visit(Hour {
                hour_ms: r.get(0)?,
                reports: r.get(1)?,
                passed: r.get(2)?,
                parted: r.get(3)?,
                path: r.get(4)?,
            });
        }
        Ok(())
    }

    fn retain(
        &mut self,
        before_ms: Option<i64>,
        bytes: Option<u64>,
        now_ms: i64,
    ) -> Result<u64, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut dropped = 0;
        if let Some(before) = before_ms {
            dropped += tx.execute(OLDER, params![before])?;
            tx.execute(hours::OLDER, params![hours::retained(before, now_ms)])?;
        }
        if let Some(limit) = bytes {
            let size: i64 = tx.query_row(SIZE, [], |r| r.get(0))?;
            let excess = size - i64::try_from(limit).unwrap_or(i64::MAX);
            if excess > 0 {
                dropped += tx.execute(OLDEST, params![excess])?;
            }
        }
        tx.commit()?;
        Ok(dropped as u64)
    }

    fn size(&mut self) -> Result<u64, DbError> {
        let size: i64 = self.conn.query_row(SIZE, [], |r| r.get(0))?;
        Ok(u64::try_from(size).unwrap_or(0))
    }
}
