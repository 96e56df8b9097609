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
        as_owner(&mut init);
        let out = init.output().unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "max_connections=200", "-c", "fsync=on"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_owner(&mut server);
        let child = server.spawn().unwrap();
        let pg = Self {
            child,
            dir,
            url: format!("postgres://probe@127.0.0.1:{port}/postgres"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
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
        // A fast shutdown: the server ends its own backends.
        super::signal(self.child.id(), rustix::process::Signal::INT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}
