//! The emulated tutorial VPCs (lab/lab.sh) as the tests drive them: a lab that is torn down
//! even when a test fails, commands run inside its namespaces, and the collectors of the
//! operator's picture (a laptop on the lab's internet, a relay on the public instance).

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

pub fn lab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab")
}

/// lab/names.env, the lab's single list of names and addresses.
pub fn names() -> HashMap<String, String> {
    let text = std::fs::read_to_string(lab_dir().join("names.env")).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// A running lab; dropping it ends its processes and deletes its namespaces.
pub struct Lab {
    pub id: String,
}

/// What the lab's script runs (lab/packages.sh installs them).
pub const LAB_TOOLS: [&str; 7] = ["ip", "dnsmasq", "dig", "ping", "curl", "openssl", "python3"];

impl Lab {
    /// Whether a lab can be built here (root and the lab's tools); says why not on stderr, or
    /// fails under PROBE_REQUIRE_ALL, as [`super::can_run`] does.
    pub fn available(test: &str) -> bool {
        super::can_run(test, &LAB_TOOLS)
    }

    pub fn up() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let euid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&euid.stdout).trim(),
            "0",
            "the lab builds network namespaces and needs root: run the tests as root (sudo, or .ci/run)"
        );
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let lab = Self {
            id: format!("t{}{n}", std::process::id() % 100_000),
        };
        let out = lab.script(&["up"]);
        assert!(
            out.status.success(),
            "lab.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn script(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(lab_dir().join("lab.sh"));
        cmd.arg(args[0]).arg(&self.id).args(&args[1..]);
        cmd.output().unwrap()
    }

    pub fn step(&self, name: &str) {
        let out = self.script(&["step", name]);
        assert!(
            out.status.success(),
            "lab.sh step {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a command on a lab host (inside its namespace).
    pub fn exec(&self, role: &str, args: &[&str]) -> Output {
        let mut all = vec!["exec", role];
        all.extend_from_slice(args);
        self.script(&all)
    }

    pub fn ca(&self) -> String {
        format!("/tmp/probe-lab-{}/ca.pem", self.id)
    }

    /// The ids the lab's EC2 API (moto) chose, as lab/ec2_fixture.py recorded them.
    pub fn ec2_state(&self) -> Value {
        let text = std::fs::read_to_string(format!("/tmp/probe-lab-{}/ec2.json", self.id)).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "lab.sh down {}: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Lab {
    /// Starts a long-running command on a lab host; `lab.sh down` ends it by its PID.
    pub fn start(&self, role: &str, name: &str, args: &[&str]) {
        let mut all = vec!["start", role, name];
        all.extend_from_slice(args);
        let out = self.script(&all);
        assert!(
            out.status.success(),
            "lab.sh start {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/probe-lab-{}", self.id))
    }

    /// GETs `url` with curl from a lab host; the body, once it answers 200.
    pub fn get(&self, role: &str, url: &str) -> Option<String> {
        let out = self.exec(role, &["curl", "-sf", "-m", "2", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until something answers HTTP at `url` from a lab host, whatever the status (a
    /// relay's reads answer 403).
    pub fn wait_listening(&self, role: &str, url: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = self.exec(
                role,
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-m",
                    "2",
                    url,
                ],
            );
            if String::from_utf8_lossy(&out.stdout).trim() != "000" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing answers at {url} from {role}"
            );
            thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    pub fn wait_for(&self, role: &str, url: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(body) = self.get(role, url).filter(|b| ready(b)) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{url} from {role}: not ready; last answer {:?}",
                self.get(role, url)
            );
            thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// The lab's shared collector token, written into the lab's directory; its path.
pub fn token(lab: &Lab) -> String {
    let token = lab.dir().join("collector.token");
    std::fs::write(&token, "lab-collector-token-0123456789\n").unwrap();
    // As an operator keeps it: probe warns about a token others can read.
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&token, private).unwrap();
    token.to_str().unwrap().to_string()
}

/// The collector on the operator's laptop (on the internet, no AWS credentials there); it
/// takes the shared token, and the instances' identities (signed by the lab's stand-in for
/// AWS's certificate) from the lab's account. Returns its address.
pub fn start_operator(lab: &Lab, n: &HashMap<String, String>, token: &str) -> String {
    let operator = format!("{}:7878", n["OPERATOR_IP"]);
    let data = lab.dir().join("operator");
    let ca = lab.dir().join("identity-ca.pem");
    lab.start(
        "inet",
        "operator",
        &[
            env!("CARGO_BIN_EXE_probe"),
            "collect",
            "--listen",
            &operator,
            "--token-file",
            token,
            "--allow-account",
            "123456789012",
            "--identity-ca",
            ca.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--ec2",
            "off",
        ],
    );
    lab.wait_for("inet", &format!("http://{operator}/metrics"), |_| true);
    operator
}

/// A relay on the public instance, run by `bin` (which it serves at /v1/probe), forwarding
/// to `operator`, with the shared token or (`None`) none; returns its address. It has the
/// public instance's role: it labels what the private one cannot.
pub fn start_relay(
    lab: &Lab,
    n: &HashMap<String, String>,
    bin: &str,
    token: Option<&str>,
    operator: &str,
) -> String {
    let relay = format!("{}:7878", n["PUB_IP"]);
    let data = lab.dir().join("relay");
    let forward = format!("http://{operator}");
    let mut args = vec![bin, "collect", "--listen", &relay];
    if let Some(token) = token {
        args.extend(["--token-file", token]);
    }
    args.extend([
        "--data",
        data.to_str().unwrap(),
        "--forward",
        &forward,
        // The steps follow each other within seconds: ask the EC2 API every time.
        "--ec2-max-age",
        "0s",
    ]);
    lab.start("pub", "relay", &args);
    lab.wait_listening("pub", &format!("http://{relay}/metrics"));
    relay
}

/// Both collectors, the relay run by the tests' probe; their addresses and the token file.
pub fn start_collectors(lab: &Lab, n: &HashMap<String, String>) -> (String, String, String) {
    let token = token(lab);
    let operator = start_operator(lab, n, &token);
    let relay = start_relay(lab, n, env!("CARGO_BIN_EXE_probe"), Some(&token), &operator);
    (operator, relay, token)
}
