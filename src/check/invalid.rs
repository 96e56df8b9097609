//! What is wrong with a `probe check` command line, each case with the fix it names.

use crate::model::{SourceStatus, UnknownExpectation, region::BadRegion};
use crate::target::TargetError;
use std::path::PathBuf;
use std::time::Duration;

/// A `probe check` command line that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The words themselves (`probe userdata` and `probe install` check a line as clap would
    /// parse it).
    #[error("{}", crate::values::one_line(.0))]
    Words(#[from] clap::Error),
    /// No target.
    #[error("no target given: name at least one, as in `probe check s3 cloudformation`")]
    NoTarget,
    /// The region.
    #[error(transparent)]
    Region(#[from] BadRegion),
    /// A target, and why no region could be found when a service name needed one.
    #[error("{error}{}", metadata.as_ref().map(|s| format!(" (instance metadata: {s})")).unwrap_or_default())]
    Target {
        /// What is wrong with it.
        error: TargetError,
        /// The instance metadata's state, when its region was missing.
        metadata: Option<SourceStatus>,
    },
    /// `--deadline` shorter than `--timeout`.
    #[error(
        "--deadline {} is shorter than --timeout {}: make it at least as long",
        humantime::format_duration(*deadline),
        humantime::format_duration(*timeout)
    )]
    Deadline {
        /// The deadline given (or made of the timeout).
        deadline: Duration,
        /// The timeout.
        timeout: Duration,
    },
    /// `--concurrency 0`.
    #[error("--concurrency 0 would check nothing: give 1 or more")]
    NoConcurrency,
    /// A `--ca-file` that is not there.
    #[error("--ca-file {}: no such file; give the path of a PEM CA certificate", .0.display())]
    CaFile(PathBuf),
    /// An `SSL_CERT_FILE` that is not there.
    #[error("SSL_CERT_FILE={0}: no such file; fix it or unset it")]
    SslCertFile(String),
    /// An `--expect` without `=`.
    #[error("--expect {0:?}: write TARGET=PATH, as in --expect s3=gateway-endpoint, or auto")]
    ExpectForm(String),
    /// An `--expect` naming no known path.
    #[error("--expect {given:?}: {why}")]
    ExpectPath {
        /// The `--expect` value.
        given: String,
        /// The path it names.
        why: UnknownExpectation,
    },
    /// An `--expect` naming no target of the line.
    #[error("--expect {given:?}: no target {name:?}; the targets are {}", targets.join(", "))]
    ExpectTarget {
        /// The `--expect` value.
        given: String,
        /// The target it names.
        name: String,
        /// The line's targets.
        targets: Vec<String>,
    },
    /// Two expectations for one target.
    #[error("--expect names {0:?} twice: keep one expectation per target")]
    ExpectTwice(String),
    /// `--report-to` with neither identity nor token.
    #[error(
        "--report-to needs a proof: --identity aws (on EC2), or --token-file with the collector's token"
    )]
    NoProof,
    /// `--identity aws` with `--no-imds`.
    #[error(
        "--identity aws reads the instance identity document from IMDS: drop --no-imds, or give --token-file and --identity off"
    )]
    IdentityWithoutImds,
    /// `--identity aws` where the environment turns IMDS off.
    #[error(
        "--identity aws reads the instance identity document from IMDS, which is off here (AWS_EC2_METADATA_DISABLED): turn it on, or give --token-file and --identity off"
    )]
    IdentityImdsOff,
}
