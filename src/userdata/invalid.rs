//! What is wrong with a `probe userdata` command line or the files it embeds, each case with
//! the fix it names.

use super::render::Unsafe;
use std::path::PathBuf;

/// UserData that cannot be made as asked.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    /// A value the script cannot hold safely, or a script over EC2's limit.
    #[error(transparent)]
    Unsafe(#[from] Unsafe),
    /// A `--source` that is no http(s) URL.
    #[error("--source {0:?}: give an http:// or https:// URL")]
    SourceScheme(String),
    /// A `--source` that names neither a relay nor a prefix.
    #[error(
        "--source {0:?}: give a relay's .../v1/probe, or a prefix ending in / to which probe-ARCH-unknown-linux-musl is appended"
    )]
    SourceForm(String),
    /// A CloudFormation reference outside `--format cloudformation`.
    #[error("{flag} {value:?}: ${{...}} is a CloudFormation reference: {fix}")]
    Reference {
        /// The option.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What to do.
        fix: &'static str,
    },
    /// A `--sums` file that cannot be read.
    #[error("--sums {}: {source}; give the SHA256SUMS file scripts/release.sh wrote", path.display())]
    SumsUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `--sums` file with no line for probe.
    #[error(
        "--sums {}: no line for probe-x86_64-unknown-linux-musl or probe-aarch64-unknown-linux-musl",
        .0.display()
    )]
    SumsEmpty(PathBuf),
    /// A `--sha256` without `=`.
    #[error("--sha256 {0:?}: write ARCH=HEX, as x86_64=9f86d0...")]
    Sha256Form(String),
    /// A `--sha256` for no release's architecture.
    #[error("--sha256 {0:?}: the architecture is x86_64 or aarch64")]
    Sha256Arch(String),
    /// A digest that is not 64 hex digits.
    #[error("{what}: {hex:?} is not a sha256 (64 hex digits, as sha256sum prints)")]
    NotSha256 {
        /// Where it was given.
        what: String,
        /// The text.
        hex: String,
    },
    /// No digest at all.
    #[error(
        "no sha256 pinned: give --sums dist/SHA256SUMS or --sha256 x86_64=HEX (the UserData is what vouches for the binary)"
    )]
    NoPin,
    /// The token file.
    #[error("--token-file: {0}")]
    Token(#[source] crate::auth::TokenError),
    /// A `--ca-file` that cannot be read.
    #[error("--ca-file {}: {source}; give a PEM CA certificate", path.display())]
    CaUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `--ca-file` with no certificate.
    #[error("--ca-file {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)", .0.display())]
    CaEmpty(PathBuf),
    /// A `--ca-file` holding a `$`, which no PEM file does.
    #[error("--ca-file {}: a PEM file holds no $: is it a certificate?", .0.display())]
    CaDollar(PathBuf),
    /// A file option given to the agent's line instead of to `probe userdata`.
    #[error("{flag} after --: give probe userdata {flag}, before --: the {what} is embedded")]
    AfterDashDash {
        /// The option.
        flag: &'static str,
        /// What the UserData embeds of it.
        what: &'static str,
    },
    /// The agent's check command line.
    #[error(transparent)]
    CheckLine(#[from] crate::check::plan::PlanError),
    /// The service or the relay on the instance.
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
}

impl From<crate::install::unit::Refusal> for UserDataError {
    fn from(e: crate::install::unit::Refusal) -> Self {
        Self::Install(e.into())
    }
}
