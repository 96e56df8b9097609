//! The instance identities' part of the store: each instance's enrolled key (`identities`),
//! the enrolment nonces spent (`enrol_spent`) and the secret nonces are made with
//! (`secrets`), so that every collector sharing the database accepts what any of them gave
//! or enrolled, and none keeps them to itself.
//!
//! Every change to `identities` takes the next number of the `identities` counter first: that
//! row's lock orders the changes, so a collector reads what changed since the number it last
//! saw and misses none.

use super::DbError;
use super::postgres::Postgres;
use super::sqlite::Sqlite;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

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

/// What the identities keep in the database; one connection.
pub trait Keys: super::Connection {
    /// The secret nonces are made with: the one stored, else `fresh`, stored first.
    ///
    /// # Errors
    /// When the query fails.
    fn secret(&mut self, fresh: &str) -> Result<String, DbError>;

    /// Spends `nonce` (good until `expires_ms`): true the first time, false once spent. The
    /// nonces expired by `now_ms` are dropped.
    ///
    /// # Errors
    /// When the transaction fails.
    fn spend(&mut self, nonce: &str, expires_ms: i64, now_ms: i64) -> Result<bool, DbError>;

    /// Visits the enrolments changed after change number `after`, in the order changed, with
    /// their numbers.
    ///
    /// # Errors
    /// When the query fails.
    fn changed(
        &mut self,
        after: i64,
        visit: &mut dyn FnMut(i64, String, Record),
    ) -> Result<(), DbError>;

    /// Changes the enrolment of `instance` to what `decide` makes of the one stored and of
    /// the other instance that holds `key_id`, if any (nothing when it gives `None`), in one
    /// transaction that no other change interleaves. Gives the change's number.
    ///
    /// # Errors
    /// When the transaction fails: nothing was changed.
    fn change(
        &mut self,
        instance: &str,
        key_id: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<Option<i64>, DbError>;
}

/// What a change makes of the enrolment stored and of the other instance that holds the key.
pub type Decide<'a> = dyn FnMut(Option<&Record>, Option<&str>) -> Option<Record> + 'a;

const SECRET_PUT: &str =
    "INSERT INTO secrets (name, value) VALUES ('nonce', $1) ON CONFLICT (name) DO NOTHING";
const SECRET_GET: &str = "SELECT value FROM secrets WHERE name = 'nonce'";
const EXPIRED: &str = "DELETE FROM enrol_spent WHERE expires_ms < $1";
const SPEND: &str = "INSERT INTO enrol_spent (nonce, expires_ms) VALUES ($1, $2)
    ON CONFLICT (nonce) DO NOTHING";
const CHANGED: &str = "SELECT version, instance, key, key_id, account_id, region, pending_time,
    enrolled_at FROM identities WHERE version > $1 ORDER BY version";
/// Taken first in a change: the counter's row lock orders the changes.
const NEXT: &str =
    "UPDATE counters SET value = value + 1 WHERE name = 'identities' RETURNING value";
const ONE: &str = "SELECT key, key_id, account_id, region, pending_time, enrolled_at
    FROM identities WHERE instance = $1";
const HOLDER: &str = "SELECT instance FROM identities WHERE key_id = $1 AND instance <> $2 LIMIT 1";
const PUT: &str = "INSERT INTO identities
    (instance, key, key_id, account_id, region, pending_time, enrolled_at, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (instance) DO UPDATE SET key = excluded.key, key_id = excluded.key_id,
    account_id = excluded.account_id, region = excluded.region,
    pending_time = excluded.pending_time, enrolled_at = excluded.enrolled_at,
    version = excluded.version";

fn seconds(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

fn record(
    key: Option<String>,
    key_id: Option<String>,
    (account_id, region, pending_time): (String, String, String),
    enrolled_at: i64,
) -> Record {
    Record {
        key,
        key_id,
        account_id,
        region,
        pending_time,
        enrolled_at: u64::try_from(enrolled_at).unwrap_or(0),
    }
}

impl Keys for Sqlite {
    fn secret(&mut self, fresh: &str) -> Result<String, DbError> {
        self.conn.execute(SECRET_PUT, params![fresh])?;
        Ok(self.conn.query_row(SECRET_GET, [], |r| r.get(0))?)
    }

    fn spend(&mut self, nonce: &str, expires_ms: i64, now_ms: i64) -> Result<bool, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(EXPIRED, params![now_ms])?;
        let fresh = tx.execute(SPEND, params![nonce, expires_ms])? == 1;
        tx.commit()?;
        Ok(fresh)
    }

    fn changed(
        &mut self,
        after: i64,
        visit: &mut dyn FnMut(i64, String, Record),
    ) -> Result<(), DbError> {
        let mut q = self.conn.prepare_cached(CHANGED)?;
        let mut rows = q.query(params![after])?;
        while let Some(r) = rows.next()? {
            let found = record(
                r.get(2)?,
                r.get(3)?,
                (r.get(4)?, r.get(5)?, r.get(6)?),
                r.get(7)?,
            );
            visit(r.get(0)?, r.get(1)?, found);
        }
        Ok(())
    }

    fn change(
        &mut self,
        instance: &str,
        key_id: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<Option<i64>, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let holder: Option<String> = match key_id {
            Some(id) => tx
                .query_row(HOLDER, params![id, instance], |r| r.get(0))
                .optional()?,
            None => None,
        };
        let stored = tx
            .query_row(ONE, params![instance], |r| {
                Ok(record(
                    r.get(0)?,
                    r.get(1)?,
                    (r.get(2)?, r.get(3)?, r.get(4)?),
                    r.get(5)?,
                ))
            })
            .optional()?;
        let Some(new) = decide(stored.as_ref(), holder.as_deref()) else {
            return Ok(None);
        };
        let version: i64 = tx.query_row(NEXT, [], |r| r.get(0))?;
        tx.execute(
            PUT,
            params![
                instance,
                new.key,
                new.key_id,
                new.account_id,
                new.region,
                new.pending_time,
                seconds(new.enrolled_at),
                version
            ],
        )?;
        tx.commit()?;
        Ok(Some(version))
    }
}

impl Keys for Postgres {
    fn secret(&mut self, fresh: &str) -> Result<String, DbError> {
        self.client.execute(SECRET_PUT, &[&fresh])?;
        Ok(self.client.query_one(SECRET_GET, &[])?.get(0))
    }

    fn spend(&mut self, nonce: &str, expires_ms: i64, now_ms: i64) -> Result<bool, DbError> {
        let mut tx = self.client.transaction()?;
        tx.execute(EXPIRED, &[&now_ms])?;
        let fresh = tx.execute(SPEND, &[&nonce, &expires_ms])? == 1;
        tx.commit()?;
        Ok(fresh)
    }

    fn changed(
        &mut self,
        after: i64,
        visit: &mut dyn FnMut(i64, String, Record),
    ) -> Result<(), DbError> {
        for r in &self.client.query(CHANGED, &[&after])? {
            let found = record(r.get(2), r.get(3), (r.get(4), r.get(5), r.get(6)), r.get(7));
            visit(r.get(0), r.get(1), found);
        }
        Ok(())
    }

    fn change(
        &mut self,
        instance: &str,
        key_id: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<Option<i64>, DbError> {
        let mut tx = self.client.transaction()?;
        // The number first: a change waits here for the one before it to commit, then reads
        // what that one wrote.
        let version: i64 = tx.query_one(NEXT, &[])?.get(0);
        let stored = tx
            .query_opt(ONE, &[&instance])?
            .map(|r| record(r.get(0), r.get(1), (r.get(2), r.get(3), r.get(4)), r.get(5)));
        let holder: Option<String> = match key_id {
            Some(id) => tx.query_opt(HOLDER, &[&id, &instance])?.map(|r| r.get(0)),
            None => None,
        };
        let Some(new) = decide(stored.as_ref(), holder.as_deref()) else {
            // Rolled back: the number is not taken.
            return Ok(None);
        };
        tx.execute(
            PUT,
            &[
                &instance,
                &new.key,
                &new.key_id,
                &new.account_id,
                &new.region,
                &new.pending_time,
                &seconds(new.enrolled_at),
                &version,
            ],
        )?;
        tx.commit()?;
        Ok(Some(version))
    }
}
