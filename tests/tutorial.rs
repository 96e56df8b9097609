//! The README's first command, `lab/tutorial.sh`, run as a newcomer would run it (with this
//! build's binary in place of its own release build): every step and fault ends as the
//! tutorial says, and the operator's collector sees the changes. Needs root.

mod support;

use std::process::Command;
use support::lab::{Lab, lab_dir, names};

#[test]
fn the_readmes_first_command_walks_every_step_as_the_tutorial_says() {
    if !Lab::available("lab-tutorial-script") {
        return;
    }
    let out = Command::new(lab_dir().join("tutorial.sh"))
        .env("PROBE", env!("CARGO_BIN_EXE_probe"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Every check ended as the tutorial says."),
        "{stdout}"
    );
    for step in names()["STEPS"].split_whitespace() {
        assert!(
            stdout.contains(&format!("STEP {step}: ")),
            "{step}: {stdout}"
        );
    }
    // The faults, each with the rule that causes it, and the one the configuration allows.
    for line in [
        "config: the configuration agrees: blocked by sg-",
        "config: the configuration agrees: blocked by acl-",
        ": pendingAcceptance",
        "config DISAGREES: the configuration allows it (",
        "(egress): no rule allows tcp 443 to ",
        "comes from its endpoint policy, not from the path",
        "reachable via nat-gateway",
        "reachable via private: 1 of 1 addresses answered HTTP 404; address 203.0.113.20 via eni-",
        "reachable via private: 1 of 1 addresses answered HTTP 404; address 203.0.113.20 via i-",
        "reachable via peering",
        "reachable via transit-gateway",
        "(virtual private gateway; route 20.20.0.0/16 of rtb-",
        "(blackhole: the NAT gateway is gone)",
        "; by family: IPv4 gateway-endpoint, IPv6 public",
        "'s AAAA answers (",
        "a gateway endpoint serves only its own VPC",
    ] {
        assert!(stdout.contains(line), "{line} not in {stdout}");
    }
    // The operator's terminal, through the relay: the private instance's S3 path as the
    // gateway endpoint came.
    assert!(
        stdout.contains("private-ec2 (i-")
            && stdout.contains("-> s3: unreachable -> gateway-endpoint"),
        "{stdout}"
    );
}
