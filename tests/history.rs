//! A cell's history over HTTP on 127.0.0.1: `GET /v1/history` in time order, filtered by
//! instance, target and time, cut to the newest; `GET /v1/uptime`, its hours, which outlive
//! the reports' retention; `GET /cell`, the page with the uptime, the timeline, the last
//! report and everything from reports escaped; all behind the read token.

mod support;

use serde_json::Value;
use support::collector::{Collector, get, get_as, post_signed, sample_report, token_file};

/// Report `n` of `host`, its target `target` passing through the gateway endpoint or not.
fn report(host: &str, target: &str, n: u32, pass: bool) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&sample_report(&format!("h-{host}-{n}-{}", target.len()))).unwrap();
    v["agent"]["hostname"] = Value::String(host.into());
    v["started_at"] = Value::String(format!("2026-12-04T10:{n:02}:00Z"));
    let t = &mut v["targets"][0];
    t["target"] = Value::String(target.into());
    t["verdict"]["pass"] = Value::Bool(pass);
    t["verdict"]["path"] = Value::String(if pass { "gateway-endpoint" } else { "public" }.into());
    t["verdict"]["reason"] = Value::String(format!("because {n} <b>"));
    serde_json::to_vec(&v).unwrap()
}

fn post(c: &Collector, body: &[u8]) {
    let (status, answer) = post_signed(&c.url, body);
    assert_eq!(status, 201, "{answer}");
}

#[test]
fn a_cells_history_in_time_order_filtered_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let c = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    // Sent out of order (a spool flushed late), with another instance and another target.
    for n in [1, 3, 2, 5, 4] {
        post(&c, &report("web-1", "s3", n, n % 2 == 1));
    }
    post(&c, &report("web-2", "s3", 1, false));
    post(&c, &report("web-1", "sts", 1, false));

    let (status, body) = get(&format!("{}/v1/history?instance=web-1&target=s3", c.url));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let points = v["points"].as_array().unwrap();
    let at: Vec<&str> = points.iter().map(|p| p["at"].as_str().unwrap()).collect();
    assert_eq!(
        at,
        [1, 2, 3, 4, 5].map(|n| format!("2026-12-04T10:{n:02}:00Z")),
        "{body}"
    );
    assert_eq!(points[1]["path"], "public");
    assert_eq!(points[1]["pass"], false);
    assert_eq!(points[0]["path"], "gateway-endpoint");
    assert_eq!(v["cut"], false);

    let since = get(&format!(
        "{}/v1/history?instance=web-1&target=s3&since=2026-12-04T10:04:00Z",
        c.url
    ))
    .1;
    let v: Value = serde_json::from_str(&since).unwrap();
    assert_eq!(v["points"].as_array().unwrap().len(), 2, "{since}");

    let cut = get(&format!(
        "{}/v1/history?instance=web-1&target=s3&limit=2",
        c.url
    ))
    .1;
    let v: Value = serde_json::from_str(&cut).unwrap();
    assert_eq!(v["cut"], true);
    assert_eq!(v["points"][1]["at"], "2026-12-04T10:05:00Z", "{cut}");

    for bad in [
        "/v1/history?target=s3",
        "/v1/history?instance=web-1&target=s3&since=yesterday",
    ] {
        let (status, body) = get(&format!("{}{bad}", c.url));
        assert_eq!(status, 400, "{bad}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(!v["error"].as_str().unwrap().contains('\n'));
    }
}

#[test]
fn the_cell_page_draws_the_timeline_and_the_last_report_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let c = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let hostile = "<script>alert(1)</script>.example";
    for n in 1..=4 {
        post(&c, &report("web-1", hostile, n, n != 3));
    }
    let dashboard = get(&format!("{}/", c.url)).1;
    assert!(
        dashboard.contains("href=\"/cell?instance=web-1&amp;target=%3Cscript%3Ealert%281%29%3C%2Fscript%3E.example\""),
        "{dashboard}"
    );
    let url = format!(
        "{}/cell?instance=web-1&target=%3Cscript%3Ealert%281%29%3C%2Fscript%3E.example",
        c.url
    );
    let (status, page) = get(&url);
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script>"), "unescaped: {page}");
    assert!(!page.contains("because 4 <b>"), "unescaped: {page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;.example"));
    let timeline = page.split("id=\"timeline\"").nth(1).unwrap();
    assert_eq!(timeline.matches("<span class=\"bar ").count(), 4, "{page}");
    assert_eq!(
        timeline.matches("class=\"bar public fail").count(),
        1,
        "{page}"
    );
    assert!(page.contains("id=\"verdict\""), "{page}");
    assert!(page.contains("because 4 &lt;b&gt;"), "{page}");
    assert!(page.contains("id=\"addresses\""), "{page}");
    // The addresses' cells as the table shows them: HTTP with its status code.
    assert!(
        page.contains("<td>10.10.1.100</td><td>endpoint-eni</td><td>0/2</td>"),
        "{page}"
    );
    assert!(page.contains("<td>404 0.8ms</td>"), "{page}");

    let empty = get(&format!("{}/cell?instance=web-9&target=s3", c.url)).1;
    assert!(empty.contains("id=\"none\""), "{empty}");
}

/// `report` made at `at`, with an id of its own.
fn report_at(host: &str, target: &str, at: std::time::SystemTime, pass: bool) -> Vec<u8> {
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut v: Value = serde_json::from_slice(&report(host, target, 0, pass)).unwrap();
    v["id"] = Value::String(format!("u-{host}-{target}-{secs}"));
    v["started_at"] = Value::String(humantime::format_rfc3339_seconds(at).to_string());
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn uptime_counts_each_report_once_by_the_hour_and_outlives_retention() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    // Reports older than 2 s go (checked every second), but each cell's newest.
    let c = Collector::start_with(
        &dir.path().join("data"),
        &token,
        "127.0.0.1:0",
        &["--retain", "2s"],
    );
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let hour = UNIX_EPOCH + Duration::from_secs((secs - 7200) / 3600 * 3600);
    let early = [
        report_at("web-1", "s3", hour + Duration::from_secs(60), true),
        report_at("web-1", "s3", hour + Duration::from_secs(120), false),
    ];
    for body in &early {
        post(&c, body);
    }
    // A copy is stored once, and counted once.
    let (status, _) = post_signed(&c.url, &early[0]);
    assert_eq!(status, 200);
    post(&c, &report_at("web-1", "s3", now, true));
    post(&c, &report_at("web-1", "sts", now, false));

    // The retention takes the two early reports off; their hour stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value =
            serde_json::from_str(&get(&format!("{}/v1/history?instance=web-1&target=s3", c.url)).1)
                .unwrap();
        if v["points"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not retained: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = get(&format!("{}/v1/uptime?instance=web-1&target=s3", c.url));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let hours = v["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 2, "{body}");
    assert_eq!(v["cut"], false, "{body}");
    let first = &hours[0];
    assert_eq!(
        first["hour"],
        humantime::format_rfc3339_seconds(hour).to_string(),
        "{body}"
    );
    assert_eq!(
        (&first["reports"], &first["passed"], &first["path"]),
        (&Value::from(2), &Value::from(1), &Value::from("public")),
        "the two reports, the newest's path: {body}"
    );
    assert_eq!(
        (&hours[1]["reports"], &hours[1]["passed"]),
        (&Value::from(1), &Value::from(1))
    );

    let since = humantime::format_rfc3339_seconds(now - Duration::from_secs(60));
    let recent = get(&format!(
        "{}/v1/uptime?instance=web-1&target=s3&since={since}",
        c.url
    ))
    .1;
    let v: Value = serde_json::from_str(&recent).unwrap();
    assert_eq!(v["hours"].as_array().unwrap().len(), 1, "{recent}");

    let page = get(&format!("{}/cell?instance=web-1&target=s3", c.url)).1;
    assert!(
        page.contains("<b>66.6 %</b> of 3 over the last day"),
        "{page}"
    );
    let days = page.split("id=\"days\"").nth(1).unwrap();
    let days = &days[..days.find("</div>").unwrap()];
    assert_eq!(days.matches("<span class=\"bar ").count(), 90, "{page}");
    assert_eq!(
        days.matches("bar none").count(),
        89 - usize::from(secs % 86400 < 7200),
        "{page}"
    );
    let bad = get(&format!(
        "{}/v1/uptime?instance=web-1&target=s3&since=soon",
        c.url
    ));
    assert_eq!(bad.0, 400, "{}", bad.1);
}

#[test]
fn an_upgraded_store_counts_its_reports_into_hours_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let data = dir.path().join("data");
    let mut c = Collector::start(&data, &token, "127.0.0.1:0");
    let now = std::time::SystemTime::now();
    post(&c, &report_at("web-1", "s3", now, true));
    post(
        &c,
        &report_at(
            "web-1",
            "s3",
            now - std::time::Duration::from_secs(1),
            false,
        ),
    );
    c.kill();
    // As a collector before the hours left it.
    rusqlite::Connection::open(data.join("probe.db"))
        .unwrap()
        .execute_batch("DROP TABLE hours; DELETE FROM schema_migrations WHERE version = 5")
        .unwrap();
    let c = Collector::start(&data, &token, "127.0.0.1:0");
    assert!(
        c.lines()
            .iter()
            .any(|l| l.contains("upgrade: counting the 2 stored report(s) into hours, once")),
        "{:?}",
        c.lines()
    );
    let body = get(&format!("{}/v1/uptime?instance=web-1&target=s3", c.url)).1;
    let v: Value = serde_json::from_str(&body).unwrap();
    let hours = v["hours"].as_array().unwrap();
    let reports: i64 = hours.iter().map(|h| h["reports"].as_i64().unwrap()).sum();
    let passed: i64 = hours.iter().map(|h| h["passed"].as_i64().unwrap()).sum();
    assert_eq!((reports, passed), (2, 1), "{body}");
}

#[test]
fn history_needs_the_read_token_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let read = dir.path().join("read");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &read,
            "read-token-c2VjcmV0LXJlYWQtdG9rZW4tZm9yLXRoZS1jb2xsZWN0b3I\n",
        )
        .unwrap();
        std::fs::set_permissions(&read, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let c = Collector::start_with(
        &dir.path().join("data"),
        &token,
        "127.0.0.1:0",
        &["--read-token-file", read.to_str().unwrap()],
    );
    post(&c, &report("web-1", "s3", 1, true));
    for path in [
        "/v1/history?instance=web-1&target=s3",
        "/v1/uptime?instance=web-1&target=s3",
        "/cell?instance=web-1&target=s3",
    ] {
        let (status, _) = get(&format!("{}{path}", c.url));
        assert_eq!(status, 401, "{path}");
        let (status, body) = get_as(
            &format!("{}{path}", c.url),
            "read-token-c2VjcmV0LXJlYWQtdG9rZW4tZm9yLXRoZS1jb2xsZWN0b3I",
        );
        assert_eq!(status, 200, "{path}: {body}");
    }
}
