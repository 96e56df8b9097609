//! What the machine allows this process: the open-file limit, raised at start where the hard
//! limit permits, so the collector's connection cap and the check engine's concurrency are
//! set below it rather than guessed.

use rustix::process::{Resource, getrlimit, setrlimit};

/// Files one check in flight may hold: its TCP socket, or a DNS lookup's two UDP sockets (A
/// and AAAA) and a TCP retry.
const FILES_PER_CHECK: u64 = 3;
/// Files kept for everything else: stdio, the ICMP sockets, the metadata and EC2 clients, the
/// collector's connection, the spool.
const RESERVED_FILES: u64 = 64;
/// The most checks at once whatever the limit: more than any VPC has endpoint addresses, and
/// few enough that a run's tasks stay a few megabytes.
const MAX_CHECKS: usize = 16_384;

/// Raises the soft open-file limit to the hard one (where allowed) and returns the limit now
/// in force.
#[must_use]
pub fn raise_open_files() -> u64 {
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if let Some(hard) = limit.maximum {
        if hard > soft {
            limit.current = Some(hard);
            if setrlimit(Resource::Nofile, limit).is_ok() {
                return hard;
            }
        }
    }
    soft
}

/// How many checks (a DNS lookup, or an address's stages) may run at once under the
/// open-file limit now in force; `asked`, the operator's cap, when it is lower.
#[must_use]
pub fn checks_at_once(asked: Option<usize>) -> usize {
    let files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let allowed = checks_for(files);
    asked.map_or(allowed, |n| n.min(allowed))
}

fn checks_for(files: u64) -> usize {
    let checks = files.saturating_sub(RESERVED_FILES) / FILES_PER_CHECK;
    usize::try_from(checks)
        .unwrap_or(MAX_CHECKS)
        .clamp(1, MAX_CHECKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_fit_under_the_open_file_limit() {
        assert_eq!(checks_for(1024), 320);
        assert_eq!(
            checks_for(64),
            1,
            "one check at least, however low the limit"
        );
        assert_eq!(checks_for(u64::MAX), MAX_CHECKS);
        assert!(checks_at_once(Some(4)) <= 4);
    }
}
