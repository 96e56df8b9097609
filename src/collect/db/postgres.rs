//! PostgreSQL, shared by several collectors: each keeps nothing of its own but what it can
//! read back. Migrations take an advisory lock, so collectors started together migrate once.

use super::hours::{self, Hour, Tally};
use super::migrations::{
    self, AFTER, CELL, COUNT, COUNTED, HISTORY, NEWEST, OLDER, OLDEST, REPORT, SIZE, TAIL,
};
use super::tls;
use super::{Database, DbError, Engine, Row};
use postgres::{Client, Config, NoTls};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// The reports numbered within the ranges from `$1[i]` to `$2[i]`, in order: one index
/// range scan per range.
const WITHIN: &str = "SELECT r.seq, r.doc FROM unnest($1::BIGINT[], $2::BIGINT[]) AS g (lo, hi)
    JOIN reports r ON r.seq BETWEEN g.lo AND g.hi ORDER BY r.seq";

/// The oldest transaction running and the next to begin, as 64-bit ids.
const HORIZON: &str = "SELECT CAST(CAST(pg_snapshot_xmin(s) AS TEXT) AS BIGINT),
    CAST(CAST(pg_snapshot_xmax(s) AS TEXT) AS BIGINT) FROM pg_current_snapshot() AS s";

/// The same before PostgreSQL 13, which names it otherwise (the same 64-bit ids).
pub const HORIZON_BEFORE_13: &str =
    "SELECT txid_snapshot_xmin(s), txid_snapshot_xmax(s) FROM txid_current_snapshot() AS s";

/// Any number the collectors agree on: the lock their migrations take.
const MIGRATION_LOCK: i64 = 0x7072_6f62_6501;
/// How long a connection that failed has to answer before it is taken as lost.
const ANSWER: std::time::Duration = std::time::Duration::from_secs(2);

/// One connection.
pub struct Postgres {
    pub(super) client: Client,
}

/// Where a PostgreSQL database is and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    config: Config,
    /// The TLS configuration; none when the URL turns TLS off.
    tls: Option<Arc<ClientConfig>>,
    /// How it is shown: `postgres://USER@HOST:PORT/NAME`, without a password.
    pub shown: String,
    /// What TLS checks, said beside it.
    pub checked: &'static str,
}

/// `url` as connection settings; a password is never shown.
pub fn config(url: &str) -> Result<Database, DbError> {
    let bad = || DbError::Url(crate::terminal::safe(&redact(url)).into_owned());
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad());
    }
    let (rest, wanted) = tls::split(url, &|| crate::terminal::safe(&redact(url)).into_owned())?;
    let mut config: Config = rest.parse().map_err(|_| bad())?;
    config.ssl_mode(wanted.ssl_mode());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // A server that stops answering must not hold the collector's writes for ever.
    config.options("-c statement_timeout=30000 -c idle_in_transaction_session_timeout=30000");
    config.application_name("probe collect");
    let shown = shown(&config);
    let tls = wanted.client(&shown)?;
    Ok(Database::Postgres(Box::new(Target {
        config,
        tls,
        shown,
        checked: wanted.describe(),
    })))
}

/// `url` with what stands before an `@` (a user and password) starred out.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// `postgres://USER@HOST:PORT/NAME`.
fn shown(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// A PostgreSQL error as one line: the server's message when it sent one.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl Postgres {
    /// Connects, and brings the tables to this probe's version when `migrate` asks.
    pub fn open(target: &Target, migrate: bool) -> Result<Self, DbError> {
        let connected = match &target.tls {
            None => target.config.connect(NoTls),
            Some(tls) => target
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (**tls).clone(),
                )),
        };
        let client = connected.map_err(|e| {
            let refusal = tls::refusal(&e);
            DbError::Open {
                what: format!("{} ({})", target.shown, target.checked),
                detail: match refusal {
                    Some(why) => format!("{}: {why}", describe(&e)),
                    None => describe(&e),
                },
                fix: if refusal.is_some() {
                    "give the CA that signed the server's certificate as sslrootcert=FILE in the URL (on RDS, its global-bundle.pem), or name the host the certificate names"
                } else {
                    "check that the server runs, the URL, and that the user may connect"
                },
            }
        })?;
        let mut db = Self { client };
        if migrate {
            db.migrate(&target.shown)?;
        }
        Ok(db)
    }

    fn migrate(&mut self, what: &str) -> Result<(), DbError> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(migrations::TABLE)?;
        let found: i64 = tx
            .query_one(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations",
                &[],
            )?
            .get(0);
        for (version, sql) in migrations::pending(migrations::POSTGRES_SEQ, found, what)? {
            tx.batch_execute(&sql)?;
            if version == migrations::HOURS {
                count_stored(&mut tx)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &migrations::now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Counts the reports stored before the hours were made into them, a portion at a time.
fn count_stored(tx: &mut postgres::Transaction<'_>) -> Result<(), DbError> {
    hours::say_counting(tx.query_one(hours::HOW_MANY, &[])?.get(0));
    let mut tally = Tally::default();
    let portal = tx.bind(hours::STORED, &[])?;
    loop {
        let rows = tx.query_portal(&portal, 500)?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            tally.add_doc(r.get(0), r.get(1), r.get(2));
        }
        if tally.len() >= hours::FLUSH {
            add(tx, &mut tally)?;
        }
    }
    add(tx, &mut tally)
}

/// Adds what `tally` holds to the hours, in its order.
fn add(tx: &mut postgres::Transaction<'_>, tally: &mut Tally) -> Result<(), DbError> {
    if tally.is_empty() {
        return Ok(());
    }
    let q = tx.prepare(hours::ADD)?;
    for (instance, target, h, newest) in tally.drain() {
        tx.execute(
            &q,
            &[
                &instance, &target, &h.hour_ms, &h.reports, &h.passed, &h.parted, &h.path, &newest,
            ],
        )?;
    }
    Ok(())
}

impl Postgres {
    /// Visits the (seq, doc) rows `sql` gives, a portion at a time: a large answer is not
    /// held whole in memory.
    fn each(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError> {
        self.each_until(sql, params, visit, &|| true)
    }

    /// [`Postgres::each`], stopping once `more` says false.
    fn each_until(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
        visit: &mut dyn FnMut(i64, &str),
        more: &dyn Fn() -> bool,
    ) -> Result<(), DbError> {
        let mut tx = self.client.transaction()?;
        let portal = tx.bind(sql, params)?;
        while more() {
            let rows = tx.query_portal(&portal, 500)?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                visit(r.get(0), r.get(1));
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Engine for Postgres {
    fn insert(&mut self, rows: &[Row<'_>]) -> Result<Vec<Option<i64>>, DbError> {
        let mut tx = self.client.transaction()?;
        let report = tx.prepare(REPORT)?;
        let mut stored = Vec::with_capacity(rows.len());
        let mut cells = Vec::new();
        let mut tally = Tally::default();
        for row in rows {
            let bytes = i64::try_from(row.doc.len()).unwrap_or(i64::MAX);
            let seq: Option<i64> = tx
                .query_opt(
                    &report,
                    &[&row.id, &row.instance, &row.at_ms, &bytes, &row.doc],
                )?
                .map(|r| r.get(0));
            if let Some(seq) = seq {
                for mark in &row.targets {
                    cells.push((row.instance, mark.target, row.at_ms, seq));
                    tally.add(row.instance, row.at_ms, mark);
                }
            }
            stored.push(seq);
        }
        // Cells locked in one order by every collector: two batches never wait on each other.
        cells.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let cell = tx.prepare(CELL)?;
        for (instance, target, at_ms, seq) in cells {
            tx.execute(&cell, &[&instance, &target, &at_ms, &seq])?;
        }
        add(&mut tx, &mut tally)?;
        let new = i64::try_from(stored.iter().flatten().count()).unwrap_or(i64::MAX);
        if new > 0 {
            tx.execute(COUNTED, &[&new])?;
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
        self.each(AFTER, &[&seq, &limit], visit)
    }

    fn within(
        &mut self,
        ranges: &[(i64, i64)],
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError> {
        let (from, to): (Vec<i64>, Vec<i64>) = ranges.iter().copied().unzip();
        self.each(WITHIN, &[&from, &to], visit)
    }

    fn horizon(&mut self) -> Result<Option<(i64, i64)>, DbError> {
        let row = match self.client.query_one(HORIZON, &[]) {
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_FUNCTION) => {
                self.client.query_one(HORIZON_BEFORE_13, &[])?
            }
            other => other?,
        };
        Ok(Some((row.get(0), row.get(1))))
    }

    fn newest(&mut self, visit: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
        self.each(NEWEST, &[], visit)
    }

    fn tail(&mut self, n: i64, visit: &mut dyn FnMut(i64, &str)) -> Result<(), DbError> {
        self.each(TAIL, &[&n], visit)
    }

    fn count(&mut self) -> Result<u64, DbError> {
        let n: i64 = self.client.query_one(COUNT, &[])?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn history(
        &mut self,
        instance: &str,
        since_ms: i64,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), DbError> {
        let more = std::cell::Cell::new(true);
        self.each_until(
            HISTORY,
            &[&instance, &since_ms],
            &mut |_, doc| {
                if more.get() {
                    more.set(visit(doc));
                }
            },
            &|| more.get(),
        )
    }

    fn hours(
        &mut self,
        instance: &str,
        target: &str,
        since_ms: i64,
        limit: i64,
        visit: &mut dyn FnMut(Hour),
    ) -> Result<(), DbError> {
        for r in self
            .client
            .query(hours::SINCE, &[&instance, &target, &since_ms, &limit])?
        {
            visit(Hour {
                hour_ms: r.get(0),
                reports: r.get(1),
                passed: r.get(2),
                parted: r.get(3),
                path: r.get(4),
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
        let mut tx = self.client.transaction()?;
        let mut dropped = 0;
        if let Some(before) = before_ms {
            dropped += tx.execute(OLDER, &[&before])?;
            tx.execute(hours::OLDER, &[&hours::retained(before, now_ms)])?;
        }
        if let Some(limit) = bytes {
            let size: i64 = tx.query_one(SIZE, &[])?.get(0);
            let excess = size - i64::try_from(limit).unwrap_or(i64::MAX);
            if excess > 0 {
                dropped += tx.execute(OLDEST, &[&excess])?;
            }
        }
        tx.commit()?;
        Ok(dropped)
    }

    fn size(&mut self) -> Result<u64, DbError> {
        let size: i64 = self.client.query_one(SIZE, &[])?.get(0);
        Ok(u64::try_from(size).unwrap_or(0))
    }
}

impl super::Connection for Postgres {
    fn broken(&self) -> bool {
        self.client.is_closed()
    }

    fn answers(&mut self) -> bool {
        self.client.is_valid(ANSWER).is_ok()
    }
}
