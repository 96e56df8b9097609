//! A PostgreSQL server of the test's own: `initdb` in a temporary directory, `postgres`
//! listening on 127.0.0.1 on a free port, as the `postgres` user when the tests run as root
//! (the server refuses root). Stopped by its PID (a fast shutdown), and its files removed,
//! when dropped.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    pub url: String,
}

/// The newest installed server's programs (Debian's layout), if any.
fn bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("postgres").exists() && b.join("initdb").exists())
        .collect();
    found.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

/// The user the server runs as: `postgres` for root, else whoever runs the tests.
fn user() -> Option<(u32, u32)> {
    let id = |flag: &str, user: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    (String::from_utf8_lossy(&me.stdout).trim() == "0")
        .then(|| Some((id("-u", "postgres")?, id("-g", "postgres")?)))
        .flatten()
}

impl Postgres {
    /// Whether a server can be started here; says why not (or fails under
    /// PROBE_REQUIRE_ALL, as [`super::can_run`] does).
    pub fn available(test: &str) -> bool {
        if bin().is_some() {
            return true;
        }
        let why = format!(
            "{test}: skipped: no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql, or run .ci/run)"
        );
        assert!(
            std::env::var_os("PROBE_REQUIRE_ALL").is_none(),
            "{why}; PROBE_REQUIRE_ALL is set, so a skip is a failure"
        );
        eprintln!("{why}");
        false
    }

    pub fn start() -> Self {
        Self::start_with(None, None, None)
    }

    /// A server that also speaks TLS, with this certificate (chain) and key, both PEM: a
    /// client chooses (`hostssl` and `host` rules alike trust it).
    pub fn start_tls(cert: &str, key: &str) -> Self {
        Self::start_with(Some((cert, key)), None, None)
    }

    /// As [`Postgres::start_tls`], and the user `certified` signs in only by a client
    /// certificate (`cert` authentication, its CN the user) that `client_ca` (PEM) signed.
    pub fn start_tls_clients(cert: &str, key: &str, client_ca: &str) -> Self {
        Self::start_with(Some((cert, key)), Some(client_ca), None)
    }

    /// A server whose write-ahead log is in `wal` (an empty folder the server's user owns),
    /// in segments of 1 MB rather than 16, so a small file system fills up soon.
    pub fn start_wal_in(wal: &std::path::Path) -> Self {
        Self::start_with(None, None, Some(wal))
    }

    fn start_with(
        tls: Option<(&str, &str)>,
        client_ca: Option<&str>,
        wal: Option<&std::path::Path>,
    ) -> Self {
        let bin = bin().expect("a PostgreSQL server: apt-get install postgresql");
        let dir = tempfile::Builder::new()
            .prefix("probe-pg")
            .tempdir()
            .unwrap();
        let owner = user();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let as_owner = |cmd: &mut Command| {
            if let Some((uid, gid)) = owner {
                cmd.uid(uid).gid(gid);
            }
        };
        let data = dir.path().join("data");
        let mut init = Command::new(bin.join("initdb"));
        init.args([
            "-A",
            "trust",
            "-U",
            "probe",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .stdout(Stdio::null());
        if let Some(wal) = wal {
            init.arg("-X").arg(wal).arg("--wal-segsize=1");
        }
        as_owner(&mut init);
        let out = init.output().unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((cert, key)) = tls {
            // The server refuses a key others may read, or one it does not own.
            let ca = client_ca.unwrap_or_default();
            for (name, pem, mode) in [
                ("server.crt", cert, 0o644),
                ("server.key", key, 0o600),
                ("client-ca.crt", ca, 0o644),
            ] {
                let path = data.join(name);
                std::fs::write(&path, pem).unwrap();
                std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .unwrap();
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
                }
            }
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap();
            text.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            if client_ca.is_some() {
                text.push_str("ssl_ca_file = 'client-ca.crt'\n");
                // First: the first rule that matches decides.
                let hba = data.join("pg_hba.conf");
                let rules = std::fs::read_to_string(&hba).unwrap();
                std::fs::write(
                    &hba,
                    format!("hostssl all certified 127.0.0.1/32 cert\n{rules}"),
                )
                .unwrap();
            }
            std::fs::write(&conf, text).unwrap();
        }
        // A port found free may be taken by another test's server before this one binds
        // it: the server then exits, and another port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let url = format!("postgres://probe@127.0.0.1:{port}/postgres");
            let mut child = serve(&bin, dir.path(), port);
            if up(&mut child, &url, &data) {
                return Self {
                    child,
                    dir,
                    bin,
                    port,
                    url,
                };
            }
            stop(&mut child);
        }
        panic!("PostgreSQL did not start");
    }

    /// Stops the server (a fast shutdown, which ends every connection), unless it stopped on
    /// its own, and starts it again on the same files and port, as an upgrade or a failover
    /// would.
    pub fn restart(&mut self) {
        self.down_for(Duration::ZERO);
    }

    /// As [`Postgres::restart`], the server down for `pause` in between (an outage).
    pub fn down_for(&mut self, pause: Duration) {
        self.stop();
        std::thread::sleep(pause);
        self.child = serve(&self.bin, self.dir.path(), self.port);
        let data = self.dir.path().join("data");
        assert!(
            up(&mut self.child, &self.url, &data),
            "PostgreSQL did not start again"
        );
    }

    /// Gives `path` to the user the server runs as (a tablespace's folder).
    pub fn give(path: &std::path::Path) {
        if let Some((uid, gid)) = user() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    /// Runs `sql` on the server's first database.
    pub fn execute(&self, sql: &str) {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .expect("connect to the test server")
            .batch_execute(sql)
            .unwrap_or_else(|e| {
                panic!(
                    "{sql}: {:?}",
                    e.as_db_error().map(postgres::error::DbError::message)
                )
            });
    }

    fn stop(&mut self) {
        stop(&mut self.child);
    }

    /// A new, empty database on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
            .expect("connect to the test server");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url.replace("/postgres", &format!("/{name}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the server on the cluster in `dir` (its `data`), on 127.0.0.1:`port`.
fn serve(bin: &std::path::Path, dir: &std::path::Path, port: u16) -> Child {
    let mut server = Command::new(bin.join("postgres"));
    server
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "max_connections=200", "-c", "fsync=on"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = user() {
        server.uid(uid).gid(gid);
    }
    server.spawn().unwrap()
}

/// Waits until the server of `data` (not another on its port) answers at `url`; false when
/// it exited.
fn up(child: &mut Child, url: &str, data: &std::path::Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls) {
            let theirs: String = c
                .query_one("SELECT current_setting('data_directory')", &[])
                .map(|r| r.get(0))
                .unwrap_or_default();
            return std::path::Path::new(&theirs) == data;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A fast shutdown (the server ends its own backends), by its PID; none for a server that
/// has exited (its PID may be another process's by now).
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    super::signal(child.id(), rustix::process::Signal::INT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
