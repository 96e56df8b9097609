//! The upgrade from the report log (`reports.jsonl`, kept by collectors before the database):
//! its complete lines are stored in the database, a batch per transaction, then the log is
//! renamed `reports.jsonl.imported`. Stopped half way, the next start imports it again, and
//! the reports already stored are skipped by their ids.

use super::{DbError, Engine, Row};
use crate::collect::entry::{Entry, instance_key};
use std::io::BufRead;
use std::path::Path;

/// Reports per transaction.
const BATCH: usize = 2_000;

/// What an import came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Lines stored.
    pub stored: u64,
    /// Lines whose id was stored already.
    pub known: u64,
    /// Lines that are not a report (or a torn last line).
    pub skipped: u64,
}

/// Imports `data/reports.jsonl` when it is there; `None` when it is not.
///
/// # Errors
/// When the log cannot be read or renamed, or a transaction fails.
pub fn log(db: &mut dyn Engine, data: &Path) -> Result<Option<Imported>, DbError> {
    let path = data.join("reports.jsonl");
    let io = |source| DbError::Import {
        path: path.clone(),
        source,
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut out = Imported::default();
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        // A last line without its end was torn by a crash and never acknowledged.
        match Entry::stored(&line).ok().filter(|_| line.ends_with(b"\n")) {
            Some(entry) => batch.push(entry),
            None => out.skipped += 1,
        }
        if batch.len() == BATCH {
            store(db, &mut batch, &mut out)?;
        }
    }
    store(db, &mut batch, &mut out)?;
    std::fs::rename(&path, data.join("reports.jsonl.imported")).map_err(io)?;
    Ok(Some(out))
}

fn store(db: &mut dyn Engine, batch: &mut Vec<Entry>, out: &mut Imported) -> Result<(), DbError> {
    let keys: Vec<String> = batch.iter().map(|e| instance_key(&e.report)).collect();
    let rows: Vec<Row<'_>> = batch
        .iter()
        .zip(&keys)
        .map(|(e, k)| Row::of(e, k))
        .collect();
    for seq in db.insert(&rows)? {
        if seq.is_some() {
            out.stored += 1;
        } else {
            out.known += 1;
        }
    }
    batch.clear();
    Ok(())
}
