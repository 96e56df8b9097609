//! The collector's enrolled keys: one per instance, trusted on first use and kept in the
//! store's database ([`super::db::keys`]), committed before an enrolment is acknowledged.
//! Collectors sharing a database share the enrolments: each reads what changed every second,
//! and checks a report's key from memory. `probe collect forget i-...` changes the same
//! rows. A forgotten instance keeps the `pendingTime` it last enrolled with, so an old
//! document cannot enrol it again.
//!
//! A collector of an older probe kept them in `DATA/identities.json`: imported once, then
//! kept as `identities.json.imported`.

use super::db::keys::Keys;
pub use super::db::keys::Record;
use super::db::{Database, DbError, Healing};
use crate::identity::Document;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The older collectors' file in the data directory.
pub const FILE: &str = "identities.json";
/// How often a running collector reads the enrolments changed elsewhere (`forget`, or
/// another collector on the same database).
pub const REREAD: Duration = Duration::from_secs(1);

/// The older collectors' file.
#[derive(Debug, Default, Deserialize)]
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
    /// The key is enrolled for another instance: a copy of an agent's key (an image made
    /// from an enrolled instance).
    #[error(
        "key {key_id} is enrolled for {holder}, not {instance}: one instance per key (was the image made from {holder}, with its agent's identity.key?); delete identity.key in the spool on {instance} so its agent makes its own, or run `probe collect forget {holder}`"
    )]
    KeyInUse {
        /// The instance enrolling.
        instance: String,
        /// The instance the key is enrolled for.
        holder: String,
        /// The key.
        key_id: String,
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

/// A registry that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database.
    #[error("the enrolled keys in {what}: {source}")]
    Db {
        /// Which database.
        what: String,
        /// Why.
        source: DbError,
    },
    /// An older collector's file, to import.
    #[error("{}: {why}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong, with the fix.
        why: String,
    },
}

impl RegistryError {
    /// `database` failed, as `source` says.
    #[must_use]
    pub fn db(database: &Database, source: DbError) -> Self {
        Self::Db {
            what: database.to_string(),
            source,
        }
    }
}

/// The registry: a connection to the database, and the enrolments as last read.
pub struct Registry {
    database: Database,
    db: Mutex<Healing<dyn Keys>>,
    secret: Vec<u8>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, Record>,
    /// Key id -> instance id.
    by_key: BTreeMap<String, String>,
    /// The number of the last change read.
    version: i64,
}

impl State {
    fn apply(&mut self, version: i64, instance: String, record: Record) {
        if let Some(old) = self.instances.get(&instance).and_then(|r| r.key_id.clone()) {
            if self.by_key.get(&old) == Some(&instance) {
                self.by_key.remove(&old);
            }
        }
        if let Some(id) = &record.key_id {
            self.by_key.insert(id.clone(), instance.clone());
        }
        self.instances.insert(instance, record);
        self.version = self.version.max(version);
    }
}

impl Registry {
    /// Opens the registry in `database` (brought to this probe's version already), imports
    /// the file an older collector left in `data` when given, and reads every enrolment.
    /// Blocking: call it before serving, or on a blocking thread.
    ///
    /// # Errors
    /// A database that cannot be reached or read, or an older file that cannot be read.
    pub fn open(database: &Database, data: Option<&Path>) -> Result<Self, RegistryError> {
        use base64::Engine as _;
        let failed = |source| RegistryError::db(database, source);
        let mut db = database.keys().map_err(failed)?;
        let mut fresh = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh).map_err(
            |_| {
                failed(DbError::Query(
                    "the system has no randomness to give".into(),
                ))
            },
        )?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let secret = db.secret(&b64.encode(fresh)).map_err(failed)?;
        let secret = b64.decode(secret).map_err(|_| {
            failed(DbError::Query(
                "the stored nonce secret is not base64: delete the row of secrets named 'nonce'"
                    .into(),
            ))
        })?;
        let registry = Self {
            database: database.clone(),
            db: Mutex::new(Healing::new(db, database, Database::keys)),
            secret,
            state: Mutex::default(),
        };
        if let Some(data) = data {
            registry.import(&data.join(FILE))?;
        }
        registry.refresh()?;
        Ok(registry)
    }

    /// Whether other collectors may enrol keys in the same database.
    #[must_use]
    pub fn shared(&self) -> bool {
        self.database.shared()
    }

    /// The secret this registry's collectors make their nonces with.
    #[must_use]
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Reads the enrolments changed since the last reading. Blocking.
    ///
    /// # Errors
    /// When the database cannot be read: the enrolments read before stay.
    pub fn refresh(&self) -> Result<(), RegistryError> {
        let after = self.state().version;
        let mut changed = Vec::new();
        self.with(|db| db.changed(after, &mut |v, i, r| changed.push((v, i, r))))?;
        let mut state = self.state();
        for (version, instance, record) in changed {
            state.apply(version, instance, record);
        }
        Ok(())
    }

    /// Whether a key id is enrolled, as last read: never blocks, and copies nothing.
    #[must_use]
    pub fn knows(&self, key_id: &str) -> bool {
        self.state().by_key.contains_key(key_id)
    }

    /// The instance and key (raw bytes) a key id stands for, as last read: never blocks.
    #[must_use]
    pub fn lookup(&self, key_id: &str) -> Option<(String, Vec<u8>, Record)> {
        use base64::Engine as _;
        let state = self.state();
        let instance = state.by_key.get(key_id)?;
        let record = state.instances.get(instance)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(record.key.as_deref()?)
            .ok()?;
        Some((instance.clone(), key, record.clone()))
    }

    /// Enrols `key` (base64) for the document's instance, by the rules: a new instance, or the
    /// same key again, or any key after `forget`; never a document older than the last
    /// enrolment. Committed before it returns. Blocking.
    ///
    /// # Errors
    /// [`Conflict`] by the rules; [`RegistryError`] when the database cannot be written.
    pub fn enrol(
        &self,
        doc: &Document,
        key: &str,
        key_id: &str,
    ) -> Result<Result<(), Conflict>, RegistryError> {
        let started = doc.started().ok();
        let mut conflict = None;
        let mut decide = |stored: Option<&Record>, holder: Option<&str>| {
            if let Some(holder) = holder {
                conflict = Some(Conflict::KeyInUse {
                    instance: doc.instance_id.clone(),
                    holder: holder.to_string(),
                    key_id: key_id.to_string(),
                });
                return None;
            }
            if let Some(r) = stored {
                if started < Document::started_at(&r.pending_time) {
                    conflict = Some(Conflict::Older {
                        instance: doc.instance_id.clone(),
                        recorded: r.pending_time.clone(),
                        given: doc.pending_time.clone(),
                    });
                    return None;
                }
                if let (Some(k), Some(id)) = (&r.key, &r.key_id) {
                    if k != key {
                        conflict = Some(Conflict::SecondKey {
                            instance: doc.instance_id.clone(),
                            key_id: id.clone(),
                        });
                        return None;
                    }
                }
            }
            Some(Record {
                key: Some(key.to_string()),
                key_id: Some(key_id.to_string()),
                account_id: doc.account_id.clone(),
                region: doc.region.clone(),
                pending_time: doc.pending_time.clone(),
                enrolled_at: crate::auth::now(),
            })
        };
        self.with(|db| db.change(&doc.instance_id, Some(key_id), &mut decide))?;
        if let Some(conflict) = conflict {
            return Ok(Err(conflict));
        }
        self.refresh()?;
        Ok(Ok(()))
    }

    /// Forgets the key of `instance` (its pendingTime is kept). Returns whether it had one.
    /// Blocking.
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub fn forget(&self, instance: &str) -> Result<bool, RegistryError> {
        let mut decide = |stored: Option<&Record>, _: Option<&str>| {
            let r = stored.filter(|r| r.key.is_some())?;
            Some(Record {
                key: None,
                key_id: None,
                ..r.clone()
            })
        };
        let changed = self.with(|db| db.change(instance, None, &mut decide))?;
        self.refresh()?;
        Ok(changed.is_some())
    }

    /// Spends an enrolment's nonce, good until `expires_ms`: true the first time, on any
    /// collector sharing the database. Blocking.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn spend(&self, nonce: &str, expires_ms: i64) -> Result<bool, RegistryError> {
        let now = super::db::millis_of(std::time::SystemTime::now());
        self.with(|db| db.spend(nonce, expires_ms, now))
    }

    /// Every enrolment, for `forget` to list.
    #[must_use]
    pub fn instances(&self) -> BTreeMap<String, Record> {
        self.state().instances.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the connection, a new one when the old one was lost.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Keys) -> Result<T, DbError>,
    ) -> Result<T, RegistryError> {
        let failed = |source| RegistryError::db(&self.database, source);
        let mut db = self
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        db.with(|c| f(c)).map_err(failed)
    }

    /// Imports an older collector's file: each instance unless the database has it enrolled
    /// with the same or a later document. Then sets the file aside.
    fn import(&self, path: &Path) -> Result<(), RegistryError> {
        let file = |why: String| RegistryError::File {
            path: path.to_path_buf(),
            why,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(file(format!("cannot read it ({e})"))),
        };
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| {
            file(format!("not the enrolments probe writes ({e}); restore it from a backup, or move it away to enrol every instance anew"))
        })?;
        for (instance, record) in &saved.instances {
            let mut decide = |stored: Option<&Record>, _: Option<&str>| {
                let newer = stored.is_none_or(|r| {
                    Document::started_at(&r.pending_time)
                        < Document::started_at(&record.pending_time)
                });
                newer.then(|| record.clone())
            };
            self.with(|db| db.change(instance, None, &mut decide))?;
        }
        let kept = path.with_extension("json.imported");
        std::fs::rename(path, &kept)
            .and_then(|()| match path.parent() {
                Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
                None => Ok(()),
            })
            .map_err(|e| {
                file(format!(
                    "imported, but cannot set it aside as {} ({e}); fix the data directory's permissions",
                    kept.display()
                ))
            })?;
        eprintln!(
            "probe collect: imported {} enrolled keys from {} (kept as {})",
            saved.instances.len(),
            path.display(),
            kept.display()
        );
        Ok(())
    }
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

    /// A registry on the SQLite database in `dir`, migrated as the store would.
    fn open(dir: &Path) -> Registry {
        let database = Database::choose(dir, None).unwrap();
        drop(database.connect().unwrap());
        Registry::open(&database, Some(dir)).unwrap()
    }

    #[test]
    fn one_key_per_instance_and_never_an_older_document() {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path());
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
        // Kept across a restart, with the same secret for the nonces.
        let again = open(dir.path());
        assert_eq!(again.lookup("a").unwrap().0, "i-1");
        assert_eq!(again.secret(), reg.secret());
    }

    #[test]
    fn one_instance_per_key_until_its_holder_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path());
        assert_eq!(
            reg.enrol(&doc("i-1", "2026-12-01T09:00:00Z"), A, "a")
                .unwrap(),
            Ok(())
        );
        // An instance made from i-1's image, with its agent's key.
        let copy = doc("i-2", "2026-12-03T09:00:00Z");
        match reg.enrol(&copy, A, "a").unwrap() {
            Err(Conflict::KeyInUse {
                instance,
                holder,
                key_id,
            }) => {
                assert_eq!(
                    (instance.as_str(), holder.as_str(), key_id.as_str()),
                    ("i-2", "i-1", "a")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reg.lookup("a").unwrap().0,
            "i-1",
            "the holder keeps its key"
        );
        // Its own key is welcome; so is the copied one once its holder is forgotten.
        assert_eq!(reg.enrol(&copy, B, "b").unwrap(), Ok(()));
        assert!(reg.forget("i-1").unwrap());
        assert!(reg.forget("i-2").unwrap());
        assert_eq!(reg.enrol(&copy, A, "a").unwrap(), Ok(()));
        assert_eq!(reg.lookup("a").unwrap().0, "i-2");
    }

    #[test]
    fn forget_frees_the_instance_for_a_new_key_but_not_for_an_old_document() {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path());
        let t2 = doc("i-1", "2026-12-02T09:00:00Z");
        reg.enrol(&t2, A, "a").unwrap().unwrap();
        // `probe collect forget` is another process: another Registry on the same database.
        let cli = open(dir.path());
        assert!(cli.forget("i-1").unwrap());
        assert!(!cli.forget("i-1").unwrap(), "forgotten already");
        assert!(!cli.forget("i-2").unwrap());
        assert!(reg.lookup("a").is_some(), "not read yet");
        reg.refresh().unwrap();
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
        cli.refresh().unwrap();
        assert_eq!(cli.lookup("b").unwrap().0, "i-1", "and the other way");
    }

    #[test]
    fn a_nonce_is_spent_once_by_any_registry_on_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (one, other) = (open(dir.path()), open(dir.path()));
        let later = super::super::db::millis_of(std::time::SystemTime::now()) + 60_000;
        assert!(one.spend("n1", later).unwrap());
        assert!(!other.spend("n1", later).unwrap());
        assert!(other.spend("n2", later).unwrap());
        // An expired one is dropped at the next spend: the table does not grow for ever.
        assert!(one.spend("old", 1).unwrap());
        assert!(one.spend("n3", later).unwrap());
        assert!(one.spend("old", 1).unwrap(), "dropped, so new again");
    }

    #[test]
    fn an_older_collectors_file_is_imported_once_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let record = |key: &str, pending: &str| Record {
            key: Some(key.into()),
            key_id: Some(key.to_lowercase()),
            account_id: "123456789012".into(),
            region: "ap-northeast-2".into(),
            pending_time: pending.into(),
            enrolled_at: 1,
        };
        let text = serde_json::json!({"instances": {
            "i-1": record(A, "2026-12-01T09:00:00Z"),
            "i-2": record(B, "2026-12-01T09:00:00Z"),
        }});
        std::fs::write(&file, text.to_string()).unwrap();
        let reg = open(dir.path());
        assert_eq!(reg.instances().len(), 2);
        assert_eq!(reg.lookup(&A.to_lowercase()).unwrap().0, "i-1");
        assert!(!file.exists());
        assert!(dir.path().join("identities.json.imported").exists());
        // A newer enrolment in the database is not undone by a second file's older record.
        reg.enrol(&doc("i-2", "2026-12-03T09:00:00Z"), B, "c")
            .unwrap()
            .unwrap();
        std::fs::write(&file, text.to_string()).unwrap();
        let again = open(dir.path());
        assert_eq!(again.lookup("c").unwrap().0, "i-2");
        assert!(again.lookup(&B.to_lowercase()).is_none());

        std::fs::write(&file, "{not json").unwrap();
        let database = Database::choose(dir.path(), None).unwrap();
        let e = Registry::open(&database, Some(dir.path())).err().unwrap();
        assert!(e.to_string().contains("move it away"), "{e}");
    }
}
