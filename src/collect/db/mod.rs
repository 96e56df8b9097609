//! The collector's database, behind one seam: SQLite in `--data` (the default: one file, WAL,
//! a commit synced before it returns) or PostgreSQL (`--database postgres://...`), which
//! several collectors share. Both hold the same tables, made by versioned migrations
//! ([`migrations`]); a report log of an older collector is imported once ([`import`]).
//!
//! Every report is a row keyed by its id, so a resent report is stored once whichever
//! collector it reaches; `cells` holds the newest report of each instance and target, which
//! retention keeps and the dashboard starts from. The alerts keep what each cell was told and
//! their outboxes in the same database ([`outbox`]), and the instance identities their keys
//! and nonces ([`keys`]).

pub mod hours;
pub mod import;
pub mod keys;
pub mod migrations;
pub mod outbox;
mod postgres;
mod sqlite;
mod tls;

pub use postgres::HORIZON_BEFORE_13;

use std::path::{Path, PathBuf};

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// It cannot be opened or reached.
    #[error("cannot open the database {what}: {detail}; {fix}")]
    Open {
        /// Which database.
        what: String,
        /// Why.
        detail: String,
        /// What to do.
        fix: &'static str,
    },
    /// A newer probe migrated it.
    #[error(
        "the database {what} is at schema version {found}, newer than this probe's {known}: run a probe at least as new as the one that wrote it"
    )]
    Newer {
        /// Which database.
        what: String,
        /// Its version.
        found: i64,
        /// The newest this probe knows.
        known: i64,
    },
    /// A query failed.
    #[error("{0}")]
    Query(String),
    /// The `--database` value is not one (shown without its password).
    #[error(
        "--database {0}: not a PostgreSQL URL; give postgres://USER:PASSWORD@HOST:PORT/NAME (or leave it out for SQLite in --data)"
    )]
    Url(String),
    /// The URL's TLS settings (`sslmode`, `sslrootcert`) cannot be followed.
    #[error("--database {what}: {detail}")]
    Tls {
        /// Which database.
        what: String,
        /// What is wrong, and the fix.
        detail: String,
    },
    /// A report log to import cannot be read or set aside.
    #[error("cannot import {}: {source}", path.display())]
    Import {
        /// The log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Query(format!("SQLite: {e}"))
    }
}

impl From<::postgres::Error> for DbError {
    fn from(e: ::postgres::Error) -> Self {
        Self::Query(format!("PostgreSQL: {}", postgres::describe(&e)))
    }
}

/// Where the reports are kept.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite: the file.
    Sqlite(PathBuf),
    /// PostgreSQL: the connection's settings.
    Postgres(Box<postgres::Target>),
}

/// One report as stored.
#[derive(Debug)]
pub struct Row<'a> {
    /// The report's id: stored once.
    pub id: &'a str,
    /// Its instance key (instance id, else host name).
    pub instance: &'a str,
    /// When it was made, milliseconds since 1970 (0 when its time does not parse).
    pub at_ms: i64,
    /// Its verdict for each target.
    pub targets: Vec<hours::Mark<'a>>,
    /// The document.
    pub doc: &'a str,
}

impl<'a> Row<'a> {
    /// The row of a report, under its instance key.
    #[must_use]
    pub fn of(entry: &'a super::entry::Entry, instance: &'a str) -> Self {
        let report = &entry.report;
        Self {
            id: &report.id,
            instance,
            at_ms: millis(&report.started_at),
            targets: report.targets.iter().map(hours::Mark::of).collect(),
            doc: entry.doc(),
        }
    }
}

/// A connection that can tell it was lost; every seam's ([`Engine`], [`outbox::Outbox`],
/// [`keys::Keys`]).
pub trait Connection: Send {
    /// The connection is known to be lost (the server restarted, or went away): open a new
    /// one.
    fn broken(&self) -> bool {
        false
    }

    /// Asks the server whether the connection still works (a round trip): after an error,
    /// the client may not have read yet that the server closed it.
    fn answers(&mut self) -> bool {
        true
    }
}

/// One connection through a seam, opened again before it is used once it was lost: a
/// PostgreSQL server that restarts (an upgrade, a failover) costs what was being done at
/// that moment an error, not the collector.
pub struct Healing<T: ?Sized> {
    conn: Box<T>,
    database: Database,
    open: fn(&Database) -> Result<Box<T>, DbError>,
    /// The last use failed: the next heal asks the server.
    doubt: bool,
}

impl<T: ?Sized + Connection> Healing<T> {
    /// `conn`, opened on `database` by `open`, which opens it again.
    pub fn new(
        conn: Box<T>,
        database: &Database,
        open: fn(&Database) -> Result<Box<T>, DbError>,
    ) -> Self {
        Self {
            conn,
            database: database.clone(),
            open,
            doubt: false,
        }
    }

    /// Opens the connection again if it was lost, or if it failed last and the server no
    /// longer answers on it; says whether it did.
    ///
    /// # Errors
    /// When it was lost and cannot be opened again (it is tried again next time).
    pub fn heal(&mut self) -> Result<bool, DbError> {
        let lost = self.conn.broken() || (self.doubt && !self.conn.answers());
        if !lost {
            self.doubt = false;
            return Ok(false);
        }
        self.conn = (self.open)(&self.database)?;
        self.doubt = false;
        Ok(true)
    }

    /// Runs `f` on the connection, opened again first if it was lost.
    ///
    /// # Errors
    /// As [`Healing::heal`], and `f`'s.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut T) -> Result<R, DbError>) -> Result<R, DbError> {
        self.heal()?;
        self.watch(f)
    }

    /// Runs `f` on the connection as it is, lost or not; when it fails, the next heal asks
    /// the server whether the connection still works.
    ///
    /// # Errors
    /// `f`'s.
    pub fn watch<R>(&mut self, f: impl FnOnce(&mut T) -> Result<R, DbError>) -> Result<R, DbError> {
        let result = f(self.conn.as_mut());
        self.doubt |= result.is_err();
        result
    }

    /// Where it goes.
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.database
    }
}

/// What a database does for the collector; one connection.
pub trait Engine: Connection {
    /// Stores the rows in one transaction, committed durably before it returns, each unless
    /// its id is stored already (a second copy in `rows` included); moves each cell's newest
    /// report. Gives each new row's sequence number, `None` for a copy. All or none: on an
    /// error nothing is stored.
    ///
    /// # Errors
    /// When the transaction fails.
    fn insert(&mut self, rows: &[Row<'_>]) -> Result<Vec<Option<i64>>, DbError>;

    /// Visits at most `limit` reports stored after `seq`, in the order they were stored.
    ///
    /// # Errors
    /// When the query fails.
    fn after(
        &mut self,
        seq: i64,
        limit: i64,
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError>;

    /// Visits the reports numbered within `ranges` (each from and to, both included), in
    /// order.
    ///
    /// # Errors
    /// When the query fails.
    fn within(
        &mut self,
        ranges: &[(i64, i64)],
        visit: &mut dyn FnMut(i64, &str),
    ) -> Result<(), DbError>;

    /// The transactions' horizon: the oldest transaction still running, and the next to
    /// begin (PostgreSQL's snapshot). A number a running transaction took may still commit
    /// below numbers already seen; once the oldest running is past the next of an earlier
    /// horizon, every transaction of that time has ended. `None` where one writer numbers
    /// in the order it commits (SQLite).
    ///
    /// # Errors
    /// When the query fails.
    fn horizon(&mut self) -> Result<Option<(i64, i64)>, DbError> {
        Ok(None)
    }

    /// Visits every cell's newest report, in the order stored.
    ///
    /// # Errors
    /// When the query fails.
    fn newest(&mut self, visit: &mut dyn FnMut(i64, &str)) -> Result<(), DbError>;

    /// Visits the last `n` reports stored, in the order stored.
    ///
    /// # Errors
    /// When the query fails.
    fn tail(&mut self, n: i64, visit: &mut dyn FnMut(i64, &str)) -> Result<(), DbError>;

    /// How many reports were ever stored (retention does not take them off).
    ///
    /// # Errors
    /// When the query fails.
    fn count(&mut self) -> Result<u64, DbError>;

    /// Visits the reports of `instance` made at `since_ms` or later, newest first, until
    /// `visit` says it has enough (false).
    ///
    /// # Errors
    /// When the query fails.
    fn history(
        &mut self,
        instance: &str,
        since_ms: i64,
        visit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), DbError>;

    /// Visits a cell's hours from `since_ms` on, the newest `limit`, newest first.
    ///
    /// # Errors
    /// When the query fails.
    fn hours(
        &mut self,
        instance: &str,
        target: &str,
        since_ms: i64,
        limit: i64,
        visit: &mut dyn FnMut(hours::Hour),
    ) -> Result<(), DbError>;

    /// Deletes the reports made before `before_ms`, then the oldest until the documents
    /// left fit in `bytes`, never the newest of a cell; with `before_ms`, the hours before
    /// [`hours::retained`] of it at `now_ms`. Returns how many reports went.
    ///
    /// # Errors
    /// When a query fails.
    fn retain(
        &mut self,
        before_ms: Option<i64>,
        bytes: Option<u64>,
        now_ms: i64,
    ) -> Result<u64, DbError>;

    /// The bytes of the documents stored.
    ///
    /// # Errors
    /// When the query fails.
    fn size(&mut self) -> Result<u64, DbError>;
}

impl Database {
    /// SQLite in `data`, unless `url` names PostgreSQL.
    ///
    /// # Errors
    /// [`DbError::Url`] when `url` is not a PostgreSQL URL.
    pub fn choose(data: &Path, url: Option<&str>) -> Result<Self, DbError> {
        match url {
            None => Ok(Self::Sqlite(data.join("probe.db"))),
            Some(url) => postgres::config(url),
        }
    }

    /// Opens a connection, creating or migrating the tables first when needed.
    ///
    /// # Errors
    /// When the database cannot be reached, opened or migrated.
    pub fn connect(&self) -> Result<Box<dyn Engine>, DbError> {
        self.open(true, |s| Box::new(s) as Box<dyn Engine>, |p| Box::new(p))
    }

    /// Opens a further connection to a database [`Database::connect`] has brought to this
    /// probe's version (the store's, opened first): migrations are not looked at again, so
    /// a history query does not queue behind the writer for the migrations' lock.
    ///
    /// # Errors
    /// When the database cannot be reached or opened.
    pub fn attach(&self) -> Result<Box<dyn Engine>, DbError> {
        self.open(false, |s| Box::new(s) as Box<dyn Engine>, |p| Box::new(p))
    }

    /// Opens a further connection for the alerts ([`outbox`]), as [`Database::attach`].
    ///
    /// # Errors
    /// When the database cannot be reached, opened or migrated.
    pub fn outbox(&self) -> Result<Box<dyn outbox::Outbox>, DbError> {
        self.open(
            false,
            |s| Box::new(s) as Box<dyn outbox::Outbox>,
            |p| Box::new(p),
        )
    }

    /// Opens a further connection for the instance identities ([`keys`]), as
    /// [`Database::attach`].
    ///
    /// # Errors
    /// When the database cannot be reached or opened.
    pub fn keys(&self) -> Result<Box<dyn keys::Keys>, DbError> {
        self.open(
            false,
            |s| Box::new(s) as Box<dyn keys::Keys>,
            |p| Box::new(p),
        )
    }

    /// One connection, as whichever seam `sqlite` or `postgres` makes of it.
    fn open<T>(
        &self,
        migrate: bool,
        sqlite: impl FnOnce(sqlite::Sqlite) -> T,
        postgres: impl FnOnce(postgres::Postgres) -> T,
    ) -> Result<T, DbError> {
        match self {
            Self::Sqlite(path) => Ok(sqlite(sqlite::Sqlite::open(
                path,
                &self.to_string(),
                migrate,
            )?)),
            Self::Postgres(target) => Ok(postgres(postgres::Postgres::open(target, migrate)?)),
        }
    }

    /// Whether other collectors may write to it too (their reports are followed).
    #[must_use]
    pub fn shared(&self) -> bool {
        matches!(self, Self::Postgres(..))
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(target) => write!(f, "{} ({})", target.shown, target.checked),
        }
    }
}

/// `at` (RFC 3339) in milliseconds since 1970; 0 when it does not parse.
#[must_use]
pub fn millis(at: &str) -> i64 {
    humantime::parse_rfc3339_weak(at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// Milliseconds since 1970 of a time, for the retention's cut-off.
#[must_use]
pub fn millis_of(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that is lost when told, or closed by the server without knowing it.
    struct Fake {
        lost: bool,
        closed: bool,
        opened: usize,
    }

    impl Connection for Fake {
        fn broken(&self) -> bool {
            self.lost
        }

        fn answers(&mut self) -> bool {
            self.lost |= self.closed;
            !self.closed
        }
    }

    fn fake(opened: usize) -> Fake {
        Fake {
            lost: false,
            closed: false,
            opened,
        }
    }

    #[allow(clippy::unnecessary_wraps)] // the signature Healing opens with
    fn open(_: &Database) -> Result<Box<Fake>, DbError> {
        Ok(Box::new(fake(2)))
    }

    fn unreachable(_: &Database) -> Result<Box<Fake>, DbError> {
        Err(DbError::Query("the server is down".into()))
    }

    fn opened(healing: &mut Healing<Fake>) -> usize {
        healing.with(|c| Ok(c.opened)).unwrap()
    }

    #[test]
    fn a_lost_connection_is_opened_again_before_it_is_used() {
        let database = Database::Sqlite(PathBuf::from("unused"));
        let mut healing = Healing::new(Box::new(fake(1)), &database, open);
        assert_eq!(opened(&mut healing), 1);
        healing
            .watch(|c| {
                c.lost = true;
                Ok(())
            })
            .unwrap();
        assert_eq!(opened(&mut healing), 2, "opened again");
        assert!(!healing.heal().unwrap(), "and kept");
        // A server still down: an error now, and a try again next time.
        let mut down = Healing::new(Box::new(fake(1)), &database, unreachable);
        down.watch(|c| {
            c.lost = true;
            Ok(())
        })
        .unwrap();
        assert!(down.with(|_| Ok(())).is_err());
        assert!(down.with(|_| Ok(())).is_err());
        assert!(down.watch(|c| Ok(c.lost)).unwrap());
    }

    #[test]
    fn a_connection_that_failed_is_asked_whether_it_still_works() {
        let database = Database::Sqlite(PathBuf::from("unused"));
        let mut healing = Healing::new(Box::new(fake(1)), &database, open);
        // The server closed it, and the client has not read that yet.
        let _ = healing.watch(|c| {
            c.closed = true;
            Err::<(), _>(DbError::Query("PANIC: no space left".into()))
        });
        assert_eq!(opened(&mut healing), 2, "asked, found closed, opened again");
        // An error on a connection that still works keeps it.
        let _ = healing.watch(|_| Err::<(), _>(DbError::Query("a constraint".into())));
        assert!(!healing.heal().unwrap());
        assert_eq!(opened(&mut healing), 2);
    }
}
