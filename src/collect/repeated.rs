//! A warning whose cause lasts (a database down for an hour, read every half second) is said
//! once a minute, with how many times it was not, rather than filling the log.

use std::time::{Duration, Instant};

/// How often a lasting warning is said again.
const EVERY: Duration = Duration::from_secs(60);

/// One warning's last saying.
#[derive(Debug, Default)]
pub struct Repeated {
    last: Option<Instant>,
    unsaid: u64,
}

impl Repeated {
    /// Whether to say it at `now`; then the words to add for the times it was not said.
    pub fn due(&mut self, now: Instant) -> Option<String> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < EVERY)
        {
            self.unsaid += 1;
            return None;
        }
        self.last = Some(now);
        Some(match std::mem::take(&mut self.unsaid) {
            0 => String::new(),
            n => format!(" (and {n} more time(s) since it was last said)"),
        })
    }

    /// The cause ended: the next warning is said at once.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_warning_is_said_once_a_minute_with_the_times_it_was_not() {
        let start = Instant::now();
        let mut r = Repeated::default();
        assert_eq!(r.due(start).as_deref(), Some(""));
        for half in 1..120 {
            assert!(r.due(start + Duration::from_millis(500 * half)).is_none());
        }
        assert_eq!(
            r.due(start + EVERY).as_deref(),
            Some(" (and 119 more time(s) since it was last said)")
        );
        r.clear();
        assert_eq!(r.due(start + EVERY).as_deref(), Some(""), "a new cause");
    }
}
