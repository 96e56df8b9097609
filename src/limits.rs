//! What the machine allows this process: the open-file limit, raised at start where the hard
//! limit permits, so the collector's connection cap (and later the check engine's
//! concurrency) can be set below it rather than guessed.

use rustix::process::{Resource, getrlimit, setrlimit};

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
