//! `probe collect` with the EC2 API: verdicts read back from serial consoles (stored
//! GetConsoleOutput and DescribeInstances answers, served on 127.0.0.1), and reports labelled
//! with the collector's own EC2 discovery (moto on 127.0.0.1, seeded like the lab).

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::collector::{Collector, TOKEN, get, post, signed, token_file};
use support::receiver::{Mode, receiver};
use support::{Helper, assert_valid, probe, run_within, seeded_moto};

const REGION: &str = "ap-northeast-2";
const PRIVATE: &str = "i-0b7c4f9e2d1a38c65";
const PUBLIC: &str = "i-0a3e5d7c9b1f24e86";
const STUCK: &str = "i-0d1e2f3a4b5c6d7e8";

/// `probe collect` talking to the EC2 API at `ec2_url` with test credentials.
fn collector(dir: &Path, ec2_url: &str, extra: &[&str]) -> Collector {
    let mut cmd = probe();
    cmd.args(["collect", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--token-file")
        .arg(token_file(dir))
        .args(extra)
        .env("AWS_ENDPOINT_URL_EC2", ec2_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    Collector::spawn(cmd)
}

/// The stored EC2 answers of tests/fixtures/ec2, served on 127.0.0.1.
fn recorded_ec2() -> Helper {
    Helper::start(
        "tests/fixtures/ec2_recorded.py",
        &[concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ec2")],
    )
}

/// A collector reading the console of `instance` and of `stack`'s instances every second.
fn console_collector(dir: &Path, ec2: &Helper, instance: &str, stack: &str) -> Collector {
    collector(
        dir,
        &ec2.url(),
        &[
            "--from-console",
            instance,
            "--stack",
            stack,
            "--region",
            REGION,
            "--console-every",
            "1s",
        ],
    )
}

fn reports(url: &str) -> Vec<Value> {
    let (code, body) = get(&format!("{url}/v1/reports?limit=1000"));
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["reports"].as_array().unwrap().clone()
}

/// Polls the API until `n` reports are stored.
fn wait_for_reports(url: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let got = reports(url);
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn verdicts_come_back_from_serial_consoles_by_instance_and_by_stack() {
    let dir = tempfile::tempdir().unwrap();
    let ec2 = recorded_ec2();
    let c = console_collector(dir.path(), &ec2, PRIVATE, "probe-vpce");
    // Two runs on the private instance's console, one on the public one's.
    let got = wait_for_reports(&c.url, 3, Duration::from_secs(20));
    assert_eq!(got.len(), 3, "{:#?}\n{:#?}", got, c.lines());
    for r in &got {
        assert_valid(r);
        assert_eq!(r["via"], "console");
        assert!(r["id"].as_str().unwrap().ends_with("-console"));
    }
    let private: Vec<&Value> = got
        .iter()
        .filter(|r| r["agent"]["instance"]["instance_id"] == PRIVATE)
        .collect();
    assert_eq!(private.len(), 2);
    let instance = &private[0]["agent"]["instance"];
    assert_eq!(
        instance["name"], "private-ec2",
        "the Name tag, from DescribeInstances"
    );
    assert_eq!(instance["subnet_id"], "subnet-0f9e8d7c6b5a43210");
    let newest = private[0];
    assert_eq!(newest["agent"]["hostname"], "ip-10-10-1-10");
    let s3 = &newest["targets"][0];
    assert_eq!(s3["target"], "s3");
    assert_eq!(s3["host"], "s3.ap-northeast-2.amazonaws.com");
    assert_eq!(s3["port"], 443);
    assert_eq!(s3["verdict"]["path"], "gateway-endpoint");
    assert_eq!(s3["verdict"]["endpoint_id"], "vpce-0a9b8c7d6e5f4a3b2");
    assert_eq!(
        newest["targets"][1]["verdict"]["path"],
        "interface-endpoint"
    );

    // The terminal tells the change on the private instance, and the line a kernel message broke.
    let change = c
        .wait_for_line(
            "-> s3: unreachable -> gateway-endpoint",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("{:#?}", c.lines()));
    assert!(change.contains("private-ec2"), "{change}");
    assert!(
        c.wait_for_line("1 unreadable marked line(s)", Duration::from_secs(5))
            .is_some(),
        "{:#?}",
        c.lines()
    );

    // Reading the same consoles again stores nothing twice.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(reports(&c.url).len(), 3);
    // The stack's terminated instance (an earlier private-ec2, replaced) is not read.
    assert!(
        !c.lines().iter().any(|l| l.contains("i-0c9d8e7f6a5b4c3d2")),
        "{:#?}",
        c.lines()
    );

    let (_, page) = get(&format!("{}/", c.url));
    assert!(
        page.contains(&format!("private-ec2 ({PRIVATE})")),
        "instances by Name tag: {page}"
    );
    assert!(page.contains(&format!("public-ec2 ({PUBLIC})")), "{page}");
}

#[test]
fn reports_read_from_a_console_are_alerted_on_like_posted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ec2 = recorded_ec2();
    let hook = receiver(Mode::Answer(200));
    let c = collector(
        dir.path(),
        &ec2.url(),
        &[
            "--from-console",
            PRIVATE,
            "--region",
            REGION,
            "--console-every",
            "1s",
            "--alert",
            &format!("webhook={}", hook.url),
        ],
    );
    // The private instance's console holds two runs: S3 unreachable, then by its gateway
    // endpoint. The first is where the cell starts; the second is a change.
    let got = hook.wait_for(1);
    assert_eq!(got.len(), 1, "{got:#?}\n{:#?}", c.lines());
    let m = &got[0];
    assert_eq!(m["target"], "s3", "{m:#}");
    assert_eq!(m["instance_key"], PRIVATE, "{m:#}");
    assert_eq!(m["from"]["path"], "unreachable", "{m:#}");
    assert_eq!(m["to"]["path"], "gateway-endpoint", "{m:#}");
    // Reading the same console again tells nothing twice.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(hook.got.lock().unwrap().len(), 1);
}

/// An instance whose UserData never got probe there (its security group drops the relay's
/// port, and the S3 endpoint is missing): the bootstrap's console lines say so on the
/// terminal and on the dashboard, though it never reported.
#[test]
fn an_instance_whose_bootstrap_is_stuck_shows_why() {
    let dir = tempfile::tempdir().unwrap();
    let ec2 = recorded_ec2();
    let c = console_collector(dir.path(), &ec2, STUCK, "no-such-stack");
    let line = c
        .wait_for_line(
            &format!("{STUCK} (stuck-ec2) bootstrap:"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("{:#?}", c.lines()));
    assert!(
        line.ends_with(
            "bootstrap: connect-timeout from http://10.10.0.10:7878/v1/probe (attempt 3): no probe from this source"
        ),
        "{line}"
    );
    let (_, page) = get(&format!("{}/", c.url));
    assert!(page.contains("id=\"bootstrap\""), "{page}");
    assert!(
        page.contains(&format!(
            "data-instance=\"{STUCK} (stuck-ec2)\" data-result=\"connect-timeout\""
        )),
        "{page}"
    );
    assert!(
        reports(&c.url).is_empty(),
        "a bootstrap line is not a report"
    );
    // Read again: the same state is not printed twice.
    std::thread::sleep(Duration::from_millis(2500));
    let said = c
        .lines()
        .iter()
        .filter(|l| l.contains("bootstrap:"))
        .count();
    assert_eq!(said, 1, "{:#?}", c.lines());
}

#[test]
fn a_console_that_cannot_be_read_says_why_and_the_collector_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ec2 = recorded_ec2();
    let c = console_collector(dir.path(), &ec2, "i-0000000000000dead", "no-such-stack");
    let line = c
        .wait_for_line("no-such-stack", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{:#?}", c.lines()));
    assert!(line.contains("has no instances"), "{line}");
    assert!(line.contains("--region"), "{line}");
    // The named instance is read all the same, and the API's refusal is said.
    let line = c
        .wait_for_line("console of i-0000000000000dead", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{:#?}", c.lines()));
    assert!(line.contains("InvalidInstanceID.NotFound"), "{line}");
    let (code, _) = get(&format!("{}/", c.url));
    assert_eq!(code, 200, "the collector still serves");
}

#[test]
fn console_options_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = probe();
        cmd.args(["collect", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        run_within(&mut cmd, Duration::from_secs(10))
    };
    let bad_id = run(&["--from-console", "web-1", "--region", REGION]);
    assert_eq!(bad_id.code, 2);
    assert!(
        bad_id.stderr.contains("i-0123456789abcdef0"),
        "{}",
        bad_id.stderr
    );
    let no_region = run(&["--stack", "probe-vpce"]);
    assert_eq!(no_region.code, 2);
    assert!(
        no_region.stderr.contains("--region"),
        "{}",
        no_region.stderr
    );
    let bad_every = run(&["--stack", "s", "--region", REGION, "--console-every", "0s"]);
    assert_eq!(bad_every.code, 2);
    assert!(
        bad_every.stderr.contains("--console-every"),
        "{}",
        bad_every.stderr
    );
}

/// The sample report as the private instance sends it when it cannot reach the EC2 API:
/// the endpoint ENIs look like any VPC address, and the expectation fails.
fn unlabelled_report(state: &Value) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/report.json"
    ))
    .unwrap();
    let mut r: Value = serde_json::from_str(&text).unwrap();
    r["id"] = json!("0f1e2d3c-0000-4000-8000-00000000e2c2");
    r["agent"]["instance"] = json!({
        "instance_id": state["instances"]["priv"],
        "region": REGION,
        "availability_zone": "ap-northeast-2c",
        "local_ipv4": "10.10.1.10",
        "vpc_id": state["vpc"],
        "subnet_id": state["priv_subnet"],
        "vpc_cidrs": ["10.10.0.0/16"],
    });
    r["agent"]["context"] = json!({
        "imds": "ok",
        "ec2": "EC2 API did not answer within 2s (no route to the EC2 endpoint? add an ec2 interface endpoint, or pass --ec2 off)",
    });
    r["from_a_newer_agent"] = json!({"kept": true});
    let t = &mut r["targets"][0];
    for a in t["addresses"].as_array_mut().unwrap() {
        a["class"] = json!("vpc");
        a["endpoint"] = Value::Null;
    }
    t["verdict"] = json!({
        "reachable": true,
        "path": "vpc",
        "expected": "interface-endpoint",
        "pass": false,
        "reason": "expected interface-endpoint, got vpc",
        "endpoint_id": null,
        "diagnoses": [],
    });
    r["pass"] = json!(false);
    r
}

#[test]
fn a_collector_with_credentials_labels_what_an_agent_without_the_ec2_api_could_not() {
    let dir = tempfile::tempdir().unwrap();
    let (moto, state) = seeded_moto(dir.path(), "interface");
    let c = collector(dir.path(), &moto.url(), &[]);
    assert!(
        c.wait_for_line("AWS credentials found", Duration::from_secs(10))
            .is_some(),
        "{:#?}",
        c.lines()
    );
    let body = serde_json::to_vec(&unlabelled_report(&state)).unwrap();
    let token = probe::auth::Token::new(TOKEN).unwrap();
    let (code, answer) = post(&c.url, &body, &signed(&token, probe::auth::now(), &body));
    assert_eq!(code, 201, "{answer}");

    let got = reports(&c.url);
    let r = &got[0];
    assert_valid(r);
    assert_eq!(r["agent"]["context"]["collector_ec2"], "ok", "{r:#}");
    assert_eq!(
        r["agent"]["context"]["ec2"],
        body_ec2(&body),
        "the agent's own status stays"
    );
    let t = &r["targets"][0];
    let cf = &state["cloudformation"]["id"];
    for a in t["addresses"].as_array().unwrap() {
        assert_eq!(a["class"], "endpoint-eni", "{a:#}");
        assert_eq!(a["endpoint"]["id"], *cf);
        assert_eq!(a["endpoint"]["type"], "interface");
    }
    assert_eq!(t["verdict"]["path"], "interface-endpoint");
    assert_eq!(t["verdict"]["pass"], true);
    assert_eq!(t["verdict"]["endpoint_id"], *cf);
    assert_eq!(r["pass"], true);
    // The report came without security groups (an agent older than the prediction): the
    // collector's DescribeInstances gives them, and the configuration's prediction follows.
    assert_eq!(
        r["agent"]["instance"]["security_groups"],
        json!([state["instance_sg"]]),
        "{r:#}"
    );
    assert_eq!(
        t["verdict"]["predicted"]["path"], "interface-endpoint",
        "{t:#}"
    );
    assert_eq!(t["verdict"]["agrees"], true, "{t:#}");
    assert_eq!(
        r["agent"]["instance"]["name"], "private-ec2",
        "the Name tag from the collector's DescribeInstances"
    );
    assert_eq!(
        r["from_a_newer_agent"]["kept"], true,
        "unknown fields survive labelling"
    );

    let (_, page) = get(&format!("{}/", c.url));
    assert!(page.contains("private-ec2 ("), "{page}");
    assert!(page.contains("data-path=\"interface-endpoint\""), "{page}");

    // An agent that had the EC2 API keeps its labels; only its missing name is filled in.
    let mut own = unlabelled_report(&state);
    own["id"] = json!("0f1e2d3c-0000-4000-8000-0000000000a2");
    own["agent"]["context"]["ec2"] = json!("ok");
    let body = serde_json::to_vec(&own).unwrap();
    let (code, answer) = post(&c.url, &body, &signed(&token, probe::auth::now(), &body));
    assert_eq!(code, 201, "{answer}");
    let r = &reports(&c.url)[0];
    assert_eq!(r["id"], own["id"]);
    assert_eq!(r["agent"]["context"].get("collector_ec2"), None);
    assert_eq!(r["targets"][0]["verdict"], own["targets"][0]["verdict"]);
    assert_eq!(r["agent"]["instance"]["name"], "private-ec2");
    assert_eq!(r["agent"]["instance"].get("security_groups"), None);
}

fn body_ec2(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["agent"]["context"]["ec2"].clone()
}

#[test]
fn without_credentials_reports_are_stored_as_the_agent_labelled_them() {
    let dir = tempfile::tempdir().unwrap();
    // probe() leaves no credentials in the environment, files or metadata.
    let c = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let line = c
        .wait_for_line("no AWS credentials", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{:#?}", c.lines()));
    assert!(line.contains("--ec2 off"), "{line}");
    let state = json!({"instances": {"priv": "i-0b1c2d3e4f5a6b7c8"}, "vpc": "vpc-1", "priv_subnet": "subnet-1"});
    let body = serde_json::to_vec(&unlabelled_report(&state)).unwrap();
    let token = probe::auth::Token::new(TOKEN).unwrap();
    let (code, answer) = post(&c.url, &body, &signed(&token, probe::auth::now(), &body));
    assert_eq!(code, 201, "{answer}");
    let r = &reports(&c.url)[0];
    assert_eq!(r["agent"]["context"].get("collector_ec2"), None);
    assert_eq!(r["targets"][0]["verdict"]["path"], "vpc");
}
