//! What is wrong with a `probe collect` command line, each case with the fix it names.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A `probe collect` command line that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// `--database` (not a PostgreSQL URL, or TLS settings that cannot be followed).
    #[error(transparent)]
    Database(super::db::DbError),
    /// No SQLite database where `--data` points.
    #[error("{}: no database there; is --data right?", .0.display())]
    NoDatabase(PathBuf),
    /// Listening beyond loopback with no proof asked of a report.
    #[error(
        "refusing to listen on {0} without --token-file or --allow-account: anyone could post reports; give one, or listen on 127.0.0.1"
    )]
    Unprotected(SocketAddr),
    /// `--require both` without both proofs.
    #[error(
        "--require both needs --token-file and an identity (--allow-account, or --forward for a relay)"
    )]
    BothNeeded,
    /// `forget` for an instance with no key.
    #[error(
        "{}: no key enrolled for it in {database}{}",
        crate::terminal::safe(instance),
        if enrolled.is_empty() {
            String::from(" (no instance is enrolled there: is --data right?)")
        } else {
            format!(" (enrolled: {})", enrolled.join(", "))
        }
    )]
    NotEnrolled {
        /// The instance named.
        instance: String,
        /// The database, as shown.
        database: String,
        /// The instances that are enrolled.
        enrolled: Vec<String>,
    },
    /// Identity settings without `--allow-account`.
    #[error(
        "--allow-region, --allow-vpc and --identity-ca apply to instance identities: give --allow-account too"
    )]
    IdentityAlone,
    /// An `--allow-account` that is no account id.
    #[error("--allow-account {0:?}: give a 12-digit AWS account id")]
    Account(String),
    /// An `--allow-region` that is no region.
    #[error("--allow-region {0:?}: give a region, as ap-northeast-2")]
    Region(String),
    /// An `--allow-vpc` that is no VPC id.
    #[error("--allow-vpc {0:?}: give a VPC id, as vpc-0123456789abcdef0")]
    Vpc(String),
    /// The `--read-token-file`.
    #[error("--read-token-file: {0}")]
    ReadToken(#[source] crate::auth::TokenError),
    /// A `--from-console` that is no instance id.
    #[error("--from-console {0:?}: give instance ids, as i-0123456789abcdef0")]
    ConsoleInstance(String),
    /// Consoles to read without a region.
    #[error("--from-console/--stack need the instances' region: give --region or set AWS_REGION")]
    ConsoleRegion,
}
