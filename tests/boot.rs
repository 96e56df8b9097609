//! The boot, for real: the UserData that `probe userdata` renders (with no secret in it: the
//! agent proves its reports with the instance's identity), booted with real systemd
//! and real cloud-init (a Debian root filesystem from lab/rootfs.sh, with a NoCloud seed) by
//! systemd-nspawn inside the lab's private-instance namespace, which is its only network.
//! The relay on the public instance is down at first, then comes up; the laptop's collector
//! must then receive the private instance's reports from the hardened service, with no
//! login anywhere. The container is powered off (or killed) by its guard, and the lab torn
//! down, even when the test fails.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::lab::{Lab, names, start_operator, start_relay, token};

const ARCH: &str = std::env::consts::ARCH;

/// The static release binary for this machine, which the relay runs and serves
/// (scripts/test.sh builds it).
fn release_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PROBE_BOOT_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join(format!("{ARCH}-unknown-linux-musl/release/probe"))
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// A booted instance: systemd-nspawn, its console captured to a file.
struct Instance {
    nspawn: Child,
    console: PathBuf,
}

impl Instance {
    fn boot(lab: &Lab, rootfs: &str, seed: &Path) -> Self {
        let console = lab.dir().join("log/instance-console.log");
        let log = std::fs::File::create(&console).unwrap();
        let ns = format!("pl{}-priv", lab.id);
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--boot",
                "--console=read-only",
                "--volatile=overlay",
                "--resolv-conf=off",
                "--timezone=off",
            ])
            .arg(format!("--directory={rootfs}"))
            .arg(format!("--machine=probe-{}", lab.id))
            .arg(format!("--network-namespace-path=/run/netns/{ns}"))
            .arg(format!(
                "--bind-ro={}:/var/lib/cloud/seed/nocloud",
                seed.display()
            ))
            .arg(format!(
                "--bind-ro=/etc/netns/{ns}/resolv.conf:/etc/resolv.conf"
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("systemd-nspawn starts");
        Self { nspawn, console }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// The bootstrap's marked console lines, parsed.
    fn bootstrap_lines(&self) -> Vec<Value> {
        self.console()
            .lines()
            .filter_map(|l| l.split_once("probe.bootstrap/v1 ").map(|(_, j)| j))
            .filter_map(|j| serde_json::from_str(j.trim()).ok())
            .collect()
    }

    fn wait_bootstrap(&self, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.bootstrap_lines().into_iter().find(|l| ok(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no bootstrap line {what} within {limit:?}; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The container's init (its PID namespace's first process).
    fn leader(&self) -> Option<u32> {
        let dir = format!("/proc/{}/task", self.nspawn.id());
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|c| {
                c.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .next()
    }

    /// Runs a command inside the instance (its namespaces, its root).
    fn run(&self, args: &[&str]) -> Output {
        let leader = self.leader().expect("the instance is running").to_string();
        Command::new("nsenter")
            .args(["-t", &leader, "-m", "-u", "-i", "-n", "-p", "--"])
            .args(args)
            .output()
            .unwrap()
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout)
            .trim()
            .to_string()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A clean power-off first (SIGRTMIN+4 to systemd), then the PID namespace's init
        // killed, which ends every process in it.
        if let Some(leader) = self.leader() {
            let _ = Command::new("kill")
                .args(["-s", "RTMIN+4", &leader.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.nspawn.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(leader) = self.leader() {
            let _ = Command::new("kill")
                .args(["-KILL", &leader.to_string()])
                .status();
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

fn userdata(args: &[&str]) -> String {
    let out = support::probe()
        .arg("userdata")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe userdata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The operator's reports from one instance.
fn reports_of(lab: &Lab, operator: &str, instance: &str) -> Vec<Value> {
    lab.get(
        "inet",
        &format!("http://{operator}/v1/reports?instance={instance}&limit=1000"),
    )
    .and_then(|b| serde_json::from_str::<Value>(&b).ok())
    .and_then(|v| v["reports"].as_array().cloned())
    .unwrap_or_default()
}

/// The lab, the laptop's collector and the booted instance, with what the UserData pinned.
struct Boot {
    // Dropped in this order: the instance before the lab whose namespace it is in.
    vm: Instance,
    lab: Lab,
    n: std::collections::HashMap<String, String>,
    bin: PathBuf,
    sha: String,
    operator: String,
    source: String,
    seed: PathBuf,
}

/// The agent the UserData installs: S3 and CloudFormation every 2 s, to the relay, with
/// verdict lines on the console and no EC2 API of its own (a private subnet's instance),
/// and no token: its reports are proven by the instance's identity.
fn render(lab: &Lab, source: &str, relay: &str, sha: &str) -> String {
    let pin = format!("{ARCH}={sha}");
    let ca = lab.ca();
    userdata(&[
        "--source",
        source,
        "--sha256",
        &pin,
        "--ca-file",
        &ca,
        "--",
        "s3",
        "cloudformation",
        "--report-to",
        relay,
        "--every",
        "2s",
        "--console",
        "--timeout",
        "1s",
        "--ping-count",
        "1",
        "--ec2",
        "off",
    ])
}

impl Boot {
    /// The lab with the laptop's collector but no relay yet, and the private instance booted
    /// from the rendered UserData.
    fn start(bin: PathBuf, rootfs: &str) -> Self {
        let n = names();
        let lab = Lab::up();
        let token = token(&lab);
        let operator = start_operator(&lab, &n, &token);
        let relay = format!("http://{}:7878", n["PUB_IP"]);
        let source = format!("{relay}/v1/probe");
        let sha = sha256(&bin);
        let seed = lab.dir().join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        let user_data = render(&lab, &source, &relay, &sha);
        let secret = std::fs::read_to_string(&token).unwrap();
        assert!(
            !user_data.contains(secret.trim()) && !user_data.contains("/etc/probe/token"),
            "the UserData holds a secret"
        );
        std::fs::write(seed.join("user-data"), user_data).unwrap();
        std::fs::write(
            seed.join("meta-data"),
            "instance-id: i-boot-test\nlocal-hostname: private-ec2\n",
        )
        .unwrap();
        let vm = Instance::boot(&lab, rootfs, &seed);
        Self {
            vm,
            lab,
            n,
            bin,
            sha,
            operator,
            source,
            seed,
        }
    }

    fn private_id(&self) -> String {
        self.lab.ec2_state()["instances"]["priv"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Step 1: The relay is down: each attempt says so on the console, naming the source, and
    /// cloud-init finishes all the same.
    fn relay_down_is_said_on_the_console(&self) {
        let first = self
            .vm
            .wait_bootstrap("for a refused attempt", Duration::from_secs(90), |l| {
                l["step"] == "fetch" && l["result"] == "refused"
            });
        assert_eq!(first["source"], self.source.as_str(), "{first}");
        assert_eq!(first["arch"], ARCH);
        let console = self.vm.console();
        assert!(
            console.contains("Cloud-init") && console.contains("finished"),
            "cloud-init was held by the fetch: {console}"
        );
    }

    /// Step 2: The relay comes up: probe is fetched, verified and installed, and the laptop gets
    /// the instance's reports.
    fn relay_up_installs_probe_and_reports_arrive(&self) {
        let relay = start_relay(
            &self.lab,
            &self.n,
            self.bin.to_str().unwrap(),
            None,
            &self.operator,
        );
        let up = Instant::now();
        let ok = self
            .vm
            .wait_bootstrap("for the download", Duration::from_secs(60), |l| {
                l["result"] == "ok"
            });
        assert_eq!(ok["detail"], format!("verified sha256 {}", self.sha));
        self.vm
            .wait_bootstrap("for the install", Duration::from_secs(30), |l| {
                l["result"] == "installed"
            });
        let id = self.private_id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while reports_of(&self.lab, &self.operator, &id).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no report from the booted instance through {relay}; console:\n{}",
                self.vm.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "boot: relay up -> first report at the laptop: {} ms",
            up.elapsed().as_millis()
        );
        // With no secret on the instance, the laptop knows the report by the key the
        // instance enrolled with its signed identity document, through the relay.
        let first = &reports_of(&self.lab, &self.operator, &id)[0];
        assert_eq!(first["authenticated"]["method"], "aws-identity", "{first}");
        assert_eq!(first["authenticated"]["instance_id"], id.as_str());
    }

    /// The service runs as its own user with only CAP_NET_RAW, and its verdicts reach the
    /// serial console through systemd.
    fn the_service_is_hardened_and_writes_the_console(&self) {
        let pid = self.main_pid();
        assert_ne!(pid, "0", "probe.service is not running");
        let status = self.vm.text(&["cat", &format!("/proc/{pid}/status")]);
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        assert!(!field("Uid:").starts_with('0'), "runs as root: {status}");
        assert_eq!(field("CapEff:"), "0000000000002000", "only CAP_NET_RAW");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.vm.console().contains("probe.verdict/v1") {
            assert!(Instant::now() < deadline, "no verdict line on the console");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Step 3: The gateway step: the relay, which has the EC2 API the instance lacks, sees
    /// S3 change path. (It labels its own copy only: the laptop stores what the instance's key
    /// signed, which a relay cannot change.)
    fn the_relay_sees_the_gateway_step(&self) {
        self.lab.step("gateway");
        // The step restarts the lab's resolver: a check in that gap sees dns-failed, so the
        // change line names whichever path came just before the gateway endpoint.
        let instance = format!("({}) -> s3: ", self.private_id());
        let change = format!("{instance}... -> gateway-endpoint");
        let terminal = self.lab.dir().join("log/relay.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&terminal).unwrap_or_default();
            if text
                .lines()
                .any(|l| l.contains(&instance) && l.ends_with(" -> gateway-endpoint"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the relay never printed {change:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn main_pid(&self) -> String {
        self.vm.text(&[
            "systemctl",
            "show",
            "-p",
            "MainPID",
            "--value",
            "probe.service",
        ])
    }

    /// The binary, the unit and the running service.
    fn state(&self) -> (String, String, String, String) {
        (
            self.vm.text(&["sha256sum", "/usr/local/bin/probe"]),
            self.vm.text(&["stat", "-c", "%Y", "/usr/local/bin/probe"]),
            self.vm.text(&["cat", "/etc/systemd/system/probe.service"]),
            self.main_pid(),
        )
    }

    /// Step 5: Running the UserData again changes nothing.
    fn running_the_user_data_again_changes_nothing(&self) {
        let before = self.state();
        let again = self
            .vm
            .run(&["sh", "/var/lib/cloud/seed/nocloud/user-data"]);
        assert!(again.status.success(), "{again:?}");
        let installed = || {
            self.vm
                .bootstrap_lines()
                .iter()
                .filter(|l| l["result"] == "installed")
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while installed() < 2 {
            assert!(Instant::now() < deadline, "the second run did not finish");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            self.vm
                .bootstrap_lines()
                .iter()
                .any(|l| l["result"] == "up-to-date"),
            "the second run downloaded again"
        );
        assert_eq!(
            self.state(),
            before,
            "running the UserData again changed something"
        );
    }

    /// Step 4: A wrong sha256 installs nothing, and the console says why.
    fn a_wrong_sha256_installs_nothing(&self) {
        let before = self.state();
        let wrong = "0".repeat(64);
        let relay = format!("http://{}:7878", self.n["PUB_IP"]);
        std::fs::write(
            self.seed.join("user-data-wrong"),
            render(&self.lab, &self.source, &relay, &wrong),
        )
        .unwrap();
        let run = self
            .vm
            .run(&["sh", "/var/lib/cloud/seed/nocloud/user-data-wrong"]);
        assert!(run.status.success(), "{run:?}");
        let mismatch = self
            .vm
            .wait_bootstrap("for the mismatch", Duration::from_secs(60), |l| {
                l["result"] == "sha-mismatch"
            });
        assert_eq!(
            mismatch["detail"],
            format!("got sha256 {}, pinned {wrong}: installed nothing", self.sha)
        );
        assert_eq!(self.state(), before, "a wrong sha256 changed the instance");
    }
}

#[test]
fn a_private_instance_boots_fetches_probe_from_the_relay_and_reports_without_a_login() {
    let mut tools = vec!["systemd-nspawn", "mmdebstrap", "nsenter"];
    tools.extend(support::lab::LAB_TOOLS);
    if !support::can_run("boot", &tools) {
        return;
    }
    let bin = release_binary();
    assert!(
        bin.is_file(),
        "{} is missing: build it first (scripts/test.sh does: cargo build --release --target {ARCH}-unknown-linux-musl)",
        bin.display()
    );
    let rootfs = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/rootfs.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(rootfs.status.success(), "lab/rootfs.sh failed");
    let rootfs = String::from_utf8_lossy(&rootfs.stdout).trim().to_string();

    let boot = Boot::start(bin, &rootfs);
    boot.relay_down_is_said_on_the_console();
    boot.relay_up_installs_probe_and_reports_arrive();
    boot.the_service_is_hardened_and_writes_the_console();
    boot.the_relay_sees_the_gateway_step();
    boot.running_the_user_data_again_changes_nothing();
    boot.a_wrong_sha256_installs_nothing();
}
