//! Alerts end to end on 127.0.0.1: `probe collect --alert` against receivers the test runs,
//! one that answers, one that fails before it answers, one that hangs; a collector killed
//! with messages in its outbox, or while one is being sent, which sends them after its
//! restart (the same id each time); a report that comes late, counted where it falls in
//! time; and two collectors sharing a PostgreSQL store, which count each other's reports
//! and tell each change once.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::collector::{Collector, post_signed, sample_report, token_file};
use support::postgres::Postgres;
use support::receiver::{Mode, receiver};

/// Report `n` of one instance, its target passing through the gateway endpoint or failing
/// through the internet.
fn report(n: u32, pass: bool) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample_report(&format!("alert-{n}"))).unwrap();
    v["started_at"] = Value::String(format!("2026-12-04T10:{n:02}:00Z"));
    let targets = v["targets"].as_array_mut().unwrap();
    targets.truncate(1);
    let verdict = &mut targets[0]["verdict"];
    verdict["pass"] = Value::Bool(pass);
    verdict["path"] = Value::String(if pass { "gateway-endpoint" } else { "public" }.into());
    verdict["reason"] = Value::String(format!("reason {n}"));
    serde_json::to_vec(&v).unwrap()
}

/// `--alert` to `receiver`'s webhook, after `after` reports in a row.
fn alerting(receiver: &support::receiver::Receiver, after: u32) -> Vec<String> {
    vec![
        "--alert".into(),
        format!("webhook={}", receiver.url),
        "--alert-after".into(),
        after.to_string(),
    ]
}

/// A collector on 127.0.0.1 with `args`.
fn start(data: &std::path::Path, token: &std::path::Path, args: &[String]) -> Collector {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Collector::start_with(data, token, "127.0.0.1:0", &args)
}

/// Posts report `n`; the answer must come at once, whatever the receivers do.
fn post(collector: &Collector, n: u32, pass: bool) {
    let started = Instant::now();
    let (status, answer) = post_signed(&collector.url, &report(n, pass));
    assert_eq!(status, 201, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "report {n} waited {:?} for an answer",
        started.elapsed()
    );
}

#[test]
fn a_change_is_told_once_after_n_reports_and_its_recovery_too_whatever_the_receivers_do() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let webhook = receiver(Mode::Answer(200));
    let slack = receiver(Mode::FailFirst(2));
    let hanging = receiver(Mode::Hang);
    let collector = Collector::start_with(
        &dir.path().join("data"),
        &token,
        "127.0.0.1:0",
        &[
            "--alert",
            &format!("webhook={}", webhook.url),
            "--alert",
            &format!("slack={}", slack.url),
            "--alert",
            &format!("webhook={}", hanging.url),
            "--alert-after",
            "2",
        ],
    );
    // Pass (where the cell starts), a one-report blip, then two failures (told), a third,
    // and two passes (told as recovered).
    for (n, pass) in [true, false, true, false, false, false, true, true]
        .into_iter()
        .enumerate()
    {
        post(&collector, u32::try_from(n).unwrap(), pass);
    }
    let got = webhook.wait_for(2);
    std::thread::sleep(Duration::from_millis(500));
    let got_now = webhook.got.lock().unwrap().clone();
    assert_eq!(got_now.len(), 2, "one message per change: {got_now:#?}");
    assert_eq!(got[0]["event"], "failing");
    assert_eq!(got[0]["from"]["path"], "gateway-endpoint");
    assert_eq!(got[0]["to"]["path"], "public");
    assert_eq!(got[0]["reports"], 2);
    assert_eq!(got[0]["reason"], "reason 4");
    assert!(got[0]["target"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(got[1]["event"], "recovered");
    assert_eq!(got[1]["to"]["path"], "gateway-endpoint");

    // Slack refused twice: retried with back-off until it took both, in order.
    let texts: Vec<String> = slack
        .wait_for(2)
        .iter()
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    assert!(texts[0].starts_with("FAILING: "), "{texts:?}");
    assert!(texts[1].starts_with("RECOVERED: "), "{texts:?}");
    assert!(*slack.tries.lock().unwrap() >= 4);

    // The counters: the webhook took 2, Slack refused 2 tries then took 2.
    let metrics = support::collector::get(&format!("{}/metrics", collector.url)).1;
    let line = |name: &str, n: usize| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{n=\"{n}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} for {n}: {metrics}"))
    };
    assert_eq!(line("probe_alerts_sent_total", 0), 2);
    assert_eq!(line("probe_alerts_sent_total", 1), 2);
    assert_eq!(line("probe_alerts_failed_total", 1), 2);
    assert_eq!(line("probe_alerts_waiting", 0), 0);
    assert!(
        line("probe_alerts_waiting", 2) >= 1,
        "the hanging one still holds its messages"
    );
    assert!(
        !metrics.contains("/hook"),
        "a URL's path is a secret: {metrics}"
    );

    // The hanging receiver was asked, took nothing, and held no one.
    assert!(*hanging.tries.lock().unwrap() >= 1);
    assert!(hanging.got.lock().unwrap().is_empty());
    assert!(
        collector
            .wait_for_line(
                "alerts to webhook http://127.0.0.1",
                Duration::from_secs(15)
            )
            .is_some(),
        "the hang was not said: {:#?}",
        collector.lines()
    );
}

#[test]
fn messages_in_the_outbox_are_sent_after_a_crash_and_a_restart_compares_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let data = dir.path().join("data");
    let down = receiver(Mode::Answer(503));
    let args = alerting(&down, 1);
    let mut collector = start(&data, &token, &args);
    post(&collector, 0, true);
    post(&collector, 1, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while *down.tries.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the message was never tried");
        std::thread::sleep(Duration::from_millis(50));
    }
    collector.kill();
    *down.mode.lock().unwrap() = Mode::Answer(200);
    let collector = start(&data, &token, &args);
    let got = down.wait_for(1);
    assert_eq!(got[0]["event"], "failing");
    // The cell starts at the store's verdict (failing): a pass is a recovery.
    post(&collector, 2, true);
    let got = down.wait_for(2);
    assert_eq!(got[1]["event"], "recovered", "{got:#?}");
}

#[test]
fn a_message_cut_off_by_a_crash_is_sent_again_with_the_same_id_to_drop_the_repeat_by() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let data = dir.path().join("data");
    let hanging = receiver(Mode::Hang);
    let args = alerting(&hanging, 1);
    let mut collector = start(&data, &token, &args);
    post(&collector, 0, true);
    post(&collector, 1, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hanging.keys.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the message was never tried");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The receiver may have acted on it without answering: the collector cannot know.
    collector.kill();
    *hanging.mode.lock().unwrap() = Mode::Answer(200);
    let _collector = start(&data, &token, &args);
    let got = hanging.wait_for(1);
    let keys = hanging.keys.lock().unwrap().clone();
    let (first_key, first) = &keys[0];
    let (last_key, last) = keys.last().unwrap();
    let id = first["id"].as_str().expect("a webhook's message has an id");
    assert_eq!(id.len(), 32, "{first}");
    assert_eq!(
        first_key.as_deref(),
        Some(id),
        "the header is the body's id"
    );
    assert_eq!(
        last_key.as_deref(),
        Some(id),
        "sent again with the same key"
    );
    assert_eq!(last, first, "the same message, byte for byte as JSON");
    assert_eq!(got[0]["id"], first["id"]);
    assert_eq!(got[0]["event"], "failing");
}

#[test]
fn a_bad_alert_is_one_line_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, want) in [
        ("pager=http://x/", "write webhook=URL or slack=URL"),
        ("webhook=ftp://x/", "must start with http:// or https://"),
        ("slack=", "must start with http:// or https://"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_probe"))
            .args(["collect", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(["--alert", spec])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {said}");
        assert_eq!(said.trim().lines().count(), 1, "{spec}: {said}");
        assert!(said.contains(want), "{spec}: {said}");
    }
}

#[test]
fn a_report_that_comes_late_counts_where_it_falls_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let up = receiver(Mode::Answer(200));
    let args = alerting(&up, 3);
    let collector = start(&dir.path().join("data"), &token, &args);
    post(&collector, 0, true);
    post(&collector, 1, false);
    post(&collector, 3, false);
    // Made at 10:02 and sent last (an agent's spool, another collector's report followed
    // from a shared store): the third failure in a row.
    post(&collector, 2, false);
    let got = up.wait_for(1);
    assert_eq!(got[0]["event"], "failing");
    assert_eq!(got[0]["reports"], 3);
    assert_eq!(
        got[0]["at"], "2026-12-04T10:03:00Z",
        "the newest report's time"
    );
    // Sent again: stored and counted once.
    let (status, answer) = post_signed(&collector.url, &report(2, false));
    assert_eq!((status, &answer["stored"]), (200, &Value::Bool(false)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(up.got.lock().unwrap().len(), 1);
}

#[test]
fn a_change_counted_before_a_restart_is_told_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let data = dir.path().join("data");
    let up = receiver(Mode::Answer(200));
    let args = alerting(&up, 3);
    let mut collector = start(&data, &token, &args);
    post(&collector, 0, true);
    post(&collector, 1, false);
    post(&collector, 2, false);
    // Two of three: nothing told yet, and the store's newest verdict is the failure.
    collector.kill();
    let collector = start(&data, &token, &args);
    post(&collector, 3, false);
    let got = up.wait_for(1);
    assert_eq!(got[0]["event"], "failing", "{got:#?}");
    assert_eq!(got[0]["reports"], 3, "{got:#?}");
    assert_eq!(got[0]["from"]["path"], "gateway-endpoint", "{got:#?}");
}

#[test]
fn collectors_sharing_postgres_count_each_others_reports_in_time_order_and_tell_each_change_once() {
    if !Postgres::available("alerts-shared") {
        return;
    }
    let pg = Postgres::start();
    let url = pg.database("alerts");
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let up = receiver(Mode::Answer(200));
    let mut args = vec!["--database".to_string(), url];
    args.extend(alerting(&up, 2));
    let (a, b) = (
        start(&dir.path().join("a"), &token, &args),
        start(&dir.path().join("b"), &token, &args),
    );
    // Each report to the other collector than the one before: neither takes two failures
    // in a row, so only a count of both collectors' reports reaches --alert-after 2. Each
    // waits for the other collector to follow the one before (every 500 ms).
    for (n, pass) in [true, false, false, true, true].into_iter().enumerate() {
        let to = if n % 2 == 0 { &a } else { &b };
        post(to, u32::try_from(n).unwrap(), pass);
        std::thread::sleep(Duration::from_millis(1_500));
    }
    up.wait_for(2);
    // Both collectors saw each change; a second message would come within a few seconds.
    std::thread::sleep(Duration::from_secs(4));
    let got = up.got.lock().unwrap().clone();
    let events: Vec<(&str, u64)> = got
        .iter()
        .map(|m| (m["event"].as_str().unwrap(), m["reports"].as_u64().unwrap()))
        .collect();
    assert_eq!(events, [("failing", 2), ("recovered", 2)], "{got:#?}");

    // Out of order: A takes the failure of 10:06, which B follows; then B takes the one of
    // 10:05. Each collector sees the older report after the newer, and counts both.
    post(&a, 6, false);
    std::thread::sleep(Duration::from_millis(1_500));
    post(&b, 5, false);
    let got = up.wait_for(3);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(up.got.lock().unwrap().len(), 3, "told once: {got:#?}");
    assert_eq!(
        (got[2]["event"].as_str(), got[2]["reports"].as_u64()),
        (Some("failing"), Some(2))
    );
    assert_eq!(got[2]["at"], "2026-12-04T10:06:00Z");
}
