//! The collector's enrolled keys: one per instance, trusted on first use and kept in
//! `DATA/identities.json`, written whole (synced, then renamed) before an enrolment is
//! acknowledged. `probe collect forget i-...` edits the same file under the same lock; a
//! running collector reads the change within a second. A forgotten instance keeps the
//! `pendingTime` it last enrolled with, so an old document cannot enrol it again.

use crate::identity::Document;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The file's name in the data directory.
pub const FILE: &str = "identities.json";
const LOCK: &str = "identities.lock";
/// How often a running collector looks for `forget`'s changes.
const REREAD: Duration = Duration::from_secs(1);

/// One instance's enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The key, base64 (raw ed25519); `None` once forgotten.
    pub key: Option<String>,
    /// Its id.
    pub key_id: Option<String>,
    /// From the signed document.
    pub account_id: String,
    /// From the signed document.
    pub region: String,
    /// The latest `pendingTime` enrolled with.
    pub pending_time: String,
    /// When it was enrolled, Unix seconds.
    pub enrolled_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    instances: BTreeMap<String, Record>,
}

/// Why an enrolment is refused by the rules of the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The document started before the one already enrolled: a copy of an old document.
    #[error(
        "{instance} enrolled with pendingTime {recorded}; this document says {given}: an old or replayed document is refused"
    )]
    Older {
        /// The instance.
        instance: String,
        /// The pendingTime on record.
        recorded: String,
        /// The document's.
        given: String,
    },
    /// Another key is enrolled for the instance.
    #[error(
        "{instance} is enrolled with another key ({key_id}): one key per instance; run `probe collect forget {instance}` if the agent really lost its key"
    )]
    SecondKey {
        /// The instance.
        instance: String,
        /// The key on record.
        key_id: String,
    },
}

/// The registry: the file, and what it said when last read.
pub struct Registry {
    path: PathBuf,
    lock: PathBuf,
    state: Mutex<State>,
}

struct State {
    saved: Saved,
    /// Key id -> instance id.
    by_key: BTreeMap<String, String>,
    modified: Option<Stamp>,
    checked: Instant,
}

/// What tells one version of the file from the next: every write renames a new file into
/// place (a new inode), and two writes can share a coarse mtime.
type Stamp = (u64, SystemTime);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.modified().ok()?))
}

/// A registry that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct RegistryError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong, with the fix.
    pub why: String,
}

impl Registry {
    /// Opens (or starts) the registry in `data`. Blocking: call it before serving, or on a
    /// blocking thread.
    ///
    /// # Errors
    /// A file that cannot be read or parsed.
    pub fn open(data: &Path) -> Result<Self, RegistryError> {
        let path = data.join(FILE);
        let (saved, modified) = read(&path)?;
        let by_key = index(&saved);
        Ok(Self {
            lock: data.join(LOCK),
            path,
            state: Mutex::new(State {
                saved,
                by_key,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// The instance and key (raw bytes) a key id stands for. Blocking at most once a second
    /// (a stat, and a read when `forget` changed the file).
    #[must_use]
    pub fn lookup(&self, key_id: &str) -> Option<(String, Vec<u8>, Record)> {
        use base64::Engine as _;
        self.reread_if_due();
        let state = self.state();
        let instance = state.by_key.get(key_id)?;
        let record = state.saved.instances.get(instance)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(record.key.as_deref()?)
            .ok()?;
        Some((instance.clone(), key, record.clone()))
    }

    /// Enrols `key` (base64) for the document's instance, by the rules: a new instance, or the
    /// same key again, or any key after `forget`; never a document older than the last
    /// enrolment. Written and synced before it returns. Blocking.
    ///
    /// # Errors
    /// [`Conflict`] by the rules; [`RegistryError`] when the file cannot be written.
    pub fn enrol(
        &self,
        doc: &Document,
        key: &str,
        key_id: &str,
    ) -> Result<Result<(), Conflict>, RegistryError> {
        let _lock = self.lock_file()?;
        // Under the lock, from the file: a `forget` made a moment ago counts.
        let (mut saved, _) = read(&self.path)?;
        let started = doc.started().ok();
        if let Some(r) = saved.instances.get(&doc.instance_id) {
            let recorded = Document::started_at(&r.pending_time);
            if started < recorded {
                return Ok(Err(Conflict::Older {
                    instance: doc.instance_id.clone(),
                    recorded: r.pending_time.clone(),
                    given: doc.pending_time.clone(),
                }));
            }
            if let (Some(k), Some(id)) = (&r.key, &r.key_id) {
                if k != key {
                    return Ok(Err(Conflict::SecondKey {
                        instance: doc.instance_id.clone(),
                        key_id: id.clone(),
                    }));
                }
            }
        }
        saved.instances.insert(
            doc.instance_id.clone(),
            Record {
                key: Some(key.to_string()),
                key_id: Some(key_id.to_string()),
                account_id: doc.account_id.clone(),
                region: doc.region.clone(),
                pending_time: doc.pending_time.clone(),
                enrolled_at: crate::auth::now(),
            },
        );
        self.write(saved)?;
        Ok(Ok(()))
    }

    /// Forgets the key of `instance` (its pendingTime is kept). Returns whether it had one.
    /// Blocking.
    ///
    /// # Errors
    /// When the file cannot be read or written.
    pub fn forget(&self, instance: &str) -> Result<bool, RegistryError> {
        let _lock = self.lock_file()?;
        let (mut saved, _) = read(&self.path)?;
        let Some(record) = saved.instances.get_mut(instance) else {
            return Ok(false);
        };
        let had = record.key.take().is_some();
        record.key_id = None;
        self.write(saved)?;
        Ok(had)
    }

    /// Every enrolment, for `forget` to list.
    #[must_use]
    pub fn instances(&self) -> BTreeMap<String, Record> {
        self.state().saved.instances.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, saved: Saved) -> Result<(), RegistryError> {
        let err = |e: std::io::Error| RegistryError {
            path: self.path.clone(),
            why: format!(
                "cannot write it ({e}); free space or fix the data directory's permissions"
            ),
        };
        let text = serde_json::to_vec_pretty(&saved).map_err(|e| err(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        std::io::Write::write_all(&mut file, &text).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        let modified = stamp(&self.path);
        let mut state = self.state();
        state.by_key = index(&saved);
        state.saved = saved;
        state.modified = modified;
        Ok(())
    }

    fn reread_if_due(&self) {
        {
            let mut state = self.state();
            if state.checked.elapsed() < REREAD {
                return;
            }
            state.checked = Instant::now();
        }
        let modified = stamp(&self.path);
        if modified == self.state().modified {
            return;
        }
        match read(&self.path) {
            Ok((saved, modified)) => {
                let mut state = self.state();
                state.by_key = index(&saved);
                state.saved = saved;
                state.modified = modified;
            }
            Err(e) => tracing::warn!("{e}: keeping the enrolments read before"),
        }
    }

    fn lock_file(&self) -> Result<std::fs::File, RegistryError> {
        let err = |e: std::io::Error| RegistryError {
            path: self.lock.clone(),
            why: format!("cannot lock it ({e})"),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(err)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| err(e.into()))?;
        Ok(file)
    }
}

fn read(path: &Path) -> Result<(Saved, Option<Stamp>), RegistryError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let saved = serde_json::from_slice(&bytes).map_err(|e| RegistryError {
                path: path.to_path_buf(),
                why: format!("not the enrolments probe writes ({e}); restore it from a backup, or move it away to enrol every instance anew"),
            })?;
            Ok((saved, stamp(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Saved::default(), None)),
        Err(e) => Err(RegistryError {
            path: path.to_path_buf(),
            why: format!("cannot read it ({e})"),
        }),
    }
}

fn index(saved: &Saved) -> BTreeMap<String, String> {
    saved
        .instances
        .iter()
        .filter_map(|(i, r)| Some((r.key_id.clone()?, i.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys as the registry keeps them: base64.
    const A: &str = "QUFBQQ==";
    const B: &str = "QkJCQg==";

    fn doc(instance: &str, pending: &str) -> Document {
        Document {
            account_id: "123456789012".into(),
            region: "ap-northeast-2".into(),
            instance_id: instance.into(),
            pending_time: pending.into(),
            private_ip: None,
        }
    }

    #[test]
    fn one_key_per_instance_and_never_an_older_document() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let t1 = doc("i-1", "2026-12-01T09:00:00Z");
        let t2 = doc("i-1", "2026-12-02T09:00:00Z");
        assert_eq!(reg.enrol(&t1, A, "a").unwrap(), Ok(()));
        assert_eq!(
            reg.enrol(&t1, A, "a").unwrap(),
            Ok(()),
            "the same key again"
        );
        assert!(matches!(
            reg.enrol(&t1, B, "b").unwrap(),
            Err(Conflict::SecondKey { .. })
        ));
        assert_eq!(reg.enrol(&t2, A, "a").unwrap(), Ok(()), "a stop and start");
        assert!(matches!(
            reg.enrol(&t1, A, "a").unwrap(),
            Err(Conflict::Older { .. })
        ));
        assert!(reg.lookup("a").is_some());
        assert!(reg.lookup("b").is_none());
        // Kept across a restart.
        let again = Registry::open(dir.path()).unwrap();
        assert_eq!(again.lookup("a").unwrap().0, "i-1");
    }

    #[test]
    fn forget_frees_the_instance_for_a_new_key_but_not_for_an_old_document() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let t2 = doc("i-1", "2026-12-02T09:00:00Z");
        reg.enrol(&t2, A, "a").unwrap().unwrap();
        // `probe collect forget` is another process: another Registry on the same file.
        let cli = Registry::open(dir.path()).unwrap();
        assert!(cli.forget("i-1").unwrap());
        assert!(!cli.forget("i-2").unwrap());
        std::thread::sleep(REREAD + Duration::from_millis(50));
        assert!(
            reg.lookup("a").is_none(),
            "the running collector read the change"
        );
        assert!(matches!(
            reg.enrol(&doc("i-1", "2026-12-01T09:00:00Z"), B, "b")
                .unwrap(),
            Err(Conflict::Older { .. })
        ));
        assert_eq!(reg.enrol(&t2, B, "b").unwrap(), Ok(()));
        assert_eq!(reg.lookup("b").unwrap().0, "i-1");
    }
}
