//! Instance identities, end to end on 127.0.0.1: an AWS-like signer made in the test (a
//! 1024-bit RSA certificate, as AWS's; never committed), the lab's metadata server serving
//! the documents it signs, collectors and a relay as processes, and the agent itself. Every
//! refusal the issue names has a case here that fails without its check: refused, counted in
//! /metrics by reason, and nothing stored.

mod support;

use probe::identity::AgentKey;
use probe::identity::wire::{self, KEY_HEADER, KEY_SIGNATURE_HEADER};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::collector::{Collector, get, post, post_to, stored_ids};
use support::postgres::Postgres;
use support::{Helper, probe};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "ap-northeast-2";
const INSTANCE: &str = "i-0123456789abcdef0";
const STARTED: &str = "2026-12-01T09:00:00Z";

/// The test's stand-in for AWS's signer.
struct Signer {
    key: PathBuf,
    cert: PathBuf,
}

impl Signer {
    fn new(dir: &Path) -> Self {
        let (key, cert) = (dir.join("identity-ca.key"), dir.join("identity-ca.pem"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=probe test instance identity", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { key, cert }
    }

    /// The base64 signature of `document`, as IMDS serves it (with line breaks).
    fn sign(&self, document: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("doc");
        std::fs::write(&doc, document).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg("openssl dgst -sha256 -sign \"$1\" \"$2\" | base64")
            .args(["sh"])
            .arg(&self.key)
            .arg(&doc)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }
}

fn document(instance: &str, account: &str, region: &str, started: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "accountId": account,
        "architecture": "x86_64",
        "availabilityZone": format!("{region}c"),
        "imageId": "ami-0123456789abcdef0",
        "instanceId": instance,
        "instanceType": "t3.micro",
        "pendingTime": started,
        "privateIp": "10.10.1.10",
        "region": region,
        "version": "2017-09-30",
    }))
    .unwrap()
}

fn available(test: &str) -> bool {
    support::can_run(test, &["openssl", "curl", "python3"])
}

/// A collector on 127.0.0.1 accepting identities from ACCOUNT, signed by `signer`.
fn collector(dir: &Path, signer: &Signer, extra: &[&str]) -> Collector {
    let mut cmd = probe();
    cmd.args([
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--ec2",
        "off",
        "--data",
    ])
    .arg(dir.join("data"))
    .args(["--allow-account", ACCOUNT, "--identity-ca"])
    .arg(&signer.cert)
    .args(extra);
    Collector::spawn(cmd)
}

/// Enrols `key` with `url` for `document` (signed by `signature`); the answer.
fn enrol(url: &str, document: &str, signature: &str, key: &AgentKey) -> (u16, Value) {
    let (status, body) = get(&format!("{url}/v1/enrol"));
    assert_eq!(status, 200, "{body}");
    let nonce = serde_json::from_str::<Value>(&body).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    enrol_with(url, document, signature, key, &nonce)
}

fn enrol_with(
    url: &str,
    document: &str,
    signature: &str,
    key: &AgentKey,
    nonce: &str,
) -> (u16, Value) {
    let enrolment = json!({
        "document": document,
        "signature": signature,
        "public_key": key.public(),
        "nonce": nonce,
        "proof": key.sign(&wire::enrol_message(nonce, document)),
    });
    post_to(
        &format!("{url}/v1/enrol"),
        enrolment.to_string().as_bytes(),
        &[],
    )
}

/// A report of `instance`, with a fresh id.
fn report(instance: &str) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(include_str!("fixtures/report.json")).unwrap();
    doc["id"] = uuid::Uuid::new_v4().to_string().into();
    doc["agent"]["instance"] =
        json!({ "instance_id": instance, "vpc_id": "vpc-0123", "vpc_cidrs": ["10.10.0.0/16"] });
    doc["authenticated"] = json!({ "method": "token", "account_id": "forged" });
    serde_json::to_vec(&doc).unwrap()
}

fn post_signed(url: &str, body: &[u8], key: &AgentKey) -> (u16, Value) {
    post(
        url,
        body,
        &[
            (KEY_HEADER, key.id()),
            (KEY_SIGNATURE_HEADER, key.sign(&wire::report_message(body))),
        ],
    )
}

fn key(dir: &Path, name: &str) -> AgentKey {
    AgentKey::load_or_create(&dir.join(name)).unwrap()
}

/// The refusals counted for `reason` in the collector's /metrics.
fn refusals(url: &str, reason: &str) -> u64 {
    let (_, text) = get(&format!("{url}/metrics"));
    let wanted = format!("probe_identity_refusals_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(wanted.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The lab's metadata server on 127.0.0.1, serving `instance`'s metadata and its signed
/// document.
fn imds(dir: &Path, signer: &Signer, instance: &str) -> Helper {
    let mac = "02:00:00:00:00:01";
    let net = format!("network/interfaces/macs/{mac}");
    let doc = document(instance, ACCOUNT, REGION, STARTED);
    let data = json!({
        "placement/region": REGION,
        "placement/availability-zone": "ap-northeast-2c",
        "instance-id": instance,
        "local-ipv4": "10.10.1.10",
        "mac": mac,
        format!("{net}/vpc-id"): "vpc-0123",
        format!("{net}/subnet-id"): "subnet-0456",
        format!("{net}/vpc-ipv4-cidr-blocks"): "10.10.0.0/16",
        format!("{net}/subnet-ipv4-cidr-block"): "10.10.1.0/24",
        "dynamic/instance-identity/signature": signer.sign(&doc),
        "dynamic/instance-identity/document": doc,
    });
    let path = dir.join("imds.json");
    std::fs::write(&path, data.to_string()).unwrap();
    Helper::start(
        "servers.py",
        &[
            "imds",
            "--listen",
            "127.0.0.1:0",
            "--data",
            path.to_str().unwrap(),
        ],
    )
}

/// `probe check` of the collector's own port, reporting to `url` with no token.
fn agent(imds: &Helper, url: &str, spool: &Path) -> support::Run {
    let target = format!("{url}/metrics");
    let mut cmd = probe();
    cmd.args([
        "check",
        &target,
        "--ec2",
        "off",
        "-o",
        "json",
        "--report-to",
        url,
    ])
    .arg("--spool")
    .arg(spool)
    .env_remove("AWS_EC2_METADATA_DISABLED")
    .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    support::run(&mut cmd)
}

fn spooled(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

#[test]
fn an_agent_with_no_secret_enrols_once_and_its_reports_are_stored_as_proven() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let c = collector(dir.path(), &signer, &[]);
    let md = imds(dir.path(), &signer, INSTANCE);
    let spool = dir.path().join("spool");
    for _ in 0..2 {
        let run = agent(&md, &c.url, &spool);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(spooled(&spool), 0, "both reports acknowledged");
    let enrolments = c
        .lines()
        .iter()
        .filter(|l| l.contains("enrolled key"))
        .count();
    assert_eq!(enrolments, 1, "enrolled once: {:#?}", c.lines());
    let (_, body) = get(&format!("{}/v1/reports", c.url));
    let reports: Value = serde_json::from_str(&body).unwrap();
    let key = AgentKey::load_or_create(&spool.join("identity.key")).unwrap();
    for r in reports["reports"].as_array().unwrap() {
        assert_eq!(
            r["authenticated"],
            json!({"method": "aws-identity", "instance_id": INSTANCE, "account_id": ACCOUNT, "key_id": key.id()})
        );
    }
}

#[test]
fn an_agent_whose_enrolment_is_refused_keeps_its_spool() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    // Another account's collector.
    let mut cmd = probe();
    cmd.args([
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--ec2",
        "off",
        "--data",
    ])
    .arg(dir.path().join("data"))
    .args(["--allow-account", "999999999999", "--identity-ca"])
    .arg(&signer.cert);
    let c = Collector::spawn(cmd);
    let md = imds(dir.path(), &signer, INSTANCE);
    let spool = dir.path().join("spool");
    let run = agent(&md, &c.url, &spool);
    assert_eq!(run.code, 4, "undelivered: {}", run.stderr);
    assert!(
        run.stderr
            .contains("account 123456789012 is not in --allow-account"),
        "{}",
        run.stderr
    );
    assert_eq!(spooled(&spool), 1, "kept for the next run");
    assert_eq!(refusals(&c.url, "account"), 1);
    assert!(stored_ids(&c.url).is_empty());
}

#[test]
fn every_bad_enrolment_is_refused_with_its_reason_and_stores_nothing() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let c = collector(dir.path(), &signer, &["--allow-region", REGION]);
    let url = &c.url;
    let agent_key = key(dir.path(), "agent.key");
    let doc = document(INSTANCE, ACCOUNT, REGION, STARTED);
    let sig = signer.sign(&doc);

    // A document changed after AWS signed it.
    let forged = doc.replace("t3.micro", "t3.large");
    assert_eq!(enrol(url, &forged, &sig, &agent_key).0, 401);
    assert_eq!(refusals(url, "aws-signature"), 1);
    // Signed by another key than AWS's (or the --identity-ca).
    let elsewhere_dir = tempfile::tempdir().unwrap();
    let other = Signer::new(elsewhere_dir.path());
    assert_eq!(enrol(url, &doc, &other.sign(&doc), &agent_key).0, 401);
    assert_eq!(refusals(url, "aws-signature"), 2);
    // Another account, another region: signed, but not ours.
    let theirs = document(INSTANCE, "999999999999", REGION, STARTED);
    assert_eq!(
        enrol(url, &theirs, &signer.sign(&theirs), &agent_key).0,
        403
    );
    assert_eq!(refusals(url, "account"), 1);
    let elsewhere = document(INSTANCE, ACCOUNT, "us-east-1", STARTED);
    assert_eq!(
        enrol(url, &elsewhere, &signer.sign(&elsewhere), &agent_key).0,
        403
    );
    assert_eq!(refusals(url, "region"), 1);
    // A proof the sent key did not make.
    let (status, body) = get(&format!("{url}/v1/enrol"));
    assert_eq!(status, 200);
    let nonce = serde_json::from_str::<Value>(&body).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    let thief = key(dir.path(), "thief.key");
    let stolen = json!({
        "document": doc, "signature": sig, "public_key": thief.public(), "nonce": nonce,
        "proof": agent_key.sign(&wire::enrol_message(&nonce, &doc)),
    });
    let (status, _) = post_to(
        &format!("{url}/v1/enrol"),
        stolen.to_string().as_bytes(),
        &[],
    );
    assert_eq!(status, 401);
    assert_eq!(refusals(url, "proof"), 1);
    // The nonce was spent by that refusal: a replay of it is refused.
    assert_eq!(enrol_with(url, &doc, &sig, &agent_key, &nonce).0, 401);
    assert_eq!(refusals(url, "nonce"), 1);
    // A nonce this collector never gave.
    assert_eq!(enrol_with(url, &doc, &sig, &agent_key, "made-up").0, 401);
    assert_eq!(refusals(url, "nonce"), 2);

    // The real enrolment, after a stop and start (a later pendingTime).
    let later = document(INSTANCE, ACCOUNT, REGION, "2026-12-02T09:00:00Z");
    let (status, answer) = enrol(url, &later, &signer.sign(&later), &agent_key);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["key_id"], agent_key.id().as_str());
    // A copy of the document from before the restart: older than the enrolment.
    assert_eq!(enrol(url, &doc, &sig, &agent_key).0, 403);
    assert_eq!(refusals(url, "older-enrolment"), 1);
    // A second key for the enrolled instance, with a current document.
    assert_eq!(enrol(url, &later, &signer.sign(&later), &thief).0, 403);
    assert_eq!(refusals(url, "second-key"), 1);
    // The enrolled key again, for another instance (an image made from this one).
    let copy = document(
        "i-0copy0000000000000",
        ACCOUNT,
        REGION,
        "2026-12-03T09:00:00Z",
    );
    let (status, answer) = enrol(url, &copy, &signer.sign(&copy), &agent_key);
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["code"], "key-in-use", "{answer}");
    assert_eq!(refusals(url, "key-in-use"), 1);
    // Garbage.
    let (status, _) = post_to(&format!("{url}/v1/enrol"), b"{\"document\":1}", &[]);
    assert_eq!(status, 400);
    let (status, _) = post_to(&format!("{url}/v1/enrol"), &vec![b'x'; 64 * 1024], &[]);
    assert_eq!(status, 413);
    assert!(stored_ids(url).is_empty());
    assert_eq!(
        enrolled(&dir.path().join("data/probe.db")),
        [(INSTANCE.to_string(), Some(agent_key.id()))]
    );
}

/// The enrolments in a collector's SQLite database: instance, key id.
fn enrolled(db: &Path) -> Vec<(String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut q = conn
        .prepare("SELECT instance, key_id FROM identities ORDER BY instance")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn every_bad_signed_report_is_refused_with_its_reason_and_stores_nothing() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let c = collector(dir.path(), &signer, &["--allow-vpc", "vpc-0123"]);
    let url = &c.url;
    let agent_key = key(dir.path(), "agent.key");
    let doc = document(INSTANCE, ACCOUNT, REGION, STARTED);
    assert_eq!(enrol(url, &doc, &signer.sign(&doc), &agent_key).0, 201);

    // An unknown key.
    let stranger = key(dir.path(), "stranger.key");
    let (status, answer) = post_signed(url, &report(INSTANCE), &stranger);
    assert_eq!(status, 401);
    assert_eq!(answer["code"], "unknown-key");
    assert_eq!(refusals(url, "unknown-key"), 1);
    // The enrolled key, but the body changed after it signed.
    let body = report(INSTANCE);
    let signature = agent_key.sign(&wire::report_message(&body));
    let mut changed = body.clone();
    changed.extend_from_slice(b" ");
    let (status, _) = post(
        url,
        &changed,
        &[
            (KEY_HEADER, agent_key.id()),
            (KEY_SIGNATURE_HEADER, signature),
        ],
    );
    assert_eq!(status, 401);
    assert_eq!(refusals(url, "report-signature"), 1);
    // Signed by the instance's key, speaking for another instance.
    let (status, answer) = post_signed(url, &report("i-0fedcba9876543210"), &agent_key);
    assert_eq!(status, 403, "{answer}");
    assert_eq!(refusals(url, "instance-mismatch"), 1);
    // From a VPC not allowed.
    let mut elsewhere: Value = serde_json::from_slice(&report(INSTANCE)).unwrap();
    elsewhere["agent"]["instance"]["vpc_id"] = "vpc-other".into();
    let elsewhere = serde_json::to_vec(&elsewhere).unwrap();
    assert_eq!(post_signed(url, &elsewhere, &agent_key).0, 403);
    assert_eq!(refusals(url, "vpc"), 1);
    // Unsigned.
    assert_eq!(post(url, &report(INSTANCE), &[]).0, 401);
    assert!(stored_ids(url).is_empty(), "nothing stored");

    // The real one, whose `authenticated` the agent cannot set.
    let (status, answer) = post_signed(url, &report(INSTANCE), &agent_key);
    assert_eq!(status, 201, "{answer}");
    let (_, body) = get(&format!("{url}/v1/reports"));
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        stored["reports"][0]["authenticated"],
        json!({"method": "aws-identity", "instance_id": INSTANCE, "account_id": ACCOUNT, "key_id": agent_key.id()})
    );
}

#[test]
fn forget_lets_the_instance_enrol_a_new_key_but_no_older_document() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let c = collector(dir.path(), &signer, &[]);
    let url = &c.url;
    let (old_key, new_key) = (key(dir.path(), "old.key"), key(dir.path(), "new.key"));
    let later = document(INSTANCE, ACCOUNT, REGION, "2026-12-02T09:00:00Z");
    assert_eq!(enrol(url, &later, &signer.sign(&later), &old_key).0, 201);
    let mut forget = probe();
    forget
        .args(["collect", "forget", INSTANCE, "--data"])
        .arg(dir.path().join("data"));
    let run = support::run(&mut forget);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut again = probe();
    again
        .args(["collect", "forget", "i-0000000000000000f", "--data"])
        .arg(dir.path().join("data"));
    let run = support::run(&mut again);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(&format!("enrolled: {INSTANCE}")),
        "{}",
        run.stderr
    );
    // The running collector reads the change within a second.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(post_signed(url, &report(INSTANCE), &old_key).0, 401);
    let older = document(INSTANCE, ACCOUNT, REGION, STARTED);
    assert_eq!(enrol(url, &older, &signer.sign(&older), &new_key).0, 403);
    assert_eq!(enrol(url, &later, &signer.sign(&later), &new_key).0, 201);
    assert_eq!(post_signed(url, &report(INSTANCE), &new_key).0, 201);
}

/// Collectors behind a load balancer share their enrolments through PostgreSQL and keep none
/// of their own: an agent takes its nonce from one and enrols with the other, a nonce is spent
/// once across both, either (and a third started later) accepts the key's reports, and
/// `forget` on the database reaches both.
#[test]
fn collectors_sharing_postgres_share_nonces_and_enrolled_keys() {
    if !available("identity-shared") || !Postgres::available("identity-shared") {
        return;
    }
    let pg = Postgres::start();
    let database = pg.database("shared");
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let start = |name: &str| {
        collector(
            &dir.path().join(name),
            &signer,
            &["--database", &database, "--rate-limit", "0"],
        )
    };
    let (a, b) = (start("a"), start("b"));
    let agent_key = key(dir.path(), "agent.key");
    let doc = document(INSTANCE, ACCOUNT, REGION, STARTED);
    let sig = signer.sign(&doc);

    let (status, body) = get(&format!("{}/v1/enrol", a.url));
    assert_eq!(status, 200, "{body}");
    let nonce = serde_json::from_str::<Value>(&body).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = enrol_with(&b.url, &doc, &sig, &agent_key, &nonce);
    assert_eq!(status, 201, "a's nonce enrols at b: {answer}");
    assert_eq!(enrol_with(&a.url, &doc, &sig, &agent_key, &nonce).0, 401);
    assert_eq!(refusals(&a.url, "nonce"), 1, "spent at b, so refused at a");

    // b checks the key from what it committed; a, which has not read it yet, reads the
    // enrolments again on a key it does not know, and accepts the report at once.
    assert_eq!(post_signed(&b.url, &report(INSTANCE), &agent_key).0, 201);
    let accepted = |url: &str| post_signed(url, &report(INSTANCE), &agent_key).0 == 201;
    assert!(accepted(&a.url), "a accepts the key b enrolled, at once");
    let c = start("c");
    assert!(accepted(&c.url), "a collector started later has it at once");

    // A file an older collector left in the --data given: no part of a shared database.
    let cli = dir.path().join("cli");
    std::fs::create_dir_all(&cli).unwrap();
    std::fs::write(cli.join("identities.json"), "not this database's").unwrap();
    let mut forget = probe();
    forget
        .args([
            "collect",
            "forget",
            INSTANCE,
            "--database",
            &database,
            "--data",
        ])
        .arg(&cli);
    let run = support::run(&mut forget);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        cli.join("identities.json").exists() && !cli.join("identities.json.imported").exists(),
        "forget --database imports nothing of --data"
    );
    for c in [&a, &b, &c] {
        assert!(
            within(std::time::Duration::from_secs(5), || !accepted(&c.url)),
            "{} refuses the forgotten key",
            c.url
        );
    }
    // Nothing of it in the collectors' data directories.
    for name in ["a", "b", "c"] {
        let data = dir.path().join(name).join("data");
        assert!(!data.join("identities.json").exists());
        assert!(!data.join("probe.db").exists());
    }
}

/// Whether `ok` comes true before `limit` passes.
fn within(limit: std::time::Duration, ok: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_relay_passes_enrolments_and_reports_on_without_being_able_to_forge_them() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let upstream = collector(dir.path(), &signer, &[]);
    let mut cmd = probe();
    cmd.args([
        "collect",
        "--listen",
        "127.0.0.1:0",
        "--ec2",
        "off",
        "--data",
    ])
    .arg(dir.path().join("relay"))
    .args(["--forward", &upstream.url]);
    let relay = Collector::spawn(cmd);
    let agent_key = key(dir.path(), "agent.key");
    let doc = document(INSTANCE, ACCOUNT, REGION, STARTED);
    let (status, answer) = enrol(&relay.url, &doc, &signer.sign(&doc), &agent_key);
    assert_eq!(status, 201, "through the relay: {answer}");
    // The relay checks what it acknowledges: a forged report never reaches its queue.
    let stranger = key(dir.path(), "stranger.key");
    assert_eq!(post_signed(&relay.url, &report(INSTANCE), &stranger).0, 401);
    let body = report(INSTANCE);
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(post_signed(&relay.url, &body, &agent_key).0, 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !stored_ids(&upstream.url).contains(&id) {
        assert!(std::time::Instant::now() < deadline, "never forwarded");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, listed) = get(&format!("{}/v1/reports", upstream.url));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed["reports"][0]["authenticated"]["method"],
        "aws-identity"
    );
    // What a relay could do with what passed through it: change the report and send it on
    // with the agent's signature. The collector refuses it.
    let mut changed: Value = serde_json::from_slice(&body).unwrap();
    changed["id"] = uuid::Uuid::new_v4().to_string().into();
    changed["pass"] = true.into();
    let changed = serde_json::to_vec(&changed).unwrap();
    let (status, _) = post(
        &upstream.url,
        &changed,
        &[
            (KEY_HEADER, agent_key.id()),
            (
                KEY_SIGNATURE_HEADER,
                agent_key.sign(&wire::report_message(&body)),
            ),
        ],
    );
    assert_eq!(status, 401);
    assert_eq!(stored_ids(&upstream.url).len(), 1);
}

#[test]
fn the_token_and_the_identity_can_be_required_together() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let token = support::collector::token_file(dir.path());
    let mut extra = vec!["--require", "both", "--token-file"];
    extra.push(token.to_str().unwrap());
    let c = collector(dir.path(), &signer, &extra);
    let url = &c.url;
    let agent_key = key(dir.path(), "agent.key");
    let doc = document(INSTANCE, ACCOUNT, REGION, STARTED);
    assert_eq!(enrol(url, &doc, &signer.sign(&doc), &agent_key).0, 201);
    // The key alone is not enough.
    assert_eq!(post_signed(url, &report(INSTANCE), &agent_key).0, 401);
    // The token alone is not enough.
    let t = probe::auth::Token::new(support::collector::TOKEN).unwrap();
    let body = report(INSTANCE);
    let now = probe::auth::now();
    let hmac = [
        (probe::auth::TIMESTAMP_HEADER, now.to_string()),
        (probe::auth::SIGNATURE_HEADER, t.sign(now, &body)),
    ];
    assert_eq!(post(url, &body, &hmac).0, 401);
    let mut both = hmac.to_vec();
    both.push((KEY_HEADER, agent_key.id()));
    both.push((
        KEY_SIGNATURE_HEADER,
        agent_key.sign(&wire::report_message(&body)),
    ));
    let (status, answer) = post(url, &body, &both);
    assert_eq!(status, 201, "{answer}");
    let (_, listed) = get(&format!("{url}/v1/reports"));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed["reports"][0]["authenticated"]["method"],
        "token-and-aws-identity"
    );
}

/// Issue 16: "when the EC2 API is reachable, DescribeInstances: running, and the report's
/// subnet and groups match". The collector asks the EC2 API (stored answers on 127.0.0.1, the
/// enrolled instance among them in subnet-0f9e8d7c6b5a43210) before it takes a signed
/// report: one naming another subnet is refused with the reason, one naming its own is stored.
#[test]
fn a_signed_report_describe_instances_contradicts_is_refused() {
    if !available("identity") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let answers = dir.path().join("ec2");
    std::fs::create_dir_all(&answers).unwrap();
    let stored = include_str!("fixtures/ec2/DescribeInstances.xml");
    assert!(stored.contains("i-0d1e2f3a4b5c6d7e8"));
    std::fs::write(
        answers.join("DescribeInstances.xml"),
        stored.replace("i-0d1e2f3a4b5c6d7e8", INSTANCE),
    )
    .unwrap();
    let ec2 = Helper::start(
        "tests/fixtures/ec2_recorded.py",
        &[answers.to_str().unwrap()],
    );
    let mut cmd = probe();
    cmd.args(["collect", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--allow-account", ACCOUNT, "--identity-ca"])
        .arg(&signer.cert)
        .env("AWS_ENDPOINT_URL_EC2", ec2.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let c = Collector::spawn(cmd);
    let url = &c.url;
    let agent_key = key(dir.path(), "agent.key");
    let doc = document(INSTANCE, ACCOUNT, REGION, STARTED);
    let (status, answer) = enrol(url, &doc, &signer.sign(&doc), &agent_key);
    assert_eq!(status, 201, "{answer}");

    let in_subnet = |subnet: &str| {
        let mut r: Value = serde_json::from_slice(&report(INSTANCE)).unwrap();
        r["agent"]["region"] = REGION.into();
        r["agent"]["instance"]["subnet_id"] = subnet.into();
        serde_json::to_vec(&r).unwrap()
    };
    let (status, answer) = post_signed(url, &in_subnet("subnet-0123elsewhere"), &agent_key);
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["code"], "ec2", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("DescribeInstances says subnet-0f9e8d7c6b5a43210"),
        "{answer}"
    );
    assert_eq!(refusals(url, "ec2"), 1);
    assert!(stored_ids(url).is_empty(), "nothing stored");
    let (status, answer) = post_signed(url, &in_subnet("subnet-0f9e8d7c6b5a43210"), &agent_key);
    assert_eq!(status, 201, "{answer}");
}
