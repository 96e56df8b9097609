//! The relay: a collector on a public instance that private instances report to, and that
//! forwards every report it stores to the operator's collector through a durable queue
//! (the agent's spool, in `DATA/forward`), retrying with backoff. The upstream stores each
//! report id once, so a resend after a crash is harmless: exactly once, end to end.

use crate::deliver::{Delivery, SetupError, SpoolError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Reports the relay keeps while the upstream is unreachable.
const QUEUE_LIMIT: usize = 100_000;
/// First and longest wait between attempts while the upstream is down.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// The forwarding queue.
pub struct Relay {
    delivery: Delivery,
    wake: Notify,
}

impl Relay {
    /// A queue in `data/forward` towards `url`, signed with the token in `token_file`.
    ///
    /// # Errors
    /// What is wrong with the URL, the token file or the queue's directory.
    pub fn new(
        url: &str,
        token_file: Option<&Path>,
        data: &Path,
        tls: rustls::ClientConfig,
    ) -> Result<Self, SetupError> {
        let credentials = crate::deliver::Credentials {
            token_file,
            identity: None,
        };
        let delivery = Delivery::new(url, credentials, data.join("forward"), tls)?
            .with_limit(QUEUE_LIMIT)
            .refusing_when_full()
            .unbounded();
        Ok(Self {
            delivery,
            wake: Notify::new(),
        })
    }

    /// Queues a stored report for the upstream; done before the agent is answered, so a
    /// report the relay acknowledged is never left unforwarded.
    ///
    /// # Errors
    /// When the queue cannot be written.
    pub fn enqueue(
        &self,
        id: &str,
        line: &[u8],
        proof: Option<&crate::deliver::Proof>,
    ) -> Result<(), SpoolError> {
        // Full, the queue refuses (the agent keeps the report and sends it again): it never
        // drops what it acknowledged.
        match proof {
            Some(proof) => self.delivery.enqueue_signed(id, line, proof)?,
            None => self.delivery.enqueue(id, line)?,
        };
        self.wake.notify_one();
        Ok(())
    }

    /// Passes an enrolment request (GET for a nonce, POST with a body) to the upstream and
    /// returns its answer, at most 4 KiB of it: the relay cannot make or change a proof, so it
    /// only carries them.
    ///
    /// # Errors
    /// When the upstream cannot be reached.
    pub async fn pass_enrolment(
        &self,
        body: Option<bytes::Bytes>,
    ) -> Result<(u16, Vec<u8>), Unreachable> {
        let url = format!(
            "{}{}",
            self.delivery.base(),
            crate::identity::wire::ENROL_PATH
        );
        let client = self.delivery.client();
        let request = match body {
            Some(b) => client
                .post(&url)
                .header("content-type", "application/json")
                .body(b),
            None => client.get(&url),
        };
        let response = request.send().await.map_err(Unreachable)?;
        let status = response.status().as_u16();
        Ok((status, crate::deliver::read_limited(response, 4096).await))
    }

    /// Reports the upstream kept refusing, moved to the dead-letter folder since start.
    #[must_use]
    pub fn dead_letters(&self) -> u64 {
        self.delivery.dead_letters()
    }

    /// Forwards for ever: at once when reports arrive, with backoff while the upstream fails.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = BACKOFF.0;
        loop {
            let f = self.delivery.flush().await;
            if f.waiting == 0 {
                backoff = BACKOFF.0;
                self.wake.notified().await;
                continue;
            }
            if f.sent == 0 {
                tracing::warn!(
                    "forwarding: {} waiting ({}); next try in {} ms",
                    f.waiting,
                    f.stopped.unwrap_or_default(),
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// The relay's collector did not answer: the client's innermost cause names why (refused,
/// reset, a certificate).
#[derive(Debug, thiserror::Error)]
#[error("the relay's collector is unreachable: {}", crate::error::innermost(.0))]
pub struct Unreachable(#[source] reqwest::Error);
