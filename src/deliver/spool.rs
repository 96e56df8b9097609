//! The spool's files: one report a file (`MILLIS-ID.json`, oldest first by name), its agent's
//! proof beside it for a relay, written whole and synced before it counts. Every function
//! here blocks on the file system; the delivery calls them from a blocking thread.

use super::{DEAD, Proof, SpoolError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The sidecar of a spooled report that carries its agent's proof (a relay's queue).
const PROOF: &str = "proof";

/// A spool folder and the most reports it keeps. Clones share the count of what it holds.
#[derive(Debug, Clone)]
pub struct Spool {
    /// The folder.
    pub dir: PathBuf,
    /// Reports kept at most.
    pub limit: usize,
    /// At the limit, refuse the new report rather than drop the oldest: a relay's queue
    /// holds reports it acknowledged to others, which must not be dropped.
    pub refuse_when_full: bool,
    /// Reports held, counted from the folder once, then kept as they come and go: a relay
    /// with 100,000 waiting does not list them for every report it takes.
    held: Arc<Mutex<Option<usize>>>,
}

impl Spool {
    /// The spool in `dir`, keeping at most `limit` reports (dropping the oldest past it).
    #[must_use]
    pub fn new(dir: PathBuf, limit: usize) -> Self {
        Self {
            dir,
            limit,
            refuse_when_full: false,
            held: Arc::default(),
        }
    }

    /// Reports held now.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.held(0)
    }

    /// Reports held now; `change` added first.
    fn held(&self, change: isize) -> usize {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = held.get_or_insert_with(|| self.list().len());
        *n = n.saturating_add_signed(change);
        *n
    }

    /// Adds the report `body` (whose id is `id`), with its proof when given; returns how many
    /// of the oldest had to go to stay within the limit.
    ///
    /// # Errors
    /// When the report cannot be written whole and synced: nothing of it is left to send.
    pub fn enqueue(
        &self,
        id: &str,
        body: &[u8],
        proof: Option<&Proof>,
    ) -> Result<usize, SpoolError> {
        let failed = |source| SpoolError {
            path: self.dir.clone(),
            source,
        };
        // Counted before the write, so a first count does not see the new report twice.
        let held = self.held(0);
        if self.refuse_when_full && held >= self.limit {
            return Err(failed(std::io::Error::other(format!(
                "the queue holds {} reports, its limit, until the collector takes them",
                self.limit
            ))));
        }
        self.write(id, body, proof).map_err(failed)?;
        if self.held(1) > self.limit {
            return Ok(self.trim());
        }
        Ok(0)
    }

    fn write(&self, id: &str, body: &[u8], proof: Option<&Proof>) -> std::io::Result<()> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("{millis:015}-{id}.json");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let sidecar = self.dir.join(&name).with_extension(PROOF);
        // Written whole and synced, then renamed and the directory synced: neither a crash
        // nor a power cut leaves half a report to send or loses one that was acknowledged.
        let write = || -> std::io::Result<()> {
            // The proof first: a spooled body is never without the proof it came with.
            if let Some(proof) = proof {
                let mut file = std::fs::File::create(&sidecar)?;
                std::io::Write::write_all(&mut file, &serde_json::to_vec(proof)?)?;
                file.sync_data()?;
            }
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, body)?;
            file.sync_data()?;
            std::fs::rename(&tmp, self.dir.join(&name))?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().inspect_err(|_| {
            // A failed write (a full disk, no free inode) leaves nothing half made behind.
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&sidecar);
        })
    }

    /// Spooled reports, oldest first: only files probe wrote, by their name
    /// (`MILLIS-ID.json`). Anything else in the folder is left alone, never sent or removed.
    #[must_use]
    pub fn list(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.path())
                    .filter(|p| spooled_id(p).is_some())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Keeps the spool within its limit by removing the oldest; returns how many went.
    fn trim(&self) -> usize {
        let files = self.list();
        let extra = files.len().saturating_sub(self.limit);
        for path in files.iter().take(extra) {
            remove_files(path);
        }
        *self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(files.len() - extra);
        extra
    }

    /// Removes a sent or refused report and its proof.
    pub fn remove(&self, path: &Path) {
        if remove_files(path) {
            self.held(-1);
        }
    }

    /// Moves a report and its proof to the dead-letter folder; returns that folder.
    ///
    /// # Errors
    /// When the report cannot be moved.
    pub fn bury(&self, path: &Path) -> std::io::Result<PathBuf> {
        let dead = self.dir.join(DEAD);
        std::fs::create_dir_all(&dead)?;
        std::fs::rename(path, dead.join(path.file_name().unwrap_or_default()))?;
        self.held(-1);
        let proof = path.with_extension(PROOF);
        if proof.exists() {
            let _ = std::fs::rename(&proof, dead.join(proof.file_name().unwrap_or_default()));
        }
        Ok(dead)
    }
}

/// A spooled report's body and, for a relay, the proof its agent gave.
///
/// # Errors
/// When the body cannot be read.
pub fn read(path: &Path) -> std::io::Result<(Vec<u8>, Option<Proof>)> {
    let body = std::fs::read(path)?;
    let proof = std::fs::read(path.with_extension(PROOF))
        .ok()
        .and_then(|b| serde_json::from_slice::<Proof>(&b).ok());
    Ok((body, proof))
}

/// Removes a spooled report and its proof; true when the report was there.
fn remove_files(path: &Path) -> bool {
    let removed = std::fs::remove_file(path).is_ok();
    let _ = std::fs::remove_file(path.with_extension(PROOF));
    removed
}

/// The report id in a spool file's name (`MILLIS-ID.json`, as [`Spool::enqueue`] writes it).
#[must_use]
pub fn spooled_id(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?.strip_suffix(".json")?;
    let (millis, id) = name.split_once('-')?;
    let ours = millis.len() == 15
        && millis.bytes().all(|b| b.is_ascii_digit())
        && !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ours.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_follows_what_comes_and_goes_and_a_full_queue_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = Spool::new(dir.path().to_path_buf(), 3);
        queue.refuse_when_full = true;
        for id in ["a", "b", "c"] {
            assert_eq!(queue.enqueue(id, b"{}", None).unwrap(), 0);
        }
        let full = queue.enqueue("d", b"{}", None).unwrap_err();
        assert!(full.to_string().contains("its limit"), "{full}");
        let oldest = queue.list()[0].clone();
        queue.clone().remove(&oldest);
        assert_eq!(queue.enqueue("d", b"{}", None).unwrap(), 0);
        assert_eq!(queue.list().len(), 3);

        // An agent's spool, counted from what an earlier run left, drops the oldest.
        let spool = Spool::new(dir.path().to_path_buf(), 3);
        assert_eq!(spool.enqueue("e", b"{}", None).unwrap(), 1);
        assert_eq!(spool.list().len(), 3);
        assert!(spool.list().iter().all(|p| spooled_id(p) != Some("b")));
    }
}
