//! Test support shared by the integration tests: the probe binary, a scriptable DNS server,
//! a test CA and servers that misbehave on purpose, all on 127.0.0.1 port 0.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the support code"
)]

pub mod collector;
pub mod postgres;
pub mod receiver;

/// Sends `signal` to the process `pid` (one the test started), without a `kill` binary.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}
pub mod dns;
pub mod lab;
pub mod servers;

use serde_json::Value;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The probe binary cargo built for these tests, in an environment that cannot reach a real
/// metadata service or AWS: tests that want IMDS or EC2 point probe at their own servers.
pub fn probe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_probe"));
    isolate(&mut cmd);
    cmd
}

/// The environment `probe()` gives, for a command that runs probe itself (through unshare,
/// a shell...).
pub fn isolate(cmd: &mut Command) {
    for var in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "SSL_CERT_FILE",
        // A developer's shared store must not receive the tests' reports.
        "PROBE_DATABASE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
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

/// The project's Python (scripts/python-env.sh: pinned moto and cfn-lint in a virtual
/// environment), made once per test binary.
pub fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/python-env.sh"
        ))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("scripts/python-env.sh runs");
        assert!(
            out.status.success(),
            "scripts/python-env.sh failed: the Python tools are needed (python3 with venv)"
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// Runs `program` from the project's Python environment (`python`, `cfn-lint`) without a
/// caller's PYTHONPATH or PYTHONHOME, which it would read before its own pinned packages.
pub fn python_tool(program: &str) -> Command {
    let mut cmd = Command::new(std::path::Path::new(python()).with_file_name(program));
    cmd.env_remove("PYTHONPATH").env_remove("PYTHONHOME");
    cmd
}

/// A Python helper from lab/ (the IMDS server, the moto fixture) on 127.0.0.1, started by
/// the test and ended by its PID when dropped.
pub struct Helper {
    child: std::process::Child,
    pub port: u16,
}

impl Helper {
    /// Runs `lab/SCRIPT ARGS...` with the project's Python (or `SCRIPT` from the crate's root, when it names
    /// a directory) and waits for its "listening PORT" line.
    pub fn start(script: &str, args: &[&str]) -> Self {
        use std::io::BufRead;
        let root = env!("CARGO_MANIFEST_DIR");
        let path = if script.contains('/') {
            format!("{root}/{script}")
        } else {
            format!("{root}/lab/{script}")
        };
        let mut child = python_tool("python")
            .arg(path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 {script}: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"));
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto on 127.0.0.1 seeded like the lab's `step` (lab/ec2_fixture.py), writing its state
/// (the ids moto chose) and the instances' metadata files into `dir`; returns it with the
/// state.
pub fn seeded_moto(dir: &std::path::Path, step: &str) -> (Helper, Value) {
    let moto = Helper::start("ec2_fixture.py", &["serve", "127.0.0.1", "0"]);
    let seed = python_tool("python")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/ec2_fixture.py"))
        .args(["seed", &moto.url(), step, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        seed.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let state =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ec2.json")).unwrap()).unwrap();
    (moto, state)
}

/// Runs `cmd`, failing the test if it has not finished within `limit`: "never hangs" is
/// checked, not assumed.
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> Run {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("probe runs");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("probe did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Whether this test can run here: root, and each of `tools` on the PATH. When it cannot,
/// says why on stderr and returns false, so the test skips; with PROBE_REQUIRE_ALL=1 (set by
/// .ci/run) a missing requirement fails the test instead, so nothing is skipped in CI.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|t| format!("{t} is not installed"))
        .collect();
    if !root {
        missing.insert(0, "it needs root (network namespaces)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: skipped: {} (run .ci/run)", missing.join("; "));
    assert!(
        std::env::var_os("PROBE_REQUIRE_ALL").is_none(),
        "{why}; PROBE_REQUIRE_ALL is set, so a skip is a failure"
    );
    eprintln!("{why}");
    false
}
