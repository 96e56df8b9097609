//! A `probe collect` process on 127.0.0.1 and the HTTP calls the tests make to it.

use super::probe;
use probe::auth::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Token};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "lab-token-0123456789abcdef";

/// A collector process, killed (SIGKILL) when dropped or on demand. Its terminal lines are
/// kept (stderr and stdout, in one list) for the test to read.
pub struct Collector {
    child: Child,
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    pub fn start(data: &Path, token_file: &Path, listen: &str) -> Self {
        Self::start_with(data, token_file, listen, &[])
    }

    pub fn start_with(data: &Path, token_file: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut cmd = probe();
        cmd.args(["collect", "--listen", listen, "--data"])
            .arg(data)
            .arg("--token-file")
            .arg(token_file)
            .args(extra);
        Self::spawn(cmd)
    }

    /// Starts `cmd` (a `probe collect` command) and waits for its listening line.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        // Warnings (a weak token...) may come before the listening line: kept in the log.
        let mut before = Vec::new();
        let url = loop {
            let mut line = String::new();
            let read = stderr.read_line(&mut line).unwrap_or(0);
            if read == 0 {
                // Ended here, so a failed start leaves no process behind.
                let _ = child.kill();
                let _ = child.wait();
                panic!("collector did not start: {before:#?}");
            }
            if line.contains("listening on") {
                if let Some(url) = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://") || w.starts_with("https://"))
                {
                    break url.trim_end_matches(',').to_string();
                }
                let _ = child.kill();
                let _ = child.wait();
                panic!("collector did not start: {line}");
            }
            before.push(line.trim_end().to_string());
        };
        let log = Arc::new(Mutex::new(before));
        // Read to the end, so the collector never writes to a closed pipe.
        let keep = |reader: Box<dyn BufRead + Send>, log: Arc<Mutex<Vec<String>>>| {
            std::thread::spawn(move || {
                for line in reader.lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        };
        keep(Box::new(stderr), log.clone());
        keep(
            Box::new(BufReader::new(child.stdout.take().unwrap())),
            log.clone(),
        );
        Self { child, url, log }
    }

    /// Waits up to `limit` for a terminal line containing `text`; returns it.
    pub fn wait_for_line(&self, text: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return Some(l.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every terminal line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The collector's resident memory, in MB.
    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb / 1024.0
    }

    /// Sends `signal` to the collector, by its PID.
    pub fn signal(&self, signal: rustix::process::Signal) {
        super::signal(self.child.id(), signal);
    }

    /// Waits up to `limit` for the collector to exit; its status, or `None` when it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

/// GET with `Authorization: Bearer TOKEN`.
pub fn get_as(url: &str, token: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

pub fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

pub fn stored_ids(url: &str) -> Vec<String> {
    let (_, body) = get(&format!("{url}/v1/reports?limit=1000"));
    let v: Value = serde_json::from_str(&body).unwrap();
    v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Posts `body` with the given headers; returns the status and the JSON answer.
pub fn post(url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    post_to(&format!("{url}/v1/reports"), body, headers)
}

/// Posts `body` to `url` itself (any route) with the given headers.
pub fn post_to(url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "--data-binary",
        "@-",
        "-H",
        "content-type: application/json",
    ]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    cmd.arg(url);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(json).unwrap_or(Value::Null),
    )
}

/// POSTs `body` to `url`, signed now with the tests' token.
pub fn post_signed(url: &str, body: &[u8]) -> (u16, Value) {
    let token = Token::new(TOKEN).unwrap();
    post(url, body, &signed(&token, probe::auth::now(), body))
}

pub fn signed(token: &Token, ts: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (TIMESTAMP_HEADER, ts.to_string()),
        (SIGNATURE_HEADER, token.sign(ts, body)),
    ]
}

pub fn sample_report(id: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report.json"
    ))
    .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["id"] = Value::String(id.into());
    serde_json::to_vec(&v).unwrap()
}

/// The ids of the reports stored in `data` (or `database`, a PostgreSQL URL), in the order
/// they were stored, as `probe collect export` writes them.
pub fn exported(data: &Path, database: Option<&str>) -> Vec<String> {
    let mut cmd = super::probe();
    cmd.args(["collect", "export", "--data"]).arg(data);
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}
