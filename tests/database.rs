//! The collector's database on both engines: SQLite in `--data` (the default) and a real
//! PostgreSQL server started by the test (`support::postgres`). The same contract for both;
//! kill -9 under load on both; a full disk on both, and a full write-ahead log on PostgreSQL;
//! several collectors sharing PostgreSQL.

mod support;

use probe::auth::Token;
use probe::collect::db::hours::{Hour, Mark};
use probe::collect::db::{Database, DbError, Engine, Row, millis};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use support::collector::{
    Collector, TOKEN, exported, get, post, post_signed, sample_report, signed, token_file,
};
use support::postgres::Postgres;

fn row<'a>(id: &'a str, instance: &'a str, at: &str, target: &'a str, doc: &'a str) -> Row<'a> {
    Row {
        id,
        instance,
        at_ms: millis(at),
        targets: vec![Mark {
            target,
            pass: true,
            parted: false,
            path: "public",
        }],
        doc,
    }
}

fn ids(db: &mut dyn Engine) -> Vec<String> {
    let mut out = Vec::new();
    db.after(0, 1_000, &mut |_, doc| out.push(doc.to_string()))
        .unwrap();
    out
}

/// When the contract's retention runs: hours are kept 400 days, whatever the reports'.
const NOW: i64 = 1_796_169_600_000; // 2026-12-02T00:00:00Z

/// A cell's hours, newest first: when each starts, and its reports.
fn hours(db: &mut dyn Engine, instance: &str, target: &str) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    db.hours(instance, target, 0, 100, &mut |h| {
        out.push((h.hour_ms, h.reports));
    })
    .unwrap();
    out
}

/// The contract's cell `i-a` x `s3` has three hours of a report each: the copies were not
/// counted, and the retention of reports leaves them.
fn counted_once(db: &mut dyn Engine) {
    assert_eq!(
        hours(db, "i-a", "s3"),
        [
            (millis("2026-11-25T09:00:00Z"), 1),
            (millis("2026-11-21T10:00:00Z"), 1),
            (millis("2026-11-20T10:00:00Z"), 1)
        ],
        "newest first"
    );
}

/// A cell's hours in full, newest first.
fn hours_in_full(db: &mut dyn Engine, instance: &str, target: &str) -> Vec<Hour> {
    let mut out = Vec::new();
    db.hours(instance, target, 0, 100, &mut |h| out.push(h))
        .unwrap();
    out
}

/// An upgrade from a database made before the hours (version 4) counts the reports stored
/// into them, as they would have been counted when stored. `raw` runs SQL on it.
fn upgrade(database: &Database, raw: &mut dyn FnMut(&str)) {
    let mut docs = Vec::new();
    for (n, (at, pass)) in [
        ("2026-11-20T10:01:00Z", true),
        ("2026-11-20T10:02:00Z", false),
        ("2026-11-20T11:00:00Z", true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample_report(&format!("u-{n}"))).unwrap();
        v["started_at"] = at.into();
        v["targets"][0]["verdict"]["pass"] = pass.into();
        docs.push(probe::collect::entry::Entry::parse(&serde_json::to_vec(&v).unwrap()).unwrap());
    }
    let instance = probe::collect::entry::instance_key(&docs[0].report);
    let target = docs[0].report.targets[0].target.clone();
    let rows: Vec<Row<'_>> = docs.iter().map(|e| Row::of(e, &instance)).collect();
    let mut db = database.connect().unwrap();
    db.insert(&rows).unwrap();
    let counted = hours_in_full(db.as_mut(), &instance, &target);
    assert_eq!(counted.len(), 2, "{counted:?}");
    assert_eq!(
        (counted[1].reports, counted[1].passed),
        (2, 1),
        "{counted:?}"
    );
    drop(db);
    raw("DROP TABLE hours; DELETE FROM schema_migrations WHERE version = 5");
    let mut db = database.connect().unwrap();
    assert_eq!(hours_in_full(db.as_mut(), &instance, &target), counted);
}

/// What either engine must do. The documents are the ids, which is all an engine reads of
/// them.
fn contract(database: &Database) {
    let mut db = database.connect().unwrap();
    // A second connection finds the tables made: migrations apply once.
    let mut other = database.connect().unwrap();
    let new = db
        .insert(&[
            row("a-old", "i-a", "2026-11-20T10:00:00Z", "s3", "a-old"),
            row("b-only", "i-b", "2026-11-20T10:00:00Z", "s3", "b-only"),
            row("a-old", "i-a", "2026-11-20T10:00:00Z", "s3", "a-old"),
        ])
        .unwrap();
    assert!(
        new[0].is_some() && new[1].is_some() && new[2].is_none(),
        "a copy in the same transaction is stored once: {new:?}"
    );
    let new = other
        .insert(&[
            row("a-new", "i-a", "2026-11-25T09:00:00Z", "s3", "a-new"),
            row(
                "a-cf",
                "i-a",
                "2026-11-25T09:30:00Z",
                "cloudformation",
                "a-cf",
            ),
            row("a-old", "i-a", "2026-11-20T10:00:00Z", "s3", "a-old"),
        ])
        .unwrap();
    assert!(new[2].is_none(), "known from another connection: {new:?}");
    // Arrives late, made before the newest of its cell: stored, but not the cell's newest.
    db.insert(&[row("a-late", "i-a", "2026-11-21T10:00:00Z", "s3", "a-late")])
        .unwrap();
    assert_eq!(
        ids(db.as_mut()),
        ["a-old", "b-only", "a-new", "a-cf", "a-late"]
    );

    let mut history = Vec::new();
    db.history("i-a", millis("2026-11-21T00:00:00Z"), &mut |d| {
        history.push(d.to_string());
        true
    })
    .unwrap();
    assert_eq!(history, ["a-cf", "a-new", "a-late"], "newest made first");
    let mut first = Vec::new();
    db.history("i-a", 0, &mut |d| {
        first.push(d.to_string());
        false
    })
    .unwrap();
    assert_eq!(first, ["a-cf"], "no further than asked");

    // Each report stored is counted into its hour once, a copy not.
    counted_once(db.as_mut());

    let mut newest = Vec::new();
    db.newest(&mut |_, d| newest.push(d.to_string())).unwrap();
    assert_eq!(
        newest,
        ["b-only", "a-new", "a-cf"],
        "each cell's newest by time"
    );
    let mut tail = Vec::new();
    db.tail(2, &mut |_, d| tail.push(d.to_string())).unwrap();
    assert_eq!(tail, ["a-cf", "a-late"], "the last stored, in order");
    assert_eq!(db.count().unwrap(), 5, "copies are not counted");

    let mut page = Vec::new();
    db.after(0, 2, &mut |seq, _| page.push(seq)).unwrap();
    assert_eq!(page.len(), 2);
    let mut rest = Vec::new();
    db.after(page[1], 10, &mut |_, d| rest.push(d.to_string()))
        .unwrap();
    assert_eq!(rest, ["a-new", "a-cf", "a-late"], "pages follow on");

    retention(db.as_mut());
}

/// The contract's retention, on the database [`contract`] filled.
fn retention(db: &mut dyn Engine) {
    // By age: the old go, but the newest of every cell stays however old.
    let dropped = db
        .retain(Some(millis("2026-11-24T10:00:00Z")), None, NOW)
        .unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(ids(db), ["b-only", "a-new", "a-cf"]);
    counted_once(db);
    // By size: the oldest that is no cell's newest goes first.
    db.insert(&[row(
        "a-newer",
        "i-a",
        "2026-11-25T10:00:00Z",
        "s3",
        "a-newer",
    )])
    .unwrap();
    let size = db.size().unwrap();
    assert_eq!(
        size,
        ["b-only", "a-new", "a-cf", "a-newer"].concat().len() as u64
    );
    assert_eq!(db.retain(None, Some(1), NOW).unwrap(), 1);
    assert_eq!(ids(db), ["b-only", "a-cf", "a-newer"]);
    assert_eq!(db.retain(None, Some(1), NOW).unwrap(), 0, "the newest stay");
    // More than 400 days later, the hours go too.
    db.retain(
        Some(millis("2027-12-23T00:00:00Z")),
        None,
        millis("2027-12-30T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        hours(db, "i-a", "s3"),
        [
            (millis("2026-11-25T10:00:00Z"), 1),
            (millis("2026-11-25T09:00:00Z"), 1)
        ],
        "kept from 2026-11-25T00:00:00Z"
    );
    assert_eq!(
        db.count().unwrap(),
        6,
        "a count of what was stored, deleted since or not"
    );
}

#[test]
fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::choose(dir.path(), None).unwrap();
    contract(&database);
    // A database a newer probe migrated is refused, not misread.
    let conn = rusqlite::Connection::open(dir.path().join("probe.db")).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')",
        [],
    )
    .unwrap();
    let err = database.connect().err().unwrap();
    assert!(matches!(err, DbError::Newer { found: 99, .. }), "{err}");
    assert!(
        err.to_string().contains("run a probe at least as new"),
        "{err}"
    );
}

#[test]
fn an_uptime_query_gives_the_newest_hours_and_says_it_cut_older_ones() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::choose(dir.path(), None).unwrap();
    let mut db = database.connect().unwrap();
    let most = usize::try_from(probe::collect::uptime::MAX_HOURS).unwrap();
    let hour = 3_600_000;
    let ids: Vec<String> = (0..=most).map(|n| format!("h-{n}")).collect();
    let rows: Vec<Row<'_>> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| Row {
            at_ms: i64::try_from(n).unwrap() * hour,
            ..row(id, "i-a", "1970-01-01T00:00:00Z", "s3", id)
        })
        .collect();
    db.insert(&rows).unwrap();
    let (hours, cut) = probe::collect::uptime::read(db.as_mut(), "i-a", "s3", 0).unwrap();
    assert!(cut);
    assert_eq!(hours.len(), most);
    assert_eq!(hours[0].hour_ms, hour, "the oldest left out");
    let (all, cut) = probe::collect::uptime::read(db.as_mut(), "i-a", "s3", hour).unwrap();
    assert!(!cut);
    assert_eq!(all, hours);
}

#[test]
fn sqlite_counts_the_reports_stored_before_an_upgrade_into_hours() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::choose(dir.path(), None).unwrap();
    let path = dir.path().join("probe.db");
    upgrade(&database, &mut |sql| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    });
}

#[test]
fn postgres_counts_the_reports_stored_before_an_upgrade_into_hours() {
    if !Postgres::available("postgres-upgrade") {
        return;
    }
    let pg = Postgres::start();
    let url = pg.database("upgrade");
    let database = Database::choose(Path::new("unused"), Some(&url)).unwrap();
    upgrade(&database, &mut |sql| {
        postgres::Client::connect(&url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    });
}

#[test]
fn postgres_keeps_the_contract() {
    if !Postgres::available("postgres-contract") {
        return;
    }
    let pg = Postgres::start();
    let url = pg.database("contract");
    let database = Database::choose(Path::new("unused"), Some(&url)).unwrap();
    contract(&database);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // The transactions' horizon, and the query a server before 13 answers instead, which
    // this one still knows: the same ids.
    let (oldest, next) = database.connect().unwrap().horizon().unwrap().unwrap();
    assert!(0 < oldest && oldest <= next, "{oldest} {next}");
    let row = client
        .query_one(probe::collect::db::HORIZON_BEFORE_13, &[])
        .unwrap();
    let (old_oldest, old_next): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        old_oldest >= oldest && old_next >= next && old_next - next < 100,
        "{old_oldest} {old_next} after {oldest} {next}"
    );
    // A server before 13 has no pg_current_snapshot(): hidden in this database, the
    // collector asks the older name.
    client
        .batch_execute(
            "ALTER FUNCTION pg_catalog.pg_current_snapshot() RENAME TO hidden_current_snapshot",
        )
        .unwrap();
    assert!(
        client
            .query_one("SELECT pg_current_snapshot()", &[])
            .is_err(),
        "still known"
    );
    let (before_13, _) = database.connect().unwrap().horizon().unwrap().unwrap();
    assert!(before_13 >= oldest, "{before_13} after {oldest}");
    client
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')",
            &[],
        )
        .unwrap();
    let err = database.connect().err().unwrap();
    assert!(matches!(err, DbError::Newer { found: 99, .. }), "{err}");
}

/// How many of the server's sessions named `probe collect` run over TLS, and how many not.
fn sessions(admin: &mut postgres::Client) -> (i64, i64) {
    let row = admin
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'probe collect'",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn postgres_over_tls_checks_what_the_url_asks() {
    if !Postgres::available("postgres-tls") {
        return;
    }
    let pki = support::servers::Pki::new();
    let leaf = pki.leaf(&["127.0.0.1"]);
    let pg = Postgres::start_tls(&leaf.pem.0, &leaf.pem.1);
    let base = pg.database("tls");
    let mut admin = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let ca = pki.ca_file.display().to_string();
    let open = |query: &str| {
        let url = format!("{base}?{query}");
        Database::choose(Path::new("unused"), Some(&url))
            .unwrap()
            .connect()
    };

    // The CA and the host name checked: the contract holds, over TLS.
    let url = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let database = Database::choose(Path::new("unused"), Some(&url)).unwrap();
    contract(&database);
    let held = database.connect().unwrap();
    assert_eq!(sessions(&mut admin), (1, 0), "verify-full");
    drop(held);

    // Each mode, by what the server sees.
    for (query, want) in [
        ("sslmode=disable", (0, 1)),
        ("", (1, 0)),
        ("sslmode=require", (1, 0)),
        (
            &format!("sslmode=verify-ca&sslrootcert={ca}") as &str,
            (1, 0),
        ),
    ] {
        let held = open(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(sessions(&mut admin), want, "{query}");
        drop(held);
    }

    // A certificate no trusted CA signed: refused where the URL asks for a check, with the
    // fix; accepted where libpq accepts it too (require without a CA file).
    let other = support::servers::Pki::new();
    let stranger = other.ca_file.display().to_string();
    for query in [
        format!("sslmode=verify-ca&sslrootcert={stranger}"),
        format!("sslmode=require&sslrootcert={stranger}"),
        "sslmode=verify-full".to_string(),
    ] {
        let e = open(&query)
            .err()
            .unwrap_or_else(|| panic!("{query} accepted"))
            .to_string();
        assert!(
            e.contains("invalid peer certificate") && e.contains("sslrootcert=FILE"),
            "{query}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    // The CA right, the name not: verify-full refuses, verify-ca does not look.
    let by_name = base.replace("127.0.0.1", "localhost");
    let e = Database::choose(
        Path::new("unused"),
        Some(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}")),
    )
    .unwrap()
    .connect()
    .err()
    .expect("a certificate for 127.0.0.1 reached as localhost");
    assert!(e.to_string().contains("not valid for name"), "{e}");
    Database::choose(
        Path::new("unused"),
        Some(&format!("{by_name}?sslmode=verify-ca&sslrootcert={ca}")),
    )
    .unwrap()
    .connect()
    .unwrap();
}

/// A server that signs in a user by its client certificate (`cert` authentication): the URL's
/// `sslcert` and `sslkey` sign it in; without them it is refused.
#[test]
fn postgres_signs_in_by_a_client_certificate() {
    if !Postgres::available("postgres-client-certificate") {
        return;
    }
    let pki = support::servers::Pki::new();
    let server = pki.leaf(&["127.0.0.1"]);
    let client = pki.leaf(&["certified"]);
    let ca_pem = std::fs::read_to_string(&pki.ca_file).unwrap();
    let pg = Postgres::start_tls_clients(&server.pem.0, &server.pem.1, &ca_pem);
    pg.execute("CREATE ROLE certified LOGIN");
    pg.execute("CREATE DATABASE certified OWNER certified");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("client.crt"), dir.path().join("client.key"));
    std::fs::write(&cert, &client.pem.0).unwrap();
    std::fs::write(&key, &client.pem.1).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let base = pg
        .url
        .replace("probe@", "certified@")
        .replace("/postgres", "/certified");
    let ca = pki.ca_file.display();
    let url = format!(
        "{base}?sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        cert.display(),
        key.display()
    );
    let database = Database::choose(Path::new("unused"), Some(&url)).unwrap();
    contract(&database);
    let e = Database::choose(
        Path::new("unused"),
        Some(&format!("{base}?sslmode=verify-full&sslrootcert={ca}")),
    )
    .unwrap()
    .connect()
    .err()
    .expect("signed in without a certificate");
    assert!(e.to_string().contains("certificate"), "{e}");
    // Half of a pair is refused before anything is sent.
    let e = Database::choose(
        Path::new("unused"),
        Some(&format!("{base}?sslcert={}", cert.display())),
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("sslcert and sslkey go together"),
        "{e}"
    );
}

#[test]
fn a_bad_database_url_is_one_line_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    for (url, want) in [
        ("mysql://probe:s3cret@db/probe", "not a PostgreSQL URL"),
        (
            "postgres://probe:s3cret@db/probe?sslmode=allow",
            "sslmode=allow: give disable, prefer, require, verify-ca or verify-full",
        ),
        (
            "postgres://probe:s3cret@db/probe?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "cannot read CA file /nonexistent/ca.pem",
        ),
        (
            "postgres://probe:s3cret@127.0.0.1:1/probe",
            "cannot open the database",
        ),
    ] {
        let out = support::probe()
            .args(["collect", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .env("PROBE_DATABASE", url)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {err}");
        assert!(err.contains(want), "{url}: {err}");
        assert!(!err.contains("s3cret"), "the password is shown: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// Posts from 8 workers until the collector is killed (-9) mid-stream; then every report it
/// acknowledged must be in the database.
fn kill_9_loses_nothing(data: &Path, database: Option<&str>) {
    let token_path = token_file(data.parent().unwrap());
    let mut extra = vec!["--rate-limit", "0"];
    if let Some(url) = database {
        extra.extend(["--database", url]);
    }
    let mut collector = Collector::start_with(data, &token_path, "127.0.0.1:0", &extra);
    let url = collector.url.clone();
    let acknowledged = std::sync::Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for worker in 0..8 {
            let (url, acknowledged) = (&url, &acknowledged);
            s.spawn(move || {
                let token = Token::new(TOKEN).unwrap();
                for n in 0..1000 {
                    let id = format!("w{worker}-{n}");
                    let body = sample_report(&id);
                    let (code, _) = post(url, &body, &signed(&token, probe::auth::now(), &body));
                    if code == 201 {
                        acknowledged.lock().unwrap().insert(id);
                    } else {
                        break;
                    }
                }
            });
        }
        // Kill it mid-stream, while requests are in flight.
        std::thread::sleep(Duration::from_millis(1500));
        collector.kill();
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() > 10,
        "the load reached the collector: {}",
        acknowledged.len()
    );
    let stored: HashSet<String> = exported(data, database).into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged reports lost: {lost:?}",
        lost.len()
    );
    // And a restarted collector counts them all.
    let collector = Collector::start_with(data, &token_path, "127.0.0.1:0", &extra);
    let (_, body) = get(&format!("{}/metrics", collector.url));
    let total: usize = body
        .lines()
        .find_map(|l| l.strip_prefix("probe_collector_reports_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, stored.len());
}

#[test]
fn every_acknowledged_report_survives_kill_9_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill_9_loses_nothing(&dir.path().join("data"), None);
}

#[test]
fn every_acknowledged_report_survives_kill_9_on_postgres() {
    if !Postgres::available("postgres-kill-9") {
        return;
    }
    let pg = Postgres::start();
    let url = pg.database("crash");
    let dir = tempfile::tempdir().unwrap();
    kill_9_loses_nothing(&dir.path().join("data"), Some(&url));
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "probe-test"])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success(), "mount a tmpfs on {}", path.display());
        Self(path.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Posts reports until the store's disk fills and one is refused, then calls `make_room`:
/// the collector answers 503 (its error containing `full`) and acknowledges nothing it did
/// not store; with room again, the refused report is stored at the first try.
fn a_full_disk_loses_nothing(
    data: &Path,
    database: Option<&str>,
    make_room: impl FnOnce(),
    full: &str,
) {
    let token_path = token_file(data.parent().unwrap());
    let mut args = vec!["--rate-limit", "0"];
    if let Some(url) = database {
        args.extend(["--database", url]);
    }
    let mut acknowledged = Vec::new();
    let refused = {
        let collector = Collector::start_with(data, &token_path, "127.0.0.1:0", &args);
        let mut refused = None;
        for n in 0..5_000 {
            let id = format!("full-{n}");
            let (status, answer) = post_signed(&collector.url, &sample_report(&id));
            match status {
                201 => acknowledged.push(id),
                503 => {
                    refused = Some((id, answer));
                    break;
                }
                _ => panic!("{id}: {status} {answer}"),
            }
        }
        let (id, answer) = refused.expect("the disk filled up");
        assert!(answer["error"].as_str().unwrap().contains(full), "{answer}");
        make_room();
        let (status, answer) = post_signed(&collector.url, &sample_report(&id));
        assert_eq!(
            status,
            201,
            "with room again: {answer}; the collector said {:#?}",
            collector.lines()
        );
        acknowledged.push(id.clone());
        id
    };
    assert!(acknowledged.len() > 10, "{acknowledged:?}");
    let stored = exported(data, database);
    assert_eq!(
        stored, acknowledged,
        "every acknowledged report, once, in order"
    );
    assert_eq!(stored.last(), Some(&refused));
}

#[test]
fn a_full_disk_is_503_and_loses_nothing_acknowledged_on_sqlite() {
    if !support::can_run("sqlite-disk-full", &["mount", "umount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let disk = Tmpfs::mount(&data, "1m");
    a_full_disk_loses_nothing(&data, None, || disk.resize("16m"), "full");
    drop(disk);
}

/// A tmpfs of `size` at `dir`/`name` for the PostgreSQL server's user, who reaches it
/// through `dir`.
fn server_tmpfs(dir: &Path, name: &str, size: &str) -> (std::path::PathBuf, Tmpfs) {
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = dir.join(name);
    let disk = Tmpfs::mount(&path, size);
    Postgres::give(&path);
    (path, disk)
}

/// The tables of the collector's PostgreSQL database on a tablespace of their own, on a
/// small tmpfs (the server's catalogs and write-ahead log stay where they are: a full log
/// stops the whole server, not a transaction).
#[test]
fn a_full_disk_is_503_and_loses_nothing_acknowledged_on_postgres() {
    if !support::can_run("postgres-disk-full", &["mount", "umount"])
        || !Postgres::available("postgres-disk-full")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (space, disk) = server_tmpfs(dir.path(), "space", "384k");
    // Started after the mount, so dropped (stopped) before it is unmounted, even when the
    // test fails.
    let pg = Postgres::start();
    let url = pg.database("filled");
    pg.execute(&format!(
        "CREATE TABLESPACE small LOCATION '{}'",
        space.display()
    ));
    pg.execute("ALTER DATABASE filled SET default_tablespace = small");
    a_full_disk_loses_nothing(
        &dir.path().join("data"),
        Some(&url),
        || disk.resize("16m"),
        "No space left",
    );
    drop(pg);
    drop(disk);
}

/// The server's write-ahead log on a small tmpfs, kept from recycling by a replication slot
/// (as a standby that fell behind keeps it): when it fills, the server PANICs and ends
/// every connection. Every report acknowledged before is stored once; the refused one is a
/// 503; with room again and the server started, the collector connects again and stores
/// it at the first try.
#[test]
fn a_full_write_ahead_log_is_503_and_loses_nothing_acknowledged() {
    if !support::can_run("postgres-wal-full", &["mount", "umount"])
        || !Postgres::available("postgres-wal-full")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (wal, disk) = server_tmpfs(dir.path(), "wal", "6m");
    let mut pg = Postgres::start_wal_in(&wal);
    let url = pg.database("logged");
    pg.execute("SELECT pg_create_physical_replication_slot('standby', true)");
    a_full_disk_loses_nothing(
        &dir.path().join("data"),
        Some(&url),
        || {
            let log = rustix::fs::statvfs(&wal).unwrap();
            assert_eq!(log.f_bavail, 0, "the refusal came from a full log");
            disk.resize("64m");
            pg.restart();
        },
        "cannot store the report: PostgreSQL",
    );
    drop(pg);
    drop(disk);
}

/// A collector on a new database `name` of `pg`, its data and token in `dir`; and the
/// database's URL.
fn collector_on(pg: &Postgres, name: &str, dir: &Path) -> (Collector, String) {
    let url = pg.database(name);
    let token = token_file(dir);
    let collector = Collector::start_with(
        &dir.join("data"),
        &token,
        "127.0.0.1:0",
        &["--database", &url],
    );
    (collector, url)
}

/// A PostgreSQL server that restarts (an upgrade, a failover) costs the reports sent while
/// it is down a 503 each, not the collector: it connects again and stores the next, the
/// first one after the restart included.
#[test]
fn a_collector_outlives_a_postgres_restart() {
    if !Postgres::available("postgres-restart") {
        return;
    }
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (collector, url) = collector_on(&pg, "restart", dir.path());
    let (status, _) = post_signed(&collector.url, &sample_report("before"));
    assert_eq!(status, 201);
    pg.restart();
    // The collector's connection sat idle through the restart: the server closed it, and
    // the client learns that only when it uses it. The report goes through a new one.
    let (status, answer) = post_signed(&collector.url, &sample_report("after"));
    assert_eq!(status, 201, "the first report after the restart: {answer}");
    assert!(
        collector
            .wait_for_line("was lost; connected again", Duration::from_secs(5))
            .is_some(),
        "{:#?}",
        collector.lines()
    );
    assert_eq!(
        exported(&dir.path().join("data"), Some(&url)),
        ["before", "after"]
    );
}

/// A server down for 4 s (read every half second by the collector) is said once, not at
/// each try; and its return.
#[test]
fn an_outage_is_said_once_and_its_end_too() {
    if !Postgres::available("postgres-outage") {
        return;
    }
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (collector, _) = collector_on(&pg, "outage", dir.path());
    pg.down_for(Duration::from_secs(4));
    let (status, answer) = post_signed(&collector.url, &sample_report("after"));
    assert_eq!(status, 201, "{answer}");
    let said = |text: &str| {
        collector
            .lines()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    };
    assert_eq!(
        said("the connection to the database was lost"),
        1,
        "{:#?}",
        collector.lines()
    );
    assert!(
        said("cannot read what other collectors stored") <= 1,
        "{:#?}",
        collector.lines()
    );
    assert!(
        collector
            .wait_for_line("was lost; connected again", Duration::from_secs(5))
            .is_some()
    );
}

/// A PostgreSQL server of the test's own, and collectors sharing a database on it.
struct Shared {
    /// The database, for the test's own client (without TLS).
    url: String,
    /// The database as the collectors reach it: over TLS, the certificate checked.
    tls_url: String,
    dir: tempfile::TempDir,
    token: std::path::PathBuf,
    // Last: stopped once the collectors are.
    _pg: Postgres,
    _pki: support::servers::Pki,
}

impl Shared {
    /// `None` (said) when no server can run here.
    fn new(test: &str) -> Option<Self> {
        if !Postgres::available(test) {
            return None;
        }
        let pki = support::servers::Pki::new();
        let leaf = pki.leaf(&["127.0.0.1"]);
        let pg = Postgres::start_tls(&leaf.pem.0, &leaf.pem.1);
        let dir = tempfile::tempdir().unwrap();
        let url = pg.database("shared");
        Some(Self {
            tls_url: format!(
                "{url}?sslmode=verify-full&sslrootcert={}",
                pki.ca_file.display()
            ),
            url,
            token: token_file(dir.path()),
            dir,
            _pg: pg,
            _pki: pki,
        })
    }

    /// A collector on the shared database, its files in `name`.
    fn start(&self, name: &str) -> Collector {
        Collector::start_with(
            &self.dir.path().join(name),
            &self.token,
            "127.0.0.1:0",
            &["--database", &self.tls_url, "--rate-limit", "0"],
        )
    }
}

/// Several collectors behind a load balancer share one PostgreSQL store, reached over TLS
/// with the server's certificate checked: a report posted to one shows on the other, a
/// resend to the other is stored once, and neither holds reports of its own (a third, started
/// later, shows them all; `export` reads them).
#[test]
fn collectors_sharing_postgres_show_every_report_and_store_each_once() {
    let Some(shared) = Shared::new("postgres-shared") else {
        return;
    };
    let (url, dir) = (&shared.tls_url, shared.dir.path());
    let start = |name: &str| shared.start(name);
    let (a, b) = (start("a"), start("b"));
    let (status, _) = post_signed(&a.url, &sample_report("shared-1"));
    assert_eq!(status, 201);
    let (status, answer) = post_signed(&b.url, &sample_report("shared-1"));
    assert_eq!(
        (status, &answer["stored"]),
        (200, &serde_json::Value::Bool(false)),
        "{answer}"
    );
    let (status, _) = post_signed(&b.url, &sample_report("shared-2"));
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in [&a, &b] {
        loop {
            let ids = support::collector::stored_ids(&c.url);
            if ids.contains(&"shared-1".to_string()) && ids.contains(&"shared-2".to_string()) {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {ids:?}", c.url);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let c = start("c");
    let mut ids = support::collector::stored_ids(&c.url);
    ids.sort();
    assert_eq!(ids, ["shared-1", "shared-2"]);
    assert_eq!(
        exported(&dir.join("a"), Some(url)),
        ["shared-1", "shared-2"]
    );
}

/// A transaction on a shared store that took its sequence number before 2,000 others and
/// 100,000 numbers more (a slow batch on another collector; resends' conflicts use numbers
/// up) and commits after them still reaches every collector's views: a collector looks for
/// the numbers it has not seen until every transaction that could hold them has ended.
#[test]
fn a_report_committed_late_on_a_shared_store_reaches_every_collector() {
    let Some(shared) = Shared::new("postgres-late-commit") else {
        return;
    };
    let (a, b) = (shared.start("a"), shared.start("b"));
    let mut raw = postgres::Client::connect(&shared.url, postgres::NoTls).unwrap();
    let mut late = raw.transaction().unwrap();
    let doc = String::from_utf8(sample_report("late")).unwrap();
    late.execute(
        "INSERT INTO reports (id, instance, at_ms, bytes, doc) VALUES ('late', 'late', 0, $1, $2)",
        &[&i64::try_from(doc.len()).unwrap(), &doc],
    )
    .unwrap();
    for n in 0..2_000 {
        if n == 1_000 {
            raw_jump(&shared.url, 100_000);
        }
        let (status, answer) = post_signed(&a.url, &sample_report(&format!("early-{n}")));
        assert_eq!(status, 201, "{answer}");
    }
    let seen = |id: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !support::collector::stored_ids(&b.url).contains(&id.to_string()) {
            assert!(
                Instant::now() < deadline,
                "{id} never reached the other collector"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    seen("early-1999");
    late.commit().unwrap();
    seen("late");
}

/// Uses up `n` of the reports' sequence numbers, as that many conflicts would.
fn raw_jump(url: &str, n: i64) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.execute(
        "SELECT setval(pg_get_serial_sequence('reports', 'seq'), \
         nextval(pg_get_serial_sequence('reports', 'seq')) + $1)",
        &[&n],
    )
    .unwrap();
}
