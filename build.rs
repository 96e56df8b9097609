//! Records the commit and the target triple for `probe --version`.

use std::path::Path;
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=PROBE_TARGET={target}");
    println!("cargo:rerun-if-env-changed=PROBE_COMMIT");
    let commit = std::env::var("PROBE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PROBE_COMMIT={commit}");
    // A new commit moves HEAD or the branch it points to.
    let git = Path::new(".git");
    if git.is_dir() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
            if let Some(reference) = head.strip_prefix("ref: ") {
                println!("cargo:rerun-if-changed=.git/{}", reference.trim());
            }
        }
        println!("cargo:rerun-if-changed=.git/packed-refs");
    }
    // The static musl release binaries are static-pie, whose ~450 KB of relative
    // relocations pack into a few KB as RELR (musl's start-up code reads them since 1.2.4,
    // GNU ld writes them since 2.38): room under the 7 MiB the UserData download allows.
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if release && target.ends_with("-linux-musl") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
