//! The files an older collector kept its alerts in, moved into the store once: what each
//! cell was last told (`DATA/alerts/told.jsonl`, a line per message) and a folder of message
//! files per destination (`DATA/alerts/NAME/`, named by the same digest of its URL as the
//! store's outboxes). Each is renamed or removed only once the store has committed it; a
//! stop in between makes the next start import it again, and send those messages twice at
//! most.

use super::AlertError;
use super::rule::State;
use crate::collect::db::outbox::Outbox;
use crate::deliver::spool::{self, Spool};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(serde::Deserialize)]
struct Line {
    instance: String,
    target: String,
    #[serde(flatten)]
    told: State,
}

/// Imports `data/alerts` into the store, when an older collector left it.
///
/// # Errors
/// When a file cannot be read or set aside, or the store written.
pub fn import(data: &Path, db: &mut dyn Outbox) -> Result<(), AlertError> {
    let dir = data.join("alerts");
    let told = dir.join("told.jsonl");
    if let Some(cells) = read(&told).map_err(failed(&told))? {
        db.seed(&super::rows(&cells)).map_err(AlertError::Db)?;
        let kept = told.with_extension("jsonl.imported");
        std::fs::rename(&told, &kept).map_err(failed(&told))?;
        tracing::warn!(
            "imported {} into the store's alerts; it is kept as {}",
            told.display(),
            kept.display()
        );
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let folder = entry.path();
        let Some(name) = folder.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(folder.is_dir() && name.len() == 12 && name.bytes().all(|b| b.is_ascii_hexdigit())) {
            continue;
        }
        let outbox = Spool::new(folder.clone(), usize::MAX);
        let files = outbox.list();
        let mut bodies = Vec::with_capacity(files.len());
        for file in &files {
            let (body, _) = spool::read(file).map_err(failed(file))?;
            bodies.push(String::from_utf8_lossy(&body).into_owned());
        }
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        db.queue(name, &bodies).map_err(AlertError::Db)?;
        for file in &files {
            outbox.remove(file);
        }
        // Left in place when something else is in it.
        let _ = std::fs::remove_dir(&folder);
        if !files.is_empty() {
            tracing::warn!(
                "moved {} alert messages from {} into the store",
                files.len(),
                folder.display()
            );
        }
    }
    Ok(())
}

fn failed(path: &Path) -> impl FnOnce(std::io::Error) -> AlertError {
    let path = PathBuf::from(path);
    move |source| AlertError::Import { path, source }
}

/// Every cell's last told verdict in the log; `None` when there is none. A line that cannot
/// be read (the torn end of a crash) is skipped.
fn read(path: &Path) -> std::io::Result<Option<HashMap<(String, String), State>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut cells = HashMap::new();
    for line in std::io::BufReader::new(file).lines() {
        if let Ok(l) = serde_json::from_str::<Line>(&line?) {
            cells.insert((l.instance, l.target), l.told);
        }
    }
    Ok(Some(cells))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::db::Database;

    #[test]
    fn an_older_collectors_told_log_and_outbox_move_into_the_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let alerts = dir.path().join("alerts");
        let folder = alerts.join("0123456789ab");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            alerts.join("told.jsonl"),
            "{\"instance\":\"i-1\",\"target\":\"s3\",\"path\":\"public\",\"pass\":false}\n{torn",
        )
        .unwrap();
        let outbox = Spool::new(folder.clone(), 10);
        outbox
            .enqueue("000000000001-aa", b"{\"one\":1}", None)
            .unwrap();
        outbox
            .enqueue("000000000002-bb", b"{\"two\":2}", None)
            .unwrap();
        let database = Database::choose(dir.path(), None).unwrap();
        database.connect().unwrap();
        let mut db = database.outbox().unwrap();
        import(dir.path(), db.as_mut()).unwrap();
        let mut told = Vec::new();
        db.told(&mut |i, t, p, pass| told.push(format!("{i} {t} {p} {pass}")))
            .unwrap();
        assert_eq!(told, ["i-1 s3 public false"]);
        assert_eq!(db.waiting("0123456789ab").unwrap(), 2);
        let first = db.claim("0123456789ab", 1, 2).unwrap().unwrap();
        assert_eq!(first.1, "{\"one\":1}", "the oldest first");
        assert!(!folder.exists() && alerts.join("told.jsonl.imported").exists());
        // Once: a second start finds nothing more to import.
        import(dir.path(), db.as_mut()).unwrap();
        assert_eq!(db.waiting("0123456789ab").unwrap(), 2);
    }
}
