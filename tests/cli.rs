//! The command line as a user meets it: help text, usage errors, exit codes.

mod support;

use support::{probe, run};

/// Compares `actual` with tests/snapshots/NAME; `UPDATE_SNAPSHOTS=1` rewrites the file.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} changed; run with UPDATE_SNAPSHOTS=1 if that is intended"
    );
}

#[test]
fn help_texts() {
    let top = run(probe().arg("--help"));
    assert_eq!(top.code, 0);
    snapshot("help.txt", &top.stdout);
    let check = run(probe().args(["check", "--help"]));
    assert_eq!(check.code, 0);
    snapshot("check-help.txt", &check.stdout);
    let context = run(probe().args(["context", "--help"]));
    assert_eq!(context.code, 0);
    snapshot("context-help.txt", &context.stdout);
    let collect = run(probe().args(["collect", "--help"]));
    assert_eq!(collect.code, 0);
    snapshot("collect-help.txt", &collect.stdout);
    for command in ["userdata", "install", "uninstall"] {
        let help = run(probe().args([command, "--help"]));
        assert_eq!(help.code, 0);
        snapshot(&format!("{command}-help.txt"), &help.stdout);
    }
}

#[test]
fn version_names_the_commit_and_the_target() {
    let v = run(probe().arg("--version"));
    assert_eq!(v.code, 0);
    let line = v.stdout.trim();
    let rest = line
        .strip_prefix(&format!("probe {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, target) = rest.trim_end_matches(')').split_once(", ").unwrap();
    assert!(
        commit == "unknown" || commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line}"
    );
    assert!(target.contains("-linux-"), "{line}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(probe().args(["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for word in ["userdata", "collect", "report-to"] {
            assert!(out.stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let man = run(probe().arg("man"));
    assert_eq!(man.code, 0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH probe"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("userdata"));
    let bad = run(probe().args(["completions", "tcsh"]));
    assert_eq!(bad.code, 2);
}

#[test]
fn usage_errors_exit_2_with_one_line_naming_the_fix() {
    for (args, needle) in [
        (vec!["check"], "no target given"),
        (vec!["check", "s3"], "--region"),
        (
            vec!["check", "s3", "--region", "Seoul"],
            "is not an AWS region",
        ),
        (vec!["check", "bad host"], "white space"),
        (vec!["check", "h.example:99999"], "over 65535"),
        (vec!["check", "gopher://h.example/"], "unknown scheme"),
        (
            vec!["check", "h.example", "--expect", "h.example=sideways"],
            "unknown expectation",
        ),
        (
            vec!["check", "h.example", "--ca-file", "/no/such/ca.pem"],
            "no such file",
        ),
        (vec!["check", "h.example", "--timeout", "soon"], "--timeout"),
        (
            vec![
                "check",
                "h.example",
                "--report-to",
                "http://127.0.0.1:9",
                "--token-file",
                "/no/such/token",
            ],
            "cannot read the token file",
        ),
        (
            vec![
                "check",
                "h.example",
                "--report-to",
                "collector:7878",
                "--token-file",
                "/dev/null",
            ],
            "give the collector's URL",
        ),
        (
            vec!["check", "h.example", "--every", "500ms"],
            "give 1s or more",
        ),
        (vec!["collect", "--listen", "localhost"], "--listen"),
    ] {
        let out = run(probe().args(&args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{args:?}: stdout carries only reports"
        );
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", out.stderr);
        assert!(
            lines[0].starts_with("probe: ") && lines[0].contains(needle),
            "{args:?}: {}",
            lines[0]
        );
    }
}

#[test]
fn a_ca_file_without_certificates_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let out = run(probe().args(["check", "127.0.0.1:9", "--ca-file", path.to_str().unwrap()]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("holds no PEM certificate"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_flags_are_usage_errors() {
    let out = run(probe().args(["check", "--bogus"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--bogus"));
}

#[test]
fn json_is_the_default_when_stdout_is_not_a_terminal() {
    let port = support::servers::refused_port();
    let out = run(probe().args(["check", &format!("127.0.0.1:{port}"), "--ping-count", "0"]));
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(report["schema"], "probe.report/v1");
    support::assert_valid(&report);
    let table = run(probe().args([
        "check",
        &format!("127.0.0.1:{port}"),
        "--ping-count",
        "0",
        "-o",
        "table",
    ]));
    assert!(table.stdout.starts_with("TARGET"), "{}", table.stdout);
    assert!(
        table.stdout.contains("FAIL  127.0.0.1:"),
        "{}",
        table.stdout
    );
}
