//! The shared token: the agent signs each report with HMAC-SHA256 over a timestamp and the
//! body; the collector accepts a signature only within a few minutes of its timestamp, so a
//! captured request cannot be replayed later (and within that window a replay carries a
//! report id already stored, which stores nothing).

use ring::hmac;
use std::path::{Path, PathBuf};

/// Header carrying the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-probe-timestamp";
/// Header carrying the hex HMAC-SHA256 of `"<timestamp>\n<body>"`.
pub const SIGNATURE_HEADER: &str = "x-probe-signature";
/// How far a timestamp may be from the collector's clock.
pub const MAX_SKEW_SECS: u64 = 300;
/// Shortest token accepted: a guessable token protects nothing.
const MIN_LEN: usize = 16;

/// Why a request's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature or timestamp header.
    #[error("missing {0} header: sign the request with the shared token")]
    Missing(&'static str),
    /// The timestamp is not a number.
    #[error("malformed {TIMESTAMP_HEADER} header")]
    Malformed,
    /// The timestamp is too old or too far ahead.
    #[error(
        "timestamp is {0} s away from the collector's clock (limit {MAX_SKEW_SECS} s): a replay, or a clock to fix"
    )]
    Stale(u64),
    /// The signature does not match.
    #[error("signature does not match: the token differs from the collector's")]
    BadSignature,
}

/// Bits of entropy a token should carry at least, as `head -c 32 /dev/urandom | base64`.
pub const STRONG_BITS: f64 = 256.0;

/// What makes a token file weak: readable by others, or too little entropy for its
/// alphabet (hex carries 4 bits a character, base64 6, other text about 6.5).
#[must_use]
pub fn weaknesses(path: &Path, token: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            out.push(format!(
                "readable by others (mode {:o}): chmod 600 {}",
                mode & 0o777,
                path.display()
            ));
        }
    }
    let per_char: f64 = if token.bytes().all(|b| b.is_ascii_hexdigit()) {
        4.0
    } else if token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b))
    {
        6.0
    } else {
        6.5
    };
    #[expect(
        clippy::cast_precision_loss,
        reason = "a token is a few dozen characters"
    )]
    let bits = token.len() as f64 * per_char;
    if bits < STRONG_BITS {
        out.push(format!(
            "about {bits:.0} bits of entropy, under {STRONG_BITS:.0}: make it with `head -c 32 /dev/urandom | base64`"
        ));
    }
    out
}

/// A loaded shared token.
pub struct Token(hmac::Key);

/// A token that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error("cannot read the token file {}: {source}; create it with `head -c 32 /dev/urandom | base64 > {}`", path.display(), path.display())]
    Unreadable {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is too short to be a secret.
    #[error(
        "the token is shorter than {MIN_LEN} characters; use `head -c 32 /dev/urandom | base64`"
    )]
    Short,
    /// The file holds a token too short to be a secret.
    #[error("token file {}: the token is shorter than {MIN_LEN} characters; use `head -c 32 /dev/urandom | base64`", .0.display())]
    ShortFile(PathBuf),
    /// The file holds white space or control characters inside the token, or more than one
    /// line: not a token as `head -c 32 /dev/urandom | base64` writes it.
    #[error("token file {}: the token has white space or control characters inside it; write one line, as `head -c 32 /dev/urandom | base64` does", .0.display())]
    Malformed(PathBuf),
}

/// Reads a secret (the shared token, the read token) from a file: surrounding white space
/// ignored, at least 16 characters, none of them white space or control characters, with a
/// warning on stderr when the file is readable by others or the token weak. Every command
/// reads secrets through this one rule, so a token `probe userdata` embeds is one the agent
/// and the collector accept.
///
/// # Errors
/// A one-line message naming the file and the fix.
pub fn read_secret(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TokenError::Malformed(path.to_path_buf()));
    }
    if token.len() < MIN_LEN {
        return Err(TokenError::ShortFile(path.to_path_buf()));
    }
    for warning in weaknesses(path, token) {
        eprintln!("probe: warning: token file {}: {warning}", path.display());
    }
    Ok(token.to_string())
}

impl Token {
    /// Reads the token from a file by [`read_secret`]'s rule.
    ///
    /// # Errors
    /// A one-line message naming the file and the fix.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        Self::new(&read_secret(path)?)
    }

    /// A token from its text.
    ///
    /// # Errors
    /// When it is shorter than 16 characters.
    pub fn new(text: &str) -> Result<Self, TokenError> {
        if text.len() < MIN_LEN {
            return Err(TokenError::Short);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes())))
    }

    /// The signature of `body` at `timestamp`, hex.
    #[must_use]
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b"\n");
        ctx.update(body);
        hex(ctx.sign().as_ref())
    }

    /// What the headers alone can tell, before any body is read: both are there, the
    /// timestamp is fresh, the signature is hex of the right length. Returns the timestamp
    /// and the signature.
    ///
    /// # Errors
    /// What is wrong with the headers.
    pub fn precheck<'a>(
        timestamp: Option<&str>,
        signature: Option<&'a str>,
        now: u64,
    ) -> Result<(u64, &'a str), AuthError> {
        let timestamp = timestamp.ok_or(AuthError::Missing(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
        let ts: u64 = timestamp.trim().parse().map_err(|_| AuthError::Malformed)?;
        let skew = now.abs_diff(ts);
        if skew > MAX_SKEW_SECS {
            return Err(AuthError::Stale(skew));
        }
        if signature.trim().len() != 64 {
            return Err(AuthError::BadSignature);
        }
        Ok((ts, signature))
    }

    /// Checks a request's headers against its body at time `now` (Unix seconds).
    ///
    /// # Errors
    /// What is wrong with the headers.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<(), AuthError> {
        let (ts, signature) = Self::precheck(timestamp, signature, now)?;
        let given = unhex(signature.trim()).ok_or(AuthError::BadSignature)?;
        let mut message = ts.to_string().into_bytes();
        message.push(b'\n');
        message.extend_from_slice(body);
        // ring compares in constant time.
        hmac::verify(&self.0, &message, &given).map_err(|_| AuthError::BadSignature)
    }
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weak_or_open_token_file_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let strong = "q8Yl2V4m0s7mJ3n1lUe0Kx6m0d5a9sQe2b8T1uVw3Zk=";
        std::fs::write(&path, strong).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(weaknesses(&path, strong).is_empty());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = weaknesses(&path, "0123456789abcdef0123456789abcdef");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("readable by others (mode 644)"));
        assert!(w[1].contains("about 128 bits"));
    }

    #[test]
    fn signatures_verify_only_with_the_same_token_body_and_a_fresh_timestamp() {
        let token = Token::new("0123456789abcdef0123").unwrap();
        let sig = token.sign(1000, b"{}");
        assert_eq!(token.verify(Some("1000"), Some(&sig), b"{}", 1100), Ok(()));
        assert_eq!(
            token.verify(Some("1000"), Some(&sig), b"{ }", 1100),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            token.verify(Some("1001"), Some(&sig), b"{}", 1100),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            token.verify(Some("1000"), Some(&sig), b"{}", 1000 + MAX_SKEW_SECS + 1),
            Err(AuthError::Stale(MAX_SKEW_SECS + 1))
        );
        assert_eq!(
            token.verify(None, Some(&sig), b"{}", 1000),
            Err(AuthError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            token.verify(Some("x"), Some(&sig), b"{}", 1000),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            token.verify(Some("1000"), Some("zz"), b"{}", 1000),
            Err(AuthError::BadSignature)
        );
        let other = Token::new("another-token-0123456").unwrap();
        assert_eq!(
            other.verify(Some("1000"), Some(&sig), b"{}", 1000),
            Err(AuthError::BadSignature)
        );
        assert!(Token::new("short").is_err());
    }
}
