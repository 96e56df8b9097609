//! What the agent and the collector exchange to enrol a key and to sign a report, and the
//! exact bytes each signature covers (a domain string first, so a signature made for one
//! purpose can never pass for another).

use serde::{Deserialize, Serialize};

/// Header naming the key a report is signed with (its id).
pub const KEY_HEADER: &str = "x-probe-key";
/// Header carrying the key's ed25519 signature of the report, base64.
pub const KEY_SIGNATURE_HEADER: &str = "x-probe-key-signature";
/// The enrolment route (GET: a nonce; POST: an enrolment).
pub const ENROL_PATH: &str = "/v1/enrol";
/// Largest enrolment accepted: a document is under 1 KB.
pub const ENROL_LIMIT: usize = 16 * 1024;
/// How long a nonce may wait for its enrolment.
pub const NONCE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The collector's answer to GET /v1/enrol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    /// Fresh and single use; opaque to the agent (base64url, at most 128 characters).
    pub nonce: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// The agent's POST /v1/enrol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolment {
    /// The instance identity document, exactly as IMDS served it.
    pub document: String,
    /// IMDS's `signature` of it (base64 RSA-SHA256).
    pub signature: String,
    /// The agent's ed25519 public key, base64.
    pub public_key: String,
    /// The nonce from the collector's challenge.
    pub nonce: String,
    /// The key's signature of [`enrol_message`], base64: proof the agent holds the key.
    pub proof: String,
}

/// The collector's answer to an accepted enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// The instance the key now speaks for.
    pub instance_id: String,
    /// The key's id.
    pub key_id: String,
}

/// What the proof of an enrolment signs.
#[must_use]
pub fn enrol_message(nonce: &str, document: &str) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, document.as_bytes());
    format!(
        "probe.enrol/v1\n{nonce}\n{}",
        crate::auth::hex(digest.as_ref())
    )
    .into_bytes()
}

/// What a report's signature signs: the body, exactly as sent.
#[must_use]
pub fn report_message(body: &[u8]) -> Vec<u8> {
    let mut m = b"probe.report/v1\n".to_vec();
    m.extend_from_slice(body);
    m
}
