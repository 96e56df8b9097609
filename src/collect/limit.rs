//! A per-source rate limit: a token bucket per peer address, refilled continuously.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Sources remembered at most; the idlest are forgotten first.
const SOURCES: usize = 10_000;

/// Reports per second per source, with bursts of twice that.
pub struct RateLimit {
    per_sec: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimit {
    /// `per_sec` reports a second per source.
    #[must_use]
    pub fn new(per_sec: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`; `false` when the source is over its rate.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let burst = self.per_sec * 2.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= SOURCES && !buckets.contains_key(&ip) {
            // Forget the sources whose buckets have refilled: they hold nothing.
            let per_sec = self.per_sec;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_is_refused_while_others_are_not() {
        let limit = RateLimit::new(5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            (0..10).filter(|_| limit.allow(a)).count(),
            10,
            "a burst of twice the rate"
        );
        assert!(!limit.allow(a));
        assert!(limit.allow(b));
    }
}
