//! Enrolment nonces any collector sharing the store can check, so that an agent behind a load
//! balancer may ask one collector for its nonce and enrol with another. A nonce carries its
//! expiry and random bytes, with an HMAC over both by the secret the collectors share in
//! their database: giving one out keeps nothing, so a flood of GETs costs no memory and no
//! write. Spending one is the database's (`enrol_spent`), once, on whichever collector.

use base64::Engine as _;
use ring::hmac;

const RANDOM: usize = 16;
const STAMP: usize = 8;
const TAG: usize = 32;
const LEN: usize = STAMP + RANDOM + TAG;

/// Makes and opens nonces with the collectors' secret.
pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    /// Nonces by `secret`.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A fresh nonce, good until `expires_ms` (milliseconds since 1970).
    ///
    /// # Panics
    /// When the system has no randomness to give, as ring's own key generation would.
    #[must_use]
    pub fn make(&self, expires_ms: i64) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.extend_from_slice(&expires_ms.to_be_bytes());
        let mut random = [0u8; RANDOM];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .expect("the system has randomness");
        bytes.extend_from_slice(&random);
        let tag = hmac::sign(&self.key, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// When `nonce` expires, if these collectors made it and it has not expired by `now_ms`.
    #[must_use]
    pub fn open(&self, nonce: &str, now_ms: i64) -> Option<i64> {
        // Bounded before it is decoded: a nonce is 75 characters.
        if nonce.len() > LEN * 2 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .filter(|b| b.len() == LEN)?;
        let (signed, tag) = bytes.split_at(STAMP + RANDOM);
        hmac::verify(&self.key, signed, tag).ok()?;
        let expires = i64::from_be_bytes(signed[..STAMP].try_into().ok()?);
        (now_ms < expires).then_some(expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_opens_with_its_secret_until_it_expires() {
        let nonces = Nonces::new(b"one secret");
        let n = nonces.make(2_000);
        assert_eq!(nonces.open(&n, 1_000), Some(2_000));
        assert_eq!(
            Nonces::new(b"one secret").open(&n, 1_000),
            Some(2_000),
            "another collector with the same secret"
        );
        assert_eq!(nonces.open(&n, 2_000), None, "expired");
        assert_eq!(Nonces::new(b"another").open(&n, 1_000), None);
        assert_ne!(nonces.make(2_000), n, "random");
        // Its expiry cannot be moved: the tag covers it.
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&n)
            .unwrap();
        bytes[STAMP - 1] ^= 0xff;
        let moved = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(nonces.open(&moved, 1_000), None);
        for junk in ["", "made-up", "%%%", &"A".repeat(10_000)] {
            assert_eq!(nonces.open(junk, 1_000), None, "{junk:.20}");
        }
    }
}
