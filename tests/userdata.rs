//! `probe userdata`, `probe install` and `probe uninstall` as a user meets them: the rendered
//! bootstrap is POSIX sh that dash parses and shellcheck passes, bad values are refused with
//! one line before anything is printed, the units systemd would load verify and rate 2.0 or
//! better in `systemd-analyze security`, and install is idempotent under --root.

mod support;

use std::path::Path;
use std::process::Command;
use support::{probe, run};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A directory removed when the test ends, even when it fails.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("probe-{name}-"))
        .tempdir()
        .unwrap()
}

/// A secret file as it should be: strong, and readable by its owner only (else probe warns).
fn secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn token_file(dir: &Path) -> String {
    let path = dir.join("probe.token");
    secret(&path, "c2VjcmV0LXRva2VuLWZvci10aGUtY29sbGVjdG9yCg==\n");
    path.to_str().unwrap().to_string()
}

fn userdata(args: &[&str]) -> support::Run {
    run(probe().arg("userdata").args(args))
}

#[test]
fn the_bootstrap_is_posix_sh_that_dash_and_shellcheck_accept() {
    if !support::can_run("userdata-shell", &["dash", "shellcheck"]) {
        return;
    }
    let dir_guard = temp_dir("userdata-sh");
    let dir = dir_guard.path();
    let token = token_file(dir);
    let sums = dir.join("SHA256SUMS");
    std::fs::write(
        &sums,
        format!(
            "{SHA}  probe-x86_64-unknown-linux-musl\n{}  probe-aarch64-unknown-linux-musl\n{SHA}  probe-0.1.0-x86_64-unknown-linux-musl.tar.gz\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let out = userdata(&[
        "--source",
        "http://10.10.0.10:7878/v1/probe",
        "--source",
        "https://bucket.s3.ap-northeast-2.amazonaws.com/probe/",
        "--sums",
        sums.to_str().unwrap(),
        "--token-file",
        &token,
        "--",
        "s3",
        "cloudformation",
        "--expect",
        "s3=gateway-endpoint",
        "--report-to",
        "http://10.10.0.10:7878",
        "--every",
        "60s",
        "--console",
        "--expect-body",
        "Web Server 1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.trim().starts_with("probe userdata: ")
            && out.stderr.contains("bytes of the 16384"),
        "{}",
        out.stderr
    );
    let script = dir.join("user-data");
    std::fs::write(&script, &out.stdout).unwrap();
    assert!(out.stdout.contains(&format!("x86_64) sha='{SHA}'")));
    assert!(out.stdout.contains(&format!("sha='{}'", "a".repeat(64))));
    assert!(
        out.stdout.contains("\nWeb Server 1\n"),
        "one argument, spaces kept"
    );
    for check in [
        Command::new("dash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap(),
        Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&script)
            .output()
            .unwrap(),
    ] {
        assert!(
            check.status.success(),
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // The fetch script it installs, once written out, passes too.
    for file in ["userdata/fetch.sh", "userdata/bootstrap.sh"] {
        let check = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    // Cut anywhere before its last line, the script defines a function and runs nothing.
    let cut = &out.stdout[..out.stdout.trim_end().rfind('\n').unwrap()];
    let truncated = Command::new("dash")
        .arg("-c")
        .arg(format!("{cut}\necho ran-nothing"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&truncated.stdout), "ran-nothing\n");
}

#[test]
fn the_three_formats() {
    let dir_guard = temp_dir("userdata-formats");
    let dir = dir_guard.path();
    let token = token_file(dir);
    let pin = format!("x86_64={SHA}");
    let base = [
        "--source",
        "http://10.10.0.10:7878/v1/probe",
        "--sha256",
        &pin,
        "--token-file",
        &token,
    ];
    let agent = ["--", "s3", "--report-to", "http://10.10.0.10:7878"];
    let with = |format: &str| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--format", format]);
        args.extend(agent);
        userdata(&args)
    };
    let script = with("script");
    assert!(script.stdout.starts_with("#!/bin/sh\n"));
    let cc = with("cloud-config");
    assert!(cc.stdout.starts_with("#cloud-config\n"));
    assert!(cc.stdout.contains("      #!/bin/sh\n"));
    let cfn = with("cloudformation");
    assert!(
        cfn.stdout
            .starts_with("UserData:\n  Fn::Base64:\n    Fn::Sub: |\n      #!/bin/sh\n")
    );
    // Fn::Sub would read our own ${...} as references: each is escaped as ${!...}.
    assert!(!cfn.stdout.contains("${src}") && cfn.stdout.contains("${!src}"));
}

#[test]
fn bad_values_are_refused_with_one_line_and_nothing_printed() {
    let dir_guard = temp_dir("userdata-bad");
    let dir = dir_guard.path();
    let token = token_file(dir);
    let quoted = dir.join("quoted.token");
    secret(&quoted, "it's-c2VjcmV0LXRva2VuLWZvci10aGUtY29sbGVjdG9yCg\n");
    // What the agent would refuse at boot is refused here, by the same rule.
    let short = dir.join("short.token");
    std::fs::write(&short, "short-token\n").unwrap();
    let spaced = dir.join("spaced.token");
    std::fs::write(&spaced, "two words of a long enough token\n").unwrap();
    let long = "x".repeat(17_000);
    // Each case's arguments, '|' between them; the words in capitals stand for values.
    let cases = [
        ("--source|SRC|--|s3", "no sha256 pinned"),
        ("--source|SRC|--sha256|x86_64=abc|--|s3", "is not a sha256"),
        ("--source|SRC|--sha256|sparc=abc|--|s3", "x86_64 or aarch64"),
        (
            "--source|http://10.10.0.10:7878/probe|--sha256|PIN|--|s3",
            "a prefix ending in /",
        ),
        (
            "--source|http://h/'$(reboot)'/|--sha256|PIN|--|s3",
            "would break the script",
        ),
        ("PREFIX|--|s3|--expect-body|it's", "would break the script"),
        ("PREFIX|--|s3|--expect-body|a\nb", "a newline"),
        ("PREFIX|--|bad host", "white space"),
        (
            "PREFIX|--|s3|--frobnicate",
            "unexpected argument '--frobnicate'",
        ),
        (
            "PREFIX|--|s3|--report-to|http://h:1|--identity|off",
            "--report-to needs a proof",
        ),
        ("PREFIX|--token-file|QUOTED|--|s3", "would break the script"),
        (
            "PREFIX|--token-file|SHORT|--|s3",
            "shorter than 16 characters",
        ),
        ("PREFIX|--token-file|SPACED|--|s3", "white space or control"),
        (
            "PREFIX|--token-file|/no/such/token|--|s3",
            "--token-file: cannot read the token file /no/such/token",
        ),
        (
            "PREFIX|--token-file|TOKEN|--|s3|--token-file|/x",
            "--token-file after --",
        ),
        (
            "PREFIX|--|s3|--spool|/tmp/x",
            "--spool is set by the service",
        ),
        ("PREFIX|--sums|/no/such/SUMS|--|s3", "--sums /no/such/SUMS"),
        (
            "PREFIX|--relay|https://c:7878|--relay-listen|nowhere|--token-file|TOKEN|--|s3",
            "--relay-listen \"nowhere\"",
        ),
        (
            "PREFIX|--|s3|--expect-body|LONG",
            "over the 16384 EC2 accepts",
        ),
    ];
    for (line, want) in cases {
        let line = line
            .replace("PREFIX", "--source|SRC|--sha256|PIN")
            .replace("SRC", "http://10.10.0.10:7878/v1/probe")
            .replace("PIN", &format!("x86_64={SHA}"))
            .replace("QUOTED", quoted.to_str().unwrap())
            .replace("SHORT", short.to_str().unwrap())
            .replace("SPACED", spaced.to_str().unwrap())
            .replace("TOKEN", &token)
            .replace("LONG", &long);
        let args: Vec<&str> = line.split('|').collect();
        let out = userdata(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: printed {}", out.stdout);
        let said = out.stderr.trim_end();
        assert!(!said.contains('\n'), "{args:?}: more than one line: {said}");
        assert!(
            said.contains(want),
            "{args:?}: {said:?} does not say {want:?}"
        );
    }
}

#[test]
fn install_writes_under_a_root_once_and_uninstall_removes_it() {
    let root_guard = temp_dir("install-root");
    let root = root_guard.path();
    let args = [
        "--root",
        root.to_str().unwrap(),
        "--bin",
        "/usr/local/bin/probe",
        "--relay",
        "https://collector.example:7878",
        "--",
        "s3",
        "--report-to",
        "http://127.0.0.1:7878",
        "--token-file",
        "/etc/probe/token",
        "--console",
    ];
    let dry = run(probe().arg("install").arg("--dry-run").args(&args[..]));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .starts_with("# /etc/systemd/system/probe.service\n")
    );
    assert!(
        dry.stdout
            .contains("# /etc/systemd/system/probe-relay.service\n")
    );
    assert!(!root.join("etc").exists(), "a dry run wrote files");

    let first = run(probe().arg("install").args(&args[..]));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains("wrote"), "{}", first.stderr);
    let unit = root.join("etc/systemd/system/probe.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains(
        "ExecStart=/usr/local/bin/probe check s3 --report-to http://127.0.0.1:7878 --token-file %d/token -o console --every 60s --spool %S/probe/spool\n"
    ), "{text}");
    let second = run(probe().arg("install").args(&args[..]));
    assert_eq!(second.code, 0);
    assert!(
        second.stderr.contains("unchanged") && !second.stderr.contains("wrote"),
        "{}",
        second.stderr
    );

    // Installed again without --relay: the relay's unit goes.
    let without: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with("https://") && *a != "--relay")
        .collect();
    let third = run(probe().arg("install").args(&without));
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(
        third.stderr.contains("removed")
            && !root.join("etc/systemd/system/probe-relay.service").exists(),
        "{}",
        third.stderr
    );
    assert!(unit.exists());

    let gone = run(probe().args(["uninstall", "--root", root.to_str().unwrap()]));
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert!(!unit.exists() && !root.join("etc/systemd/system/probe-relay.service").exists());

    let bad = run(probe().args([
        "install",
        "--dry-run",
        "--",
        "s3",
        "--token-file",
        "probe.token",
    ]));
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("absolute path"), "{}", bad.stderr);
}

#[test]
fn the_units_verify_and_rate_2_or_better_in_systemd_analyze_security() {
    if !support::can_run("units", &["systemd-analyze"]) {
        return;
    }
    let root_guard = temp_dir("install-analyze");
    let root = root_guard.path();
    let bin = env!("CARGO_BIN_EXE_probe");
    let out = run(probe().args([
        "install",
        "--root",
        root.to_str().unwrap(),
        "--bin",
        bin,
        "--relay",
        "https://collector.example:7878",
        "--",
        "s3",
        "--report-to",
        "http://127.0.0.1:7878",
        "--token-file",
        "/etc/probe/token",
        "--console",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for name in ["probe.service", "probe-relay.service"] {
        let unit = root.join("etc/systemd/system").join(name);
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(
            verify.status.success() && said.trim().is_empty(),
            "{name}: {said}"
        );
        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&security.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no exposure level in {text}"));
        eprintln!("{name}: exposure {level}");
        assert!(level <= 2.0, "{name}: exposure {level} over 2.0:\n{text}");
    }
}
