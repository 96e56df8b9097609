//! The schema, as numbered migrations: version N is the Nth entry, applied once, in a
//! transaction with its row in `schema_migrations`. A migration is never edited once
//! released; a change to the schema is a new entry, written for both engines.

/// The migrations (1: the reports and cells; 2: the alerts' verdicts told and outboxes; 3:
/// the enrolled keys, the nonces spent and the secret nonces are made with; 4: the keys
/// found by their id, so an enrolment finds the instance that holds it; 5: the reports
/// counted by the hour, [`super::hours`], which the engine fills from the reports stored
/// before, in the same transaction: [`HOURS`]), written once
/// for both engines: `{seq}` stands for the type of a column
/// that numbers rows in the order they are stored ([`SQLITE_SEQ`], [`POSTGRES_SEQ`]). Both
/// engines read BIGINT as a 64-bit integer.
pub const ALL: &[&str] = &[
    "
CREATE TABLE reports (
    seq {seq},
    id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX reports_instance_at ON reports (instance, at_ms);
CREATE INDEX reports_at ON reports (at_ms);
CREATE TABLE cells (
    instance TEXT NOT NULL,
    target TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (instance, target)
);
CREATE INDEX cells_seq ON cells (seq);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('stored', 0);
",
    "
CREATE TABLE alert_told (
    instance TEXT NOT NULL,
    target TEXT NOT NULL,
    path TEXT NOT NULL,
    pass BIGINT NOT NULL,
    PRIMARY KEY (instance, target)
);
CREATE TABLE alert_outbox (
    seq {seq},
    destination TEXT NOT NULL,
    body TEXT NOT NULL,
    lease_ms BIGINT NOT NULL
);
CREATE INDEX alert_outbox_destination ON alert_outbox (destination, seq);
",
    "
CREATE TABLE identities (
    instance TEXT PRIMARY KEY,
    key TEXT,
    key_id TEXT,
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    pending_time TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX identities_version ON identities (version);
CREATE TABLE enrol_spent (nonce TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL);
CREATE INDEX enrol_spent_expires ON enrol_spent (expires_ms);
CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO counters (name, value) VALUES ('identities', 0);
",
    "
CREATE INDEX identities_key_id ON identities (key_id);
",
    "
CREATE TABLE hours (
    instance TEXT NOT NULL,
    target TEXT NOT NULL,
    hour_ms BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    passed BIGINT NOT NULL,
    parted BIGINT NOT NULL,
    path TEXT NOT NULL,
    newest_ms BIGINT NOT NULL,
    PRIMARY KEY (instance, target, hour_ms)
);
CREATE INDEX hours_hour ON hours (hour_ms);
",
];

/// The migration that makes the hours, after which the reports stored before are counted.
pub const HOURS: i64 = 5;

/// SQLite's numbering column: the rowid, never reused.
pub const SQLITE_SEQ: &str = "INTEGER PRIMARY KEY AUTOINCREMENT";

/// PostgreSQL's numbering column.
pub const POSTGRES_SEQ: &str = "BIGSERIAL PRIMARY KEY";

/// Both engines' table of applied versions.
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    applied_at TEXT NOT NULL
)";

/// The migrations still to apply to a database at `found`, with their versions, written for
/// the engine whose numbering column is `seq`.
///
/// # Errors
/// [`super::DbError::Newer`] when a newer probe migrated it past what this one knows.
pub fn pending(
    seq: &str,
    found: i64,
    what: &str,
) -> Result<impl Iterator<Item = (i64, String)>, super::DbError> {
    let known = i64::try_from(ALL.len()).unwrap_or(i64::MAX);
    if found > known {
        return Err(super::DbError::Newer {
            what: what.to_string(),
            found,
            known,
        });
    }
    let sql = ALL.iter().map(move |m| m.replace("{seq}", seq));
    Ok((1..).zip(sql).skip(usize::try_from(found).unwrap_or(0)))
}

/// When a migration was applied, as stored.
#[must_use]
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The query that moves a cell to a newer report (the same in both engines).
pub const CELL: &str = "INSERT INTO cells (instance, target, at_ms, seq) VALUES ($1, $2, $3, $4)
    ON CONFLICT (instance, target) DO UPDATE SET at_ms = excluded.at_ms, seq = excluded.seq
    WHERE excluded.at_ms >= cells.at_ms";

/// The query that stores a report unless its id is stored (the same in both engines).
pub const REPORT: &str = "INSERT INTO reports (id, instance, at_ms, bytes, doc)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING seq";

/// Retention by age: reports made before `$1`, but a cell's newest.
pub const OLDER: &str =
    "DELETE FROM reports WHERE at_ms < $1 AND seq NOT IN (SELECT seq FROM cells)";

/// Retention by size: the oldest reports, but a cell's newest, whose bytes make up `$1`.
pub const OLDEST: &str = "DELETE FROM reports WHERE seq IN (
    SELECT seq FROM (
        SELECT seq, bytes, CAST(SUM(bytes) OVER (ORDER BY seq) AS BIGINT) AS run FROM reports
        WHERE seq NOT IN (SELECT seq FROM cells)
    ) AS oldest WHERE run - bytes < $1
)";

/// Reports stored after `$1`, in order, at most `$2`.
pub const AFTER: &str = "SELECT seq, doc FROM reports WHERE seq > $1 ORDER BY seq LIMIT $2";

/// The reports numbered from `$1` to `$2`, in order.
pub const BETWEEN: &str = "SELECT seq, doc FROM reports WHERE seq BETWEEN $1 AND $2 ORDER BY seq";

/// An instance's reports made at `$2` or later, newest first.
pub const HISTORY: &str = "SELECT seq, doc FROM reports WHERE instance = $1 AND at_ms >= $2
    ORDER BY at_ms DESC, seq DESC";

/// Every cell's newest report, in the order stored.
pub const NEWEST: &str =
    "SELECT seq, doc FROM reports WHERE seq IN (SELECT seq FROM cells) ORDER BY seq";

/// The last `$1` reports stored, in the order stored.
pub const TAIL: &str = "SELECT seq, doc FROM (
    SELECT seq, doc FROM reports ORDER BY seq DESC LIMIT $1
) AS tail ORDER BY seq";

/// How many reports were ever stored (a counter: a count of the rows would read them all).
pub const COUNT: &str = "SELECT value FROM counters WHERE name = 'stored'";

/// Counts `$1` more reports stored; the last statement of a transaction, so that collectors
/// sharing the database hold the counter's row for the shortest time.
pub const COUNTED: &str = "UPDATE counters SET value = value + $1 WHERE name = 'stored'";

/// The bytes stored.
pub const SIZE: &str = "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM reports";
