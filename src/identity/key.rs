//! The agent's ed25519 key: made on first run, kept 0600 beside the spool, never sent but as
//! its public half. Whoever can read the file can sign as this instance, so a file others can
//! read is refused, not used.

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::path::{Path, PathBuf};

/// The key file's name inside the agent's spool directory.
pub const FILE: &str = "identity.key";

/// The agent's key pair.
pub struct AgentKey {
    pair: Ed25519KeyPair,
}

/// A key that cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("identity key {}: {source}; give the agent a writable --spool", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read it.
    #[error("identity key {}: readable by others (mode {mode:o}); chmod 600 it, or delete it to make a new one (the collector then needs `probe collect forget`)", path.display())]
    Open {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Not a key probe wrote.
    #[error("identity key {}: not an ed25519 key probe wrote; delete it to make a new one (the collector then needs `probe collect forget`)", .0.display())]
    Invalid(PathBuf),
}

impl AgentKey {
    /// The key in `path`, made there (0600) when there is none.
    ///
    /// # Errors
    /// A file that cannot be read, written or trusted.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(pkcs8) => {
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(KeyError::Open {
                        path: path.to_path_buf(),
                        mode: mode & 0o777,
                    });
                }
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                    .map_err(|_| KeyError::Invalid(path.to_path_buf()))?;
                Ok(Self { pair })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| io(std::io::Error::other("no randomness")))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                // Made 0600 from the start and synced: a key that was enrolled is never lost
                // to a crash, which would lock the instance out until `forget`.
                let tmp = path.with_extension("key.tmp");
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                std::io::Write::write_all(&mut file, pkcs8.as_ref()).map_err(io)?;
                file.sync_all().map_err(io)?;
                std::fs::rename(&tmp, path).map_err(io)?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .map_err(|_| KeyError::Invalid(path.to_path_buf()))?;
                Ok(Self { pair })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key, base64.
    #[must_use]
    pub fn public(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The public key's id, as the collector indexes it.
    #[must_use]
    pub fn id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }

    /// The signature of `message`, base64.
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

/// A public key's id: the first 16 bytes of its SHA-256, hex.
#[must_use]
pub fn key_id(public: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    crate::auth::hex(&digest.as_ref()[..16])
}

/// Whether `signature` (base64) is `public`'s (raw 32 bytes) over `message`.
#[must_use]
pub fn verify(public: &[u8], message: &[u8], signature: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .is_ok_and(|sig| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
                .verify(message, &sig)
                .is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_signs() {
        use base64::Engine as _;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let key = AgentKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = AgentKey::load_or_create(&path).unwrap();
        assert_eq!(key.public(), again.public(), "kept, not remade");
        let public = base64::engine::general_purpose::STANDARD
            .decode(key.public())
            .unwrap();
        assert!(verify(&public, b"m", &key.sign(b"m")));
        assert!(!verify(&public, b"n", &key.sign(b"m")));
        assert_eq!(key.id().len(), 32);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AgentKey::load_or_create(&path).err().unwrap();
        assert!(
            e.to_string().contains("readable by others (mode 644)"),
            "{e}"
        );
        std::fs::write(&path, b"junk").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            AgentKey::load_or_create(&path),
            Err(KeyError::Invalid(_))
        ));
    }
}
