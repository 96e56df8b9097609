//! A small cache of answers from slow outside systems (the EC2 API): one load per key at a
//! time however many requests wait for it, answers kept for a while, failures included so
//! a broken API is not asked again by every report.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Keys kept at most; past that, stale ones are dropped.
const KEYS: usize = 10_000;

type Slot<V> = (Instant, Arc<OnceCell<V>>);

/// Answers by key, each fresh for `ttl`.
pub struct Cache<K, V> {
    ttl: Duration,
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// An empty cache whose answers are fresh for `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The fresh answer for `key`, or the one `load` gives; concurrent callers share one load.
    pub async fn get(&self, key: &K, load: impl Future<Output = V>) -> V {
        let cell = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slots.len() >= KEYS {
                let ttl = self.ttl;
                slots.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            match slots.get(key) {
                Some((at, cell)) if at.elapsed() < self.ttl => cell.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    slots.insert(key.clone(), (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| load).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_load_until_it_goes_stale() {
        let cache = Cache::new(Duration::from_millis(200));
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            7
        };
        let key = "vpc".to_string();
        let (a, b) = tokio::join!(cache.get(&key, load()), cache.get(&key, load()));
        assert_eq!((a, b), (7, 7));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&key, load()).await, 7);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}
