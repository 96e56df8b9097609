//! Test support shared by the integration tests: the probe binary, a scriptable DNS server,
//! a test CA and servers that misbehave on purpose, all on 127.0.0.1 port 0.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the support code"
)]

pub mod dns;
pub mod servers;

use serde_json::Value;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The probe binary cargo built for these tests.
pub fn probe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_probe"))
}

/// What one probe run printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("probe runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `probe check ARGS -o json` against `resolver`, validates the document against the
/// schema, and returns the exit code and the report.
pub fn check_json(resolver: Option<std::net::SocketAddr>, args: &[&str]) -> (i32, Value) {
    let mut cmd = probe();
    cmd.arg("check").args(args).args(["-o", "json"]);
    if let Some(r) = resolver {
        cmd.args(["--resolver", &r.to_string()]);
    }
    cmd.env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("SSL_CERT_FILE");
    let out = run(&mut cmd);
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            out.stdout, out.stderr
        )
    });
    assert_valid(&report);
    (out.code, report)
}

/// Fails the test when `report` does not match schema/report-v1.json.
pub fn assert_valid(report: &Value) {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = SCHEMA.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/report-v1.json"
        ))
        .expect("schema file");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema:\n{}\n{report:#}",
        errors.join("\n")
    );
}

/// The first address entry of the first target.
pub fn first_address(report: &Value) -> &Value {
    &report["targets"][0]["addresses"][0]
}
