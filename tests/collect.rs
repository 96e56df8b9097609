//! `probe collect` and `probe check --report-to`, over real HTTP on 127.0.0.1.

mod support;

use probe::auth::Token;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::collector::{
    Collector, TOKEN, exported, get, get_as, post, post_signed, sample_report, signed, stored_ids,
    token_file,
};
use support::{probe, run_within, servers};

/// `probe check` of one loopback web server, reporting to `url`.
fn check_and_report(url: &str, token: &Path, spool: &Path, web: u16) -> (i32, Value, String) {
    let mut cmd = probe();
    cmd.args([
        "check",
        &format!("http://127.0.0.1:{web}/"),
        "--ping-count",
        "0",
        "-o",
        "json",
        "--report-to",
        url,
        "--token-file",
    ])
    .arg(token)
    .arg("--spool")
    .arg(spool);
    let out = run_within(&mut cmd, Duration::from_secs(60));
    (
        out.code,
        serde_json::from_str(&out.stdout).unwrap(),
        out.stderr,
    )
}

#[test]
fn reports_travel_from_check_to_the_dashboard_api_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let (code, report, stderr) = check_and_report(
        &collector.url,
        &token,
        &dir.path().join("spool"),
        web.addr.port(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 report(s) sent"), "{stderr}");
    let id = report["id"].as_str().unwrap();
    assert_eq!(stored_ids(&collector.url), vec![id.to_string()]);
    let (code, metrics) = get(&format!("{}/metrics", collector.url));
    assert_eq!(code, 200);
    assert!(metrics.contains("probe_success{instance=\""), "{metrics}");
    assert!(
        metrics.contains("probe_collector_reports_total 1"),
        "{metrics}"
    );
    let (code, page) = get(&format!("{}/", collector.url));
    assert_eq!(code, 200);
    assert!(page.contains("data-path=\"special\""), "{page}");
}

#[test]
fn a_collector_that_was_down_gets_every_report_once() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let spool = dir.path().join("spool");
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let down = format!("http://127.0.0.1:{}", servers::refused_port());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, report, stderr) = check_and_report(&down, &token, &spool, web.addr.port());
        assert!(stderr.contains("kept in"), "{stderr}");
        ids.push(report["id"].as_str().unwrap().to_string());
    }
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 3);
    let collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let (_, report, stderr) = check_and_report(&collector.url, &token, &spool, web.addr.port());
    assert!(stderr.contains("4 report(s) sent"), "{stderr}");
    ids.push(report["id"].as_str().unwrap().to_string());
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let mut stored = stored_ids(&collector.url);
    stored.sort();
    ids.sort();
    assert_eq!(stored, ids, "each report exactly once");
}

#[test]
fn bad_tokens_replays_and_bad_bodies_get_a_4xx_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let url = &collector.url;
    let token = Token::new(TOKEN).unwrap();
    let wrong = Token::new("not-the-collector-token").unwrap();
    let now = probe::auth::now();
    let body = sample_report("good-1");
    for (name, body, headers, status) in [
        ("unsigned", body.clone(), vec![], 401),
        ("wrong token", body.clone(), signed(&wrong, now, &body), 401),
        (
            "stale",
            body.clone(),
            signed(&token, now - 3600, &body),
            401,
        ),
        (
            "malformed",
            b"{not json".to_vec(),
            signed(&token, now, b"{not json"),
            400,
        ),
        (
            "not a report",
            b"{}".to_vec(),
            signed(&token, now, b"{}"),
            400,
        ),
    ] {
        let (code, answer) = post(url, &body, &headers);
        assert_eq!(code, status, "{name}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {answer}"
        );
    }
    let mut wrong_schema: Value = serde_json::from_slice(&body).unwrap();
    wrong_schema["schema"] = "probe.report/v0".into();
    let wrong_schema = serde_json::to_vec(&wrong_schema).unwrap();
    let (code, _) = post(url, &wrong_schema, &signed(&token, now, &wrong_schema));
    assert_eq!(code, 422);
    let mut no_time: Value = serde_json::from_slice(&body).unwrap();
    no_time["started_at"] = "soon".into();
    let no_time = serde_json::to_vec(&no_time).unwrap();
    let (code, answer) = post(url, &no_time, &signed(&token, now, &no_time));
    assert_eq!(code, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("started_at must be an RFC 3339 time")),
        "{answer}"
    );
    let huge = vec![b' '; (1 << 20) + 1];
    let (code, _) = post(url, &huge, &signed(&token, now, &huge));
    assert_eq!(code, 413);
    assert!(stored_ids(url).is_empty(), "nothing stored");

    let headers = signed(&token, now, &body);
    let (code, answer) = post(url, &body, &headers);
    assert_eq!((code, &answer["stored"]), (201, &Value::Bool(true)));
    let (code, answer) = post(url, &body, &headers);
    assert_eq!(
        (code, &answer["stored"]),
        (200, &Value::Bool(false)),
        "a replay stores nothing"
    );
    assert_eq!(stored_ids(url).len(), 1);
}

#[test]
fn the_collector_refuses_to_listen_openly_without_a_token_or_with_a_bad_data_dir() {
    let out = run_within(
        probe().args(["collect", "--listen", "0.0.0.0:0"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("without --token-file"),
        "{}",
        out.stderr
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = run_within(
        probe()
            .args(["collect", "--listen", "127.0.0.1:0", "--data"])
            .arg(file.path()),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("data directory"), "{}", out.stderr);
    let out = run_within(
        probe().args(["check", "127.0.0.1:9", "--report-to", "http://127.0.0.1:1"]),
        Duration::from_secs(10),
    );
    assert_eq!(
        out.code, 2,
        "--report-to needs --token-file: {}",
        out.stderr
    );
}

/// A collector serving HTTPS on 127.0.0.1 with a certificate from a test CA, which is
/// returned for the clients to trust.
fn tls_collector(dir: &Path, token: &Path) -> (servers::Pki, Collector) {
    let pki = servers::Pki::new();
    let leaf = pki.leaf(&["127.0.0.1"]);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &leaf.pem.0).unwrap();
    std::fs::write(&key, &leaf.pem.1).unwrap();
    let collector = Collector::start_with(
        &dir.join("data"),
        token,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    (pki, collector)
}

#[test]
fn reports_travel_over_tls_to_a_collector_the_agent_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (pki, collector) = tls_collector(dir.path(), &token);
    assert!(collector.url.starts_with("https://"), "{}", collector.url);
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let spool = dir.path().join("spool");
    let target = format!("http://127.0.0.1:{}/", web.addr.port());
    let send = |trust: bool| {
        let mut cmd = probe();
        cmd.args([
            "check",
            &target,
            "--ping-count",
            "0",
            "-o",
            "json",
            "--report-to",
            &collector.url,
            "--token-file",
        ])
        .arg(&token)
        .arg("--spool")
        .arg(&spool);
        if trust {
            cmd.arg("--ca-file").arg(&pki.ca_file);
        }
        run_within(&mut cmd, Duration::from_secs(20)).stderr
    };
    let untrusted = send(false);
    assert!(
        untrusted.contains("kept in"),
        "an unknown issuer is not trusted: {untrusted}"
    );
    let trusted = send(true);
    assert!(trusted.contains("2 report(s) sent"), "{trusted}");
}

#[test]
fn fields_a_newer_agent_adds_are_kept_in_the_log_the_api_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_path = token_file(dir.path());
    let mut v: Value = serde_json::from_slice(&sample_report("newer-1")).unwrap();
    v["agent"]["kernel"] = Value::String("6.1.115".into());
    v["targets"][0]["addresses"][0]["quic"] = serde_json::json!({"status": "ok"});
    // Pretty-printed over many lines, as a hand-made client might send it.
    let body = serde_json::to_vec_pretty(&v).unwrap();
    let token = Token::new(TOKEN).unwrap();
    {
        let collector = Collector::start(&data, &token_path, "127.0.0.1:0");
        let (code, answer) = post(
            &collector.url,
            &body,
            &signed(&token, probe::auth::now(), &body),
        );
        assert_eq!(code, 201, "{answer}");
    }
    let stored = exported(&data, None);
    assert_eq!(stored, ["newer-1"], "one document per report");
    let collector = Collector::start(&data, &token_path, "127.0.0.1:0");
    let (_, listed) = get(&format!("{}/v1/reports", collector.url));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let stored = &listed["reports"][0];
    assert_eq!(stored["agent"]["kernel"], "6.1.115");
    assert_eq!(stored["targets"][0]["addresses"][0]["quic"]["status"], "ok");
    assert_eq!(stored["id"], "newer-1");
}

#[test]
fn a_source_over_the_rate_limit_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
        &["--rate-limit", "1"],
    );
    let token = Token::new(TOKEN).unwrap();
    let codes: Vec<u16> = (0..4)
        .map(|n| {
            let body = sample_report(&format!("rate-{n}"));
            post(
                &collector.url,
                &body,
                &signed(&token, probe::auth::now(), &body),
            )
            .0
        })
        .collect();
    assert_eq!(
        codes,
        vec![201, 201, 429, 429],
        "a burst of 2, then refused"
    );
}

#[test]
fn a_relay_with_its_upstream_down_then_up_delivers_everything_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let upstream_port = servers::refused_port();
    let relay_data = dir.path().join("relay");
    let relay = Collector::start_with(
        &relay_data,
        &token,
        "127.0.0.1:0",
        &["--forward", &format!("http://127.0.0.1:{upstream_port}")],
    );
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let spool = dir.path().join("spool");
    let mut ids: Vec<String> = (0..3)
        .map(|_| {
            let (_, report, stderr) = check_and_report(&relay.url, &token, &spool, web.addr.port());
            assert!(
                stderr.contains("1 report(s) sent"),
                "the relay stores while upstream is down: {stderr}"
            );
            report["id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let upstream = Collector::start(
        &dir.path().join("upstream"),
        &token,
        &format!("127.0.0.1:{upstream_port}"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut stored = stored_ids(&upstream.url);
    while stored.len() < ids.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        stored = stored_ids(&upstream.url);
    }
    stored.sort();
    assert_eq!(stored, ids, "every report, once");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_dir(relay_data.join("forward"))
            .unwrap()
            .count(),
        0,
        "the queue is empty"
    );

    // The relay serves its own executable with its sha256.
    let file = dir.path().join("probe-download");
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o"])
        .arg(&file)
        .arg(format!("{}/v1/probe", relay.url))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let sha = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-probe-sha256: "))
        .expect("sha256 header")
        .trim()
        .to_string();
    let bytes = std::fs::read(&file).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    assert_eq!(probe::auth::hex(digest.as_ref()), sha);
    assert_eq!(bytes, std::fs::read(env!("CARGO_BIN_EXE_probe")).unwrap());
}

/// Issue 9, 3: a redirect in front of the collector. A 301/302 turned the POST into a GET
/// whose 2xx made the agent drop a report never stored; a 307 sent the signed body on. Now
/// nothing is followed, the report stays in the spool, and one line names the Location; a
/// 2xx that is not a collector's acknowledgement keeps it too.
#[test]
fn the_agent_never_follows_a_redirect_and_keeps_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let spool = dir.path().join("spool");
    let collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let location: &'static str =
        Box::leak(format!("Location: {}/v1/reports\r\n", collector.url).into_boxed_str());
    for status in [301, 302, 307, 308] {
        let redirect = servers::http(servers::Behavior::Respond {
            status,
            headers: location,
            body: "",
        });
        let url = format!("http://{}", redirect.addr);
        let (_, _, stderr) = check_and_report(&url, &token, &spool, web.addr.port());
        assert!(
            stderr.contains(&format!(
                "HTTP {status} redirecting to {}/v1/reports",
                collector.url
            )),
            "{status}: {stderr}"
        );
        assert!(stderr.contains("kept in"), "{status}: {stderr}");
    }
    let page = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "<html>welcome</html>",
    });
    let (_, _, stderr) = check_and_report(
        &format!("http://{}", page.addr),
        &token,
        &spool,
        web.addr.port(),
    );
    assert!(
        stderr.contains("without the collector's acknowledgement"),
        "{stderr}"
    );
    assert!(stored_ids(&collector.url).is_empty(), "nothing went on");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 5, "all kept");
    // Pointed at the collector itself, every kept report arrives.
    let (_, _, stderr) = check_and_report(&collector.url, &token, &spool, web.addr.port());
    assert!(stderr.contains("6 report(s) sent"), "{stderr}");
    assert_eq!(stored_ids(&collector.url).len(), 6);
}

/// Issue 9, 6 and 9: a spool folder that holds what probe did not write. A directory named
/// like a report blocked every later run, and any *.json was uploaded and deleted when
/// refused. Now only probe's own files (by name and content) are sent or removed.
#[test]
fn the_spool_sends_and_removes_only_what_probe_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(spool.join("000000000000000-x.json")).unwrap();
    let notes = spool.join("notes.json");
    std::fs::write(&notes, "{\"mine\": true}").unwrap();
    let lookalike = spool.join("000000000000001-abc.json");
    std::fs::write(
        &lookalike,
        "{\"schema\": \"probe.report/v1\", \"id\": \"other\"}",
    )
    .unwrap();
    let collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let (_, report, stderr) = check_and_report(&collector.url, &token, &spool, web.addr.port());
    assert!(stderr.contains("1 report(s) sent"), "{stderr}");
    assert_eq!(
        stored_ids(&collector.url),
        vec![report["id"].as_str().unwrap().to_string()]
    );
    assert!(spool.join("000000000000000-x.json").is_dir());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "{\"mine\": true}");
    assert!(
        lookalike.is_file(),
        "a file probe did not write is left alone"
    );
}

/// Issue 9, 8: escape sequences, CR and newlines in a report's host name and target were
/// printed raw on the collector's terminal, and a newline forged a change line.
#[test]
fn what_reports_say_reaches_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let mut report: Value = serde_json::from_slice(&sample_report("hostile-1")).unwrap();
    report["agent"]["hostname"] = "web\u{1b}[2J\r\n2026-01-01 fake -> s3: public -> vpc".into();
    report["targets"][0]["target"] = "s3\u{1b}]0;owned\u{7}".into();
    let first = serde_json::to_vec(&report).unwrap();
    let (status, _) = post_signed(&collector.url, &first);
    assert_eq!(status, 201);
    // A second verdict for the same instance and target makes a change line.
    report["id"] = "hostile-2".into();
    report["started_at"] = "2099-01-01T00:00:00Z".into();
    report["targets"][0]["verdict"]["path"] = "unreachable".into();
    let second = serde_json::to_vec(&report).unwrap();
    let (status, _) = post_signed(&collector.url, &second);
    assert_eq!(status, 201);
    let line = collector
        .wait_for_line("-> unreachable", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{:#?}", collector.lines()));
    assert!(
        line.contains("web\\u{1b}[2J\\r\\n2026-01-01 fake"),
        "{line}"
    );
    assert!(line.contains("s3\\u{1b}]0;owned\\u{7}"), "{line}");
    for l in collector.lines() {
        assert!(
            !l.contains('\u{1b}') && !l.contains('\r'),
            "raw control text: {l:?}"
        );
        assert!(!l.starts_with("2026-01-01 fake"), "a forged line: {l:?}");
    }
}

/// Issue 9, 9: a 100,000-deep array in an unknown field was stored and served, breaking
/// every reader of the API.
#[test]
fn a_report_nested_too_deep_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let report = String::from_utf8(sample_report("deep-1")).unwrap();
    let deep = format!(
        "{{\"deep\":{}{},{}",
        "[".repeat(100_000),
        "]".repeat(100_000),
        &report[1..]
    );
    let (status, answer) = post_signed(&collector.url, deep.as_bytes());
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("nested 100001 levels deep"),
        "{answer}"
    );
    assert!(stored_ids(&collector.url).is_empty());
}

/// Issue 9, 4: a relay whose forward queue could not be written answered 503 ("stored, but
/// not queued"), then 200 "already stored" to the agent's retry, which dropped the report:
/// the upstream never got it. Now a relay acknowledges only what is in its log and its queue.
#[test]
fn a_relay_acknowledges_only_what_it_has_queued() {
    if !support::can_run("relay-queue", &["unshare", "mount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The relay alone sees its queue read-only (a mount namespace of its own), as if the
    // disk refused the file.
    let relay = relay_with_own_queue(
        dir.path(),
        "mount --bind {q} {q} && mount -o remount,bind,ro {q} {q}",
        &format!("http://127.0.0.1:{}", servers::refused_port()),
    );
    let body = sample_report("queued-1");
    for attempt in ["first", "retry"] {
        let (status, answer) = post_signed(&relay.url, &body);
        assert_eq!(status, 503, "{attempt}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("not queued for forwarding"),
            "{attempt}: {answer}"
        );
    }
}

/// Issue 17: "a relay whose queue folder has no free inodes acknowledged 35 of 36 reports it
/// never forwarded". The relay's queue is a tmpfs of 11 inodes (its root and 10 reports) in a
/// mount namespace of its own, and the upstream does not answer until the queue is full: the
/// relay acknowledges the 10 it queued, answers 503 to the 11th, and every acknowledged
/// report reaches the upstream once it answers; the refused one, sent again, goes too.
#[test]
fn a_relay_with_no_free_inodes_acknowledges_only_what_it_can_forward() {
    if !support::can_run("relay-inodes", &["unshare", "mount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (open, gate) = std::sync::mpsc::channel();
    let (port, acked) = gated_upstream(Duration::ZERO, gate);
    let relay = relay_with_own_queue(
        dir.path(),
        "mount -t tmpfs -o nr_inodes=11,size=4m probe-queue {q}",
        &format!("http://127.0.0.1:{port}"),
    );
    let mut answered = Vec::new();
    for n in 0..11 {
        let id = format!("inode-{n}");
        let (status, answer) = post_signed(&relay.url, &sample_report(&id));
        answered.push((id, status, answer));
    }
    let ok: Vec<String> = answered
        .iter()
        .filter(|(_, s, _)| *s == 201)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(ok.len(), 10, "{answered:?}");
    let (_, status, answer) = &answered[10];
    assert_eq!(*status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{answer}"
    );
    open.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while acked.lock().unwrap().len() < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledged but not forwarded: {:?} of {ok:?}",
            acked.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut forwarded = acked.lock().unwrap().clone();
    forwarded.sort();
    let mut want = ok.clone();
    want.sort();
    assert_eq!(forwarded, want);
    // Room again: the refused report, sent again, is queued and forwarded.
    let (status, answer) = post_signed(&relay.url, &sample_report("inode-10"));
    assert!(status == 200 || status == 201, "{answer}");
    while !acked.lock().unwrap().contains(&"inode-10".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "inode-10 not forwarded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A relay in `dir` forwarding to `upstream`, whose queue folder (`{q}`) the shell command
/// `mount` remounts in a mount namespace the relay alone sees.
fn relay_with_own_queue(dir: &Path, mount: &str, upstream: &str) -> Collector {
    let token = token_file(dir);
    let data = dir.join("relay");
    let queue = data.join("forward");
    std::fs::create_dir_all(&queue).unwrap();
    let mount = mount.replace("{q}", queue.to_str().unwrap());
    let probe_bin = env!("CARGO_BIN_EXE_probe");
    let mut cmd = Command::new("unshare");
    support::isolate(&mut cmd);
    cmd.args([
        "-m",
        "sh",
        "-c",
        &format!("mount --make-rprivate / && {mount} && exec {probe_bin} \"$@\""),
        "sh",
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--forward",
        upstream,
    ]);
    Collector::spawn(cmd)
}

/// An upstream that answers 500 to every report holding "poison" and acknowledges the rest,
/// as a collector does, after `delay`; counts what it acknowledged.
fn picky_upstream(delay: Duration) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let (_, open) = std::sync::mpsc::channel();
    gated_upstream(delay, open)
}

/// [`picky_upstream`], accepting no connection before `gate` says so (or is dropped).
fn gated_upstream(
    delay: Duration,
    gate: std::sync::mpsc::Receiver<()>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = acked.clone();
    std::thread::spawn(move || {
        let _ = gate.recv();
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let body = servers::read_request(&mut reader).unwrap_or_default();
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(String::from))
                .unwrap_or_default();
            std::thread::sleep(delay);
            let (status, answer) = if id.contains("poison") {
                ("500 Oops", String::from("{\"error\":\"no\"}"))
            } else {
                seen.lock().unwrap().push(id.clone());
                (
                    "201 Created",
                    format!("{{\"id\":\"{id}\",\"stored\":true}}"),
                )
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, acked)
}

/// Issue 9, 6: an upstream answering 500 to one report stopped the relay's queue behind it
/// for good. Now the reports behind it go on, and the refused one is moved to the dead-letter
/// folder after bounded attempts, with a metric.
#[test]
fn a_report_the_upstream_keeps_refusing_never_blocks_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = token_file(dir.path());
    let (port, acked) = picky_upstream(Duration::ZERO);
    let data = dir.path().join("relay");
    let relay = Collector::start_with(
        &data,
        &token_path,
        "127.0.0.1:0",
        &[
            "--forward",
            &format!("http://127.0.0.1:{port}"),
            "--read-token-file",
            token_path.to_str().unwrap(),
        ],
    );
    for id in ["poison-1", "good-1", "good-2"] {
        let body = sample_report(id);
        let (status, answer) = post_signed(&relay.url, &body);
        assert_eq!(status, 201, "{answer}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reports behind the refused one were held: {:?}",
            acked.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead = data.join("forward").join(probe::deliver::DEAD);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let there = std::fs::read_dir(&dead).map_or(0, |d| d.filter_map(Result::ok).count());
        if there == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refused report was never moved aside: {:#?}",
            relay.lines()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, metrics) = get_as(&format!("{}/metrics", relay.url), TOKEN);
    assert!(
        metrics.contains("probe_relay_dead_letters_total 1"),
        "{metrics}"
    );
    assert!(
        relay
            .wait_for_line("moved to", Duration::from_secs(5))
            .is_some_and(|l| l.contains("refused 10 times")),
        "{:#?}",
        relay.lines()
    );
}

/// Issue 9, 9: delivery failures never changed the exit code. Now a run whose checks pass
/// but whose report the collector has not acknowledged exits 4; a failed check still
/// exits 1.
#[test]
fn an_undelivered_report_says_so_in_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let spool = dir.path().join("spool");
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let down = format!("http://127.0.0.1:{}", servers::refused_port());
    let (code, _, stderr) = check_and_report(&down, &token, &spool, web.addr.port());
    assert_eq!(code, 4, "{stderr}");
    let collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let (code, _, stderr) = check_and_report(&collector.url, &token, &spool, web.addr.port());
    assert_eq!(code, 0, "{stderr}");
    let refused = servers::refused_port();
    let mut cmd = probe();
    cmd.args([
        "check",
        &format!("127.0.0.1:{refused}"),
        "--ping-count",
        "0",
    ])
    .args(["-o", "json", "--report-to", &down, "--token-file"])
    .arg(&token)
    .arg("--spool")
    .arg(&spool);
    let out = run_within(&mut cmd, Duration::from_secs(20));
    assert_eq!(out.code, 1, "a failed check wins: {}", out.stderr);
}

/// Issue 9, 9: a slow collector held an agent run for over an hour with a full spool (each
/// report just under the 5 s a POST may take). Now a run sends for 30 s at most and keeps
/// the rest.
#[test]
fn a_slow_collector_holds_a_run_for_30_seconds_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    for n in 0..9 {
        let id = format!("waiting-{n}");
        std::fs::write(spool.join(format!("{n:015}-{id}.json")), sample_report(&id)).unwrap();
    }
    let (port, acked) = picky_upstream(Duration::from_secs(4));
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let start = std::time::Instant::now();
    let (code, _, stderr) = check_and_report(
        &format!("http://127.0.0.1:{port}"),
        &token,
        &spool,
        web.addr.port(),
    );
    let took = start.elapsed();
    assert_eq!(code, 4, "{stderr}");
    assert!(took < Duration::from_secs(36), "took {took:?}: {stderr}");
    assert!(stderr.contains("sending took 30 s"), "{stderr}");
    let sent = acked.lock().unwrap().len();
    assert!((6..=8).contains(&sent), "{sent} sent in 30 s at 4 s each");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        10 - sent,
        "the rest kept"
    );
}

/// Reads from `stream` until the collector closes it (or answers and closes); how long that
/// took and what it said. Fails the test when it is still open after `limit`.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> (Duration, String) {
    use std::io::Read;
    let start = std::time::Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {limit:?} ({e}): {}",
                String::from_utf8_lossy(&said)
            ),
        }
    }
    (start.elapsed(), String::from_utf8_lossy(&said).into_owned())
}

/// Issue 9, 1: headers at 1 byte/s, a slow body, an idle connection and an idle keep-alive
/// all stayed open past 150 s. Now headers and idleness get 10 s, a body 10 s.
#[test]
fn idle_and_slow_clients_are_cut_off() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let addr = collector.url.trim_start_matches("http://").to_string();
    let limit = Duration::from_secs(14);
    let cases: Vec<std::thread::JoinHandle<(&str, Duration, String)>> = vec![
        std::thread::spawn({
            let addr = addr.clone();
            move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                let (t, said) = closed_within(&mut s, limit);
                ("idle", t, said)
            }
        }),
        std::thread::spawn({
            let addr = addr.clone();
            move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                let writer = s.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut w = writer;
                    for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                        if w.write_all(&[*b]).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                });
                let (t, said) = closed_within(&mut s, limit);
                ("slow headers", t, said)
            }
        }),
        std::thread::spawn({
            let addr = addr.clone();
            move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let (t, said) = closed_within(&mut s, limit);
                ("idle keep-alive", t, said)
            }
        }),
        std::thread::spawn({
            let addr = addr.clone();
            move || {
                let token = Token::new(TOKEN).unwrap();
                let now = probe::auth::now();
                let sig = token.sign(now, b"{}");
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                write!(
                    s,
                    "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nx-probe-timestamp: {now}\r\nx-probe-signature: {sig}\r\n\r\n{{"
                )
                .unwrap();
                let (t, said) = closed_within(&mut s, limit);
                ("slow body", t, said)
            }
        }),
    ];
    for case in cases {
        let (name, took, said) = case.join().unwrap();
        assert!(took >= Duration::from_secs(8), "{name}: cut after {took:?}");
        if name == "slow body" {
            assert!(said.starts_with("HTTP/1.1 408"), "{name}: {said}");
        }
        if name == "idle keep-alive" {
            assert!(
                said.starts_with("HTTP/1.1 200"),
                "{name}: answered first: {said}"
            );
        }
    }
    // The collector still serves everyone else.
    let (code, _) = get(&format!("{}/metrics", collector.url));
    assert_eq!(code, 200);
}

/// Issue 9, 1: 1,100 idle connections from one client made every POST and GET time out.
/// Now one address holds at most 32, and another is served at once.
#[test]
fn one_source_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let addr: std::net::SocketAddr = collector.url.trim_start_matches("http://").parse().unwrap();
    let held: Vec<std::net::TcpStream> = (0..32)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(addr).unwrap();
    let (took, _) = closed_within(&mut extra, Duration::from_secs(3));
    assert!(took < Duration::from_secs(2), "the 33rd waited {took:?}");
    // Another source (127.0.0.2, still loopback) is served while the first holds its 32.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s: std::net::TcpStream = socket.into();
    std::io::Write::write_all(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let (took, said) = closed_within(&mut s, Duration::from_secs(3));
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(held);
}

/// Issue 9, 2: unsigned requests declaring a 1 MiB body had it read into memory before the
/// signature was looked at. Now the headers are checked first: the answer comes before the
/// body is sent.
#[test]
fn an_unsigned_request_is_refused_before_its_body_is_read() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &dir.path().join("data"),
        &token_file(dir.path()),
        "127.0.0.1:0",
    );
    let addr = collector.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 1048575\r\n\r\n")
        .unwrap();
    let (took, said) = closed_within(&mut s, Duration::from_secs(5));
    assert!(said.starts_with("HTTP/1.1 401"), "{said}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// Issue 9, 9: the read endpoints showed the VPC's layout to anyone who reached the port.
/// Now `--read-token-file` guards them (a bearer token, or a browser's password), and a
/// relay serves reports in and /v1/probe out only unless given one.
#[test]
fn reads_need_the_read_token_and_a_relay_serves_only_what_instances_need() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let guarded = Collector::start_with(
        &dir.path().join("guarded"),
        &token,
        "127.0.0.1:0",
        &["--read-token-file", token.to_str().unwrap()],
    );
    for path in ["/", "/v1/reports", "/metrics"] {
        let url = format!("{}{path}", guarded.url);
        assert_eq!(get(&url).0, 401, "{path} without the token");
        assert_eq!(get_as(&url, "not-the-read-token-at-all").0, 401, "{path}");
        assert_eq!(get_as(&url, TOKEN).0, 200, "{path} with the token");
    }
    let basic = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("operator:{TOKEN}"))
        .arg(format!("{}/", guarded.url))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&basic.stdout),
        "200",
        "a browser's password"
    );
    let relay = Collector::start_with(
        &dir.path().join("relay"),
        &token,
        "127.0.0.1:0",
        &["--forward", &guarded.url],
    );
    for path in ["/", "/v1/reports", "/metrics"] {
        let (code, body) = get(&format!("{}{path}", relay.url));
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("--read-token-file"), "{body}");
    }
    let body = sample_report("through-1");
    let (status, _) = post_signed(&relay.url, &body);
    assert_eq!(status, 201, "reports still go in");
    let (code, _) = get(&format!("{}/v1/probe", relay.url));
    assert_eq!(code, 200, "and probe still comes out");
}

/// Issue 9, 9: the report log grew for ever (about 5 GB a day for 1,000 instances each
/// minute). Now `--retain` and `--retain-size` keep it bounded while the collector runs,
/// always with the latest report of every instance and target, which a restart shows.
#[test]
fn retention_bounds_the_log_and_keeps_the_latest_of_everything() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = token_file(dir.path());
    let data = dir.path().join("data");
    let report = |id: &str, instance: &str, at: &str| {
        let mut v: Value = serde_json::from_slice(&sample_report(id)).unwrap();
        v["agent"]["hostname"] = instance.into();
        v["started_at"] = at.into();
        serde_json::to_vec(&v).unwrap()
    };
    let lines = |data: &Path| exported(data, None);
    {
        let collector =
            Collector::start_with(&data, &token_path, "127.0.0.1:0", &["--retain", "10s"]);
        for n in 0..6 {
            let body = report(
                &format!("a-{n}"),
                "i-aaaa",
                &format!("2020-01-01T00:00:0{n}Z"),
            );
            let (status, _) = post_signed(&collector.url, &body);
            assert_eq!(status, 201);
        }
        let body = report("b-0", "i-bbbb", "2020-01-01T00:00:00Z");
        let (status, _) = post_signed(&collector.url, &body);
        assert_eq!(status, 201);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lines(&data).len() > 2 {
            assert!(std::time::Instant::now() < deadline, "{:?}", lines(&data));
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(lines(&data), ["a-5", "b-0"], "the latest of each instance");
    }
    // After a restart, the dashboard still has both instances.
    let collector = Collector::start(&data, &token_path, "127.0.0.1:0");
    let (_, page) = get(&format!("{}/", collector.url));
    assert!(page.contains("i-aaaa") && page.contains("i-bbbb"), "{page}");
    drop(collector);

    // By size: the oldest go first, never the latest.
    let sized = dir.path().join("sized");
    let collector = Collector::start_with(
        &sized,
        &token_path,
        "127.0.0.1:0",
        &["--retain-size", "8KB"],
    );
    for n in 0..6 {
        let body = report(
            &format!("s-{n}"),
            "i-cccc",
            &format!("2026-11-25T10:00:0{n}Z"),
        );
        let (status, _) = post_signed(&collector.url, &body);
        assert_eq!(status, 201);
    }
    // Six documents of about 2.5 KB do not fit in 8 KB: the oldest go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lines(&sized).len() == 6 {
        assert!(std::time::Instant::now() < deadline, "{:?}", lines(&sized));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lines(&sized).last().map(String::as_str), Some("s-5"));
}

#[test]
fn retention_options_are_checked_before_anything_starts() {
    for (flag, value, want) in [
        (
            "--retain",
            "0s",
            "invalid value '0s' for '--retain <DURATION>': give a duration longer than zero",
        ),
        ("--retain", "forever", "'forever' for '--retain <DURATION>'"),
        (
            "--retain-size",
            "lots",
            "'lots' for '--retain-size <SIZE>': write a size",
        ),
        ("--retain-size", "0MB", "'0MB' for '--retain-size <SIZE>'"),
    ] {
        let out = run_within(
            probe().args(["collect", "--listen", "127.0.0.1:0", flag, value]),
            Duration::from_secs(10),
        );
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(want), "{flag} {value}: {}", out.stderr);
    }
}

/// Issue 9, 2: on a relay, 100 clients that asked for /v1/probe and never read took it
/// from 10 MB to 672 MB (the executable was read into memory per request). Now it is
/// streamed from the file.
#[test]
fn clients_that_never_read_the_executable_cost_the_relay_little() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let relay = Collector::start_with(
        &dir.path().join("relay"),
        &token,
        "127.0.0.1:0",
        &[
            "--forward",
            &format!("http://127.0.0.1:{}", servers::refused_port()),
        ],
    );
    let before = relay.rss_mb();
    let addr = relay.url.trim_start_matches("http://").to_string();
    // 30 of them: one source's cap is 32.
    let clients: Vec<std::net::TcpStream> = (0..30)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /v1/probe HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let during = relay.rss_mb();
    let exe = std::fs::metadata(env!("CARGO_BIN_EXE_probe"))
        .unwrap()
        .len();
    assert!(
        during - before < 64.0,
        "30 idle readers of a {exe}-byte executable took the relay from {before:.0} MB to {during:.0} MB"
    );
    drop(clients);
}

/// Issue 9, 9: a read-only spool sent nothing and exited 0. Now the run says the report was
/// neither spooled nor sent, and exits 4.
#[test]
fn a_read_only_spool_is_said_and_exits_4() {
    if !support::can_run("read-only-spool", &["unshare", "mount"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    let web = servers::http(servers::Behavior::Respond {
        status: 200,
        headers: "",
        body: "ok",
    });
    let s = spool.to_str().unwrap();
    let mut cmd = Command::new("unshare");
    support::isolate(&mut cmd);
    cmd.args(["-m", "sh", "-c"])
        .arg(format!(
            "mount --make-rprivate / && mount --bind {s} {s} && mount -o remount,bind,ro {s} {s} && exec {} \"$@\"",
            env!("CARGO_BIN_EXE_probe")
        ))
        .args(["sh", "check", &format!("http://127.0.0.1:{}/", web.addr.port())])
        .args(["--ping-count", "0", "-o", "json", "--report-to", &collector.url])
        .arg("--token-file")
        .arg(&token)
        .args(["--spool", s]);
    let out = run_within(&mut cmd, Duration::from_secs(20));
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("report not spooled, not sent"),
        "{}",
        out.stderr
    );
}

/// Issue 9, 1, over TLS: a client that never finishes the handshake, and one that completes
/// it and then says nothing, stayed open past 40 s. Both are cut after 10 s.
#[test]
fn over_tls_a_silent_client_is_cut_off_too() {
    if !support::can_run("tls-deadlines", &["openssl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (_pki, collector) = tls_collector(dir.path(), &token);
    let addr = collector.url.trim_start_matches("https://").to_string();
    let silent = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            closed_within(&mut s, Duration::from_secs(14)).0
        }
    });
    // openssl completes the handshake, then waits on its open stdin, saying nothing.
    let start = std::time::Instant::now();
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let handshaken = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break (start.elapsed(), status);
        }
        assert!(
            start.elapsed() < Duration::from_secs(14),
            "still open after 14 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = silent.join().unwrap();
    assert!(
        (Duration::from_secs(8)..Duration::from_secs(14)).contains(&took),
        "no handshake: {took:?}"
    );
    assert!(
        (Duration::from_secs(8)..Duration::from_secs(14)).contains(&handshaken.0),
        "after the handshake: {:?}",
        handshaken.0
    );
}
