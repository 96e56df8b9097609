//! The dashboard in a real browser: Debian's headless Chromium driven by chromedriver
//! (WebDriver over 127.0.0.1), reading the matrix cells as rendered, their colours, the
//! change history, the page's own refresh, and a screenshot.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::collector::{Collector, TOKEN, post, signed, token_file};
use support::servers::refused_port;

/// A chromedriver process with one headless Chromium session; both ended when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    chromium_pid: Option<u32>,
}

fn webdriver(method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-H", "content-type: application/json"]);
    if let Some(b) = body {
        cmd.args(["--data-binary", &b.to_string()]);
    }
    let out = cmd.arg(url).output().expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{method} {url}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

impl Browser {
    fn start(profile: &Path) -> Self {
        let port = refused_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; .ci/run installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Command::new("curl")
            .args(["-sf", &format!("{base}/status")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            chromium_pid: None,
        };
        // Chromium reaches for Google's services at start unless told not to; this machine
        // (and the rule of these tests) allows loopback only.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-proxy-server",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let answer = webdriver("POST", &format!("{}/session", browser.base), Some(&caps));
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser.chromium_pid = answer["value"]["capabilities"]["goog:processID"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer = webdriver(method, &url, body);
        assert!(
            answer["value"].get("error").is_none(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    fn screenshot(&self, path: &Path) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        std::fs::write(path, &png).unwrap();
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = Command::new("curl")
                .args([
                    "-s",
                    "-m",
                    "10",
                    "-X",
                    "DELETE",
                    &format!("{}/session/{}", self.base, self.session),
                ])
                .output();
        }
        // Chromium was started by our chromedriver; if quitting the session left it, end it
        // by the PID the driver reported.
        if let Some(pid) = self.chromium_pid {
            if Path::new(&format!("/proc/{pid}")).exists() {
                // The shell's own kill: procps may not be installed.
                let _ = Command::new("sh")
                    .args(["-c", "kill \"$0\"", &pid.to_string()])
                    .status();
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The matrix as the browser shows it: instance, target, path, background colour, age.
const CELLS: &str = "return Array.from(document.querySelectorAll('td.cell')).map(c => [
    c.dataset.instance, c.dataset.target, c.dataset.path,
    getComputedStyle(c).backgroundColor, c.querySelector('.age').textContent]);";

/// A report from `instance` (id, Name tag, subnet) with one verdict per (target, path).
fn report(n: u32, instance: (&str, &str, &str), verdicts: &[(&str, &str)]) -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report.json"
    ))
    .unwrap();
    let mut r: Value = serde_json::from_str(&text).unwrap();
    let (id, name, subnet) = instance;
    r["id"] = json!(format!("00000000-0000-4000-8000-{n:012}"));
    r["started_at"] = json!(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
    r["agent"]["hostname"] = json!(format!("ip-{n}"));
    r["agent"]["instance"] = json!({
        "instance_id": id, "name": name, "region": "ap-northeast-2",
        "availability_zone": "ap-northeast-2a", "vpc_id": "vpc-1", "subnet_id": subnet,
        "vpc_cidrs": ["10.10.0.0/16"],
    });
    let template = r["targets"][0].clone();
    r["targets"] = verdicts
        .iter()
        .map(|(target, path)| {
            let mut t = template.clone();
            t["target"] = json!(target);
            t["verdict"]["path"] = json!(path);
            t["verdict"]["reachable"] = json!(*path != "unreachable");
            t["verdict"]["pass"] = json!(*path != "unreachable");
            t["verdict"]["expected"] = Value::Null;
            t
        })
        .collect();
    serde_json::to_vec(&r).unwrap()
}

fn send(url: &str, body: &[u8]) {
    let token = probe::auth::Token::new(TOKEN).unwrap();
    let (code, answer) = post(url, body, &signed(&token, probe::auth::now(), body));
    assert_eq!(code, 201, "{answer}");
}

/// The cell of `instance` (label prefix) and `target` in what [`CELLS`] returned.
fn cell(cells: &Value, instance: &str, target: &str) -> Value {
    cells
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0].as_str().unwrap().starts_with(instance) && c[1].as_str() == Some(target))
        .unwrap_or_else(|| panic!("no cell {instance} x {target}: {cells:#}"))
        .clone()
}

/// Waits for the page, left alone, to show `path` in a cell.
fn wait_for_refresh(browser: &Browser, instance: &str, target: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = browser.run(CELLS);
        let c = cell(&now, instance, target);
        if c[2] == path {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "the page did not refresh itself: {now:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn artifact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// The cell page's bars a day over 90 days: the newest day's coloured by its newest report
/// (unreachable), the days before without one. The reports are from today, or from yesterday
/// and today when they straddled midnight, or from yesterday when the page came just after.
fn days_drawn(browser: &Browser) {
    let days = browser.run(
        "return Array.from(document.querySelectorAll('#days .bar')).map(b => getComputedStyle(b).backgroundColor);",
    );
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 90, "{days:?}");
    let empty = json!("rgb(244, 244, 244)");
    let reported: Vec<usize> = (0..90).filter(|&i| days[i] != empty).collect();
    assert!(
        matches!(reported[..], [89 | 88] | [88, 89]),
        "only the last day or two: {days:?}"
    );
    assert_eq!(
        days[*reported.last().unwrap()],
        "rgb(255, 201, 201)",
        "unreachable is red"
    );
}

#[test]
fn the_dashboard_shows_the_matrix_by_path_and_colour_and_refreshes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let public = ("i-0a3e5d7c9b1f24e86", "public-ec2", "subnet-0a1b2c3d");
    let private = ("i-0b7c4f9e2d1a38c65", "private-ec2", "subnet-0f9e8d7c");
    send(
        &c.url,
        &report(1, public, &[("s3", "public"), ("cloudformation", "public")]),
    );
    // The private instance: S3 unreachable, then through the gateway endpoint.
    let private_run = |n, s3| {
        report(
            n,
            private,
            &[("s3", s3), ("cloudformation", "interface-endpoint")],
        )
    };
    send(&c.url, &private_run(2, "unreachable"));
    send(&c.url, &private_run(3, "gateway-endpoint"));

    let browser = Browser::start(&dir.path().join("chromium"));
    browser.open(&format!("{}/", c.url));
    let cells = browser.run(CELLS);
    assert_eq!(cells.as_array().unwrap().len(), 4, "{cells:#}");
    let s3 = cell(&cells, "private-ec2", "s3");
    assert_eq!(s3[0], "private-ec2 (i-0b7c4f9e2d1a38c65)");
    assert_eq!(s3[2], "gateway-endpoint");
    assert_eq!(s3[3], "rgb(191, 227, 255)", "gateway endpoints are blue");
    assert!(s3[4].as_str().unwrap().ends_with("s ago"), "{s3}");
    let cf = cell(&cells, "private-ec2", "cloudformation");
    assert_eq!(cf[2], "interface-endpoint");
    assert_eq!(cf[3], "rgb(200, 240, 200)", "interface endpoints are green");
    let public_s3 = cell(&cells, "public-ec2", "s3");
    assert_eq!(public_s3[2], "public");
    assert_eq!(public_s3[3], "rgb(255, 243, 191)", "the internet is yellow");

    let rows = browser.run(
        "return Array.from(document.querySelectorAll('#matrix tr')).slice(1).map(r => [r.cells[0].textContent, r.cells[1].textContent]);",
    );
    assert_eq!(
        rows,
        json!([
            ["public-ec2 (i-0a3e5d7c9b1f24e86)", "subnet-0a1b2c3d"],
            ["private-ec2 (i-0b7c4f9e2d1a38c65)", "subnet-0f9e8d7c"]
        ]),
        "instances by Name tag, with subnet, ordered by subnet"
    );
    let changes = browser.run(
        "return Array.from(document.querySelectorAll('#changes li')).map(l => l.textContent);",
    );
    let first = changes[0].as_str().unwrap();
    assert!(
        first.starts_with(
            "private-ec2 (i-0b7c4f9e2d1a38c65) -> s3: unreachable -> gateway-endpoint at "
        ),
        "{changes:#}"
    );

    let png = browser.screenshot(&artifact("dashboard.png"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert!(width >= 1000, "a full-width screenshot, {width} px");

    // A verdict changes while the page is open: the page picks it up by itself.
    send(&c.url, &private_run(4, "unreachable"));
    let s3 = wait_for_refresh(&browser, "private-ec2", "s3", "unreachable");
    assert_eq!(s3[3], "rgb(255, 201, 201)", "unreachable is red");
    browser.screenshot(&artifact("dashboard-after-change.png"));

    // The cell's link leads to its history: a bar per report, coloured as the matrix is.
    let href = browser.run(
        "return Array.from(document.querySelectorAll('td.cell a')).map(a => a.href).find(h => h.includes('i-0b7c4f9e2d1a38c65') && h.endsWith('target=s3'));",
    );
    browser.open(
        href.as_str()
            .expect("a link from the private instance's s3 cell"),
    );
    let bars = browser.run(
        "return Array.from(document.querySelectorAll('#timeline .bar')).map(b => getComputedStyle(b).backgroundColor);",
    );
    assert_eq!(
        bars,
        json!([
            "rgb(255, 201, 201)",
            "rgb(191, 227, 255)",
            "rgb(255, 201, 201)"
        ]),
        "unreachable, the gateway endpoint, unreachable again"
    );
    days_drawn(&browser);
    let verdict = browser.run("return document.getElementById('verdict').textContent;");
    assert!(
        verdict.as_str().unwrap().starts_with("FAIL unreachable"),
        "{verdict}"
    );
    browser.screenshot(&artifact("cell.png"));
}
