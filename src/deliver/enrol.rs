//! The agent's enrolment: its key, made once beside the spool, enrolled with the collector by
//! the instance's signed identity document before the first report goes, and again when the
//! collector no longer knows it. A marker beside the key says which collector knows it.

use crate::context::imds::{HttpImds, ImdsError};
use crate::identity::wire::{self, Challenge, Enrolled, Enrolment};
use crate::identity::{AgentKey, KeyError, key};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The marker's name inside the spool.
const MARKER: &str = "identity.enrolled";

/// The agent's key and where it is enrolled.
pub struct Enroller {
    key: AgentKey,
    imds: String,
    marker: PathBuf,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    collector: String,
    key_id: String,
    instance_id: String,
}

impl Enroller {
    /// The key in `spool` (made when missing), enrolled with the document IMDS at `imds`
    /// serves.
    ///
    /// # Errors
    /// A key file that cannot be made or trusted.
    pub fn new(spool: &Path, imds: String) -> Result<Self, KeyError> {
        Ok(Self {
            key: AgentKey::load_or_create(&spool.join(key::FILE))?,
            imds,
            marker: spool.join(MARKER),
        })
    }

    /// The key reports are signed with.
    #[must_use]
    pub fn key(&self) -> &AgentKey {
        &self.key
    }

    /// Whether the collector at `base` has enrolled this key.
    #[must_use]
    pub fn enrolled(&self, base: &str) -> bool {
        std::fs::read(&self.marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
            .is_some_and(|m| m.collector == base && m.key_id == self.key.id())
    }

    /// Forgets that the collector knows the key: the next send enrols it again.
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.marker);
    }

    /// Enrols the key with the collector at `base`; returns the line to log.
    ///
    /// # Errors
    /// What failed, and the fix.
    pub async fn enrol(&self, client: &reqwest::Client, base: &str) -> Result<String, EnrolError> {
        let imds = HttpImds::new(&self.imds)?;
        let (document, signature) = imds.identity().await.map_err(EnrolError::Document)?;
        let url = format!("{base}{}", wire::ENROL_PATH);
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(EnrolError::Unreachable)?;
        let status = response.status().as_u16();
        let body = super::read_limited(response, 4096).await;
        let challenge: Challenge = match (status, serde_json::from_slice(&body)) {
            (200, Ok(c)) => c,
            _ => return Err(refusal("a nonce", status, &body)),
        };
        let enrolment = Enrolment {
            proof: self
                .key
                .sign(&wire::enrol_message(&challenge.nonce, &document)),
            document,
            signature,
            public_key: self.key.public(),
            nonce: challenge.nonce,
        };
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&enrolment).unwrap_or_default())
            .send()
            .await
            .map_err(EnrolError::Unreachable)?;
        let status = response.status().as_u16();
        let body = super::read_limited(response, 4096).await;
        let enrolled: Enrolled = match (status, serde_json::from_slice(&body)) {
            (200 | 201, Ok(e)) => e,
            _ => return Err(refusal("the enrolment", status, &body)),
        };
        if enrolled.key_id != self.key.id() {
            return Err(EnrolError::OtherKey {
                theirs: enrolled.key_id,
                ours: self.key.id().clone(),
            });
        }
        let marker = Marker {
            collector: base.to_string(),
            key_id: enrolled.key_id,
            instance_id: enrolled.instance_id,
        };
        let text = serde_json::to_vec(&marker).unwrap_or_default();
        std::fs::write(&self.marker, text).map_err(|source| EnrolError::Marker {
            path: self.marker.clone(),
            source,
        })?;
        Ok(format!(
            "enrolled key {} for {} with {base}",
            marker.key_id, marker.instance_id
        ))
    }
}

/// Why the key could not be enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The metadata service's address is not usable.
    #[error(transparent)]
    Endpoint(#[from] ImdsError),
    /// The signed document cannot be read.
    #[error(
        "--identity aws: cannot read the instance identity document ({0}): run on EC2 with IMDS reachable, or give --token-file"
    )]
    Document(#[source] ImdsError),
    /// No answer from the collector.
    #[error("enrolment: collector unreachable: {}", crate::error::innermost(.0))]
    Unreachable(#[source] reqwest::Error),
    /// The collector said no.
    #[error("enrolment: the collector refused {what} (HTTP {status}): {why}")]
    Refused {
        /// A nonce, or the enrolment.
        what: &'static str,
        /// Its HTTP status.
        status: u16,
        /// Its reason, made safe for a terminal.
        why: String,
    },
    /// The collector enrolled a key that is not this agent's.
    #[error(
        "enrolment: the collector enrolled key {} instead of this agent's {ours}: is something between them?",
        crate::terminal::safe(.theirs)
    )]
    OtherKey {
        /// The key the collector named.
        theirs: String,
        /// This agent's.
        ours: String,
    },
    /// The marker cannot be written.
    #[error("{}: cannot write it ({source})", path.display())]
    Marker {
        /// The marker.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The collector's refusal, from its JSON answer when there is one.
fn refusal(what: &'static str, status: u16, body: &[u8]) -> EnrolError {
    #[derive(Deserialize)]
    struct Answer {
        error: String,
    }
    let why = serde_json::from_slice::<Answer>(body).map_or_else(
        |_| "not a probe collector's answer".to_string(),
        |a| crate::terminal::safe(&a.error).into_owned(),
    );
    EnrolError::Refused { what, status, why }
}
