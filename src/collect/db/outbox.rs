//! The alerts' part of the store: what each cell was last told (`alert_told`) and the
//! messages waiting for each destination (`alert_outbox`). A message and the verdict it
//! tells are written in one transaction, and only when the cell's verdict told is still the
//! one the message starts from: collectors sharing a database tell each change once.
//! Destinations take their messages by a lease, so a collector that dies holding one lets
//! another send it.

use super::DbError;
use super::postgres::Postgres;
use super::sqlite::Sqlite;
use rusqlite::{OptionalExtension, params};

/// One message to write: the cell, the verdict it was told and the one it is told now (a
/// path's name and whether the expectation was met), and the message as sent.
#[derive(Debug)]
pub struct Tell<'a> {
    /// Instance key.
    pub instance: &'a str,
    /// Target.
    pub target: &'a str,
    /// The verdict told before.
    pub from: (&'a str, bool),
    /// The verdict told now.
    pub to: (&'a str, bool),
    /// The message (JSON).
    pub body: &'a str,
}

/// What writing messages came to.
#[derive(Debug, Default)]
pub struct Told {
    /// Per message: `None` when written; else the cell's verdict as told already (by
    /// another collector, or by an earlier message written in another order), and nothing
    /// was written.
    pub lost: Vec<Option<(String, bool)>>,
    /// Messages dropped as the oldest beyond an outbox's bound.
    pub dropped: u64,
}

/// A cell's verdict as told: instance key, target, path, pass.
pub type Cell<'a> = (&'a str, &'a str, &'a str, bool);

/// What the alerts keep in the database; one connection.
pub trait Outbox: super::Connection {
    /// Visits every cell's verdict told; false when alerts never started on this store.
    ///
    /// # Errors
    /// When the query fails.
    fn told(&mut self, visit: &mut dyn FnMut(&str, &str, &str, bool)) -> Result<bool, DbError>;

    /// Records where `cells` start, those that have no verdict told yet, and that alerts
    /// started on this store.
    ///
    /// # Errors
    /// When the transaction fails.
    fn seed(&mut self, cells: &[Cell<'_>]) -> Result<(), DbError>;

    /// Writes each message to every destination's outbox, and its verdict as told, in one
    /// transaction; an outbox keeps its newest `keep`.
    ///
    /// # Errors
    /// When the transaction fails: nothing was written.
    fn tell(
        &mut self,
        tells: &[Tell<'_>],
        destinations: &[&str],
        keep: i64,
    ) -> Result<Told, DbError>;

    /// Adds messages to an outbox as they are (a message file of an older collector).
    ///
    /// # Errors
    /// When the transaction fails.
    fn queue(&mut self, destination: &str, bodies: &[&str]) -> Result<(), DbError>;

    /// Leases the oldest message of `destination` no one holds, until `until_ms`.
    ///
    /// # Errors
    /// When the query fails.
    fn claim(
        &mut self,
        destination: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<(i64, String)>, DbError>;

    /// Removes a message its destination took.
    ///
    /// # Errors
    /// When the query fails.
    fn sent(&mut self, seq: i64) -> Result<(), DbError>;

    /// Gives a message back to be tried again; every message when `seq` is `None` (a lone
    /// collector's start: no one else holds them).
    ///
    /// # Errors
    /// When the query fails.
    fn release(&mut self, seq: Option<i64>) -> Result<(), DbError>;

    /// Messages waiting for `destination`.
    ///
    /// # Errors
    /// When the query fails.
    fn waiting(&mut self, destination: &str) -> Result<u64, DbError>;
}

const TOLD: &str = "SELECT instance, target, path, pass FROM alert_told";
/// Alerts started on this store (a row among the counters).
const BEGUN: &str = "SELECT COUNT(*) FROM counters WHERE name = 'alerts'";
const BEGIN: &str =
    "INSERT INTO counters (name, value) VALUES ('alerts', 0) ON CONFLICT (name) DO NOTHING";
const TOLD_ONE: &str = "SELECT path, pass FROM alert_told WHERE instance = $1 AND target = $2";
const SEED: &str = "INSERT INTO alert_told (instance, target, path, pass) VALUES ($1, $2, $3, $4)
    ON CONFLICT (instance, target) DO NOTHING";
/// Moves a cell's verdict told, only from the one the message starts from. (SQLite numbers
/// `$N` by where each first appears, not by N: every query here names them in order.)
const MOVE: &str = "UPDATE alert_told SET path = $1, pass = $2
    WHERE instance = $3 AND target = $4 AND path = $5 AND pass = $6";
const QUEUE: &str = "INSERT INTO alert_outbox (destination, body, lease_ms) VALUES ($1, $2, 0)";
/// Drops what lies beyond an outbox's newest `$2`.
const TRIM: &str = "DELETE FROM alert_outbox WHERE destination = $1 AND seq <= (
    SELECT seq FROM alert_outbox WHERE destination = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2
)";
/// `{lock}` is where PostgreSQL skips the rows another collector is leasing.
const CLAIM: &str = "UPDATE alert_outbox SET lease_ms = $1 WHERE seq = (
    SELECT seq FROM alert_outbox WHERE destination = $2 AND lease_ms <= $3
    ORDER BY seq LIMIT 1 {lock}
) RETURNING seq, body";
const SENT: &str = "DELETE FROM alert_outbox WHERE seq = $1";
const RELEASE: &str = "UPDATE alert_outbox SET lease_ms = 0 WHERE seq = $1";
const RELEASE_ALL: &str = "UPDATE alert_outbox SET lease_ms = 0";
const WAITING: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM alert_outbox WHERE destination = $1";

fn flag(pass: bool) -> i64 {
    i64::from(pass)
}

impl Outbox for Sqlite {
    fn told(&mut self, visit: &mut dyn FnMut(&str, &str, &str, bool)) -> Result<bool, DbError> {
        let begun: i64 = self.conn.query_row(BEGUN, [], |r| r.get(0))?;
        let mut q = self.conn.prepare_cached(TOLD)?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let (instance, target, path): (String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            visit(&instance, &target, &path, r.get::<_, i64>(3)? != 0);
        }
        Ok(begun > 0)
    }

    fn seed(&mut self, cells: &[Cell<'_>]) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut seed = tx.prepare_cached(SEED)?;
            for (instance, target, path, pass) in cells {
                seed.execute(params![instance, target, path, flag(*pass)])?;
            }
        }
        tx.execute(BEGIN, [])?;
        tx.commit()?;
        Ok(())
    }

    fn tell(
        &mut self,
        tells: &[Tell<'_>],
        destinations: &[&str],
        keep: i64,
    ) -> Result<Told, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut told = Told::default();
        for t in tells {
            let moved = tx.prepare_cached(MOVE)?.execute(params![
                t.to.0,
                flag(t.to.1),
                t.instance,
                t.target,
                t.from.0,
                flag(t.from.1)
            ])? == 1;
            let now: Option<(String, i64)> = if moved {
                None
            } else {
                tx.prepare_cached(TOLD_ONE)?
                    .query_row(params![t.instance, t.target], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?
            };
            if !moved && now.is_none() {
                tx.prepare_cached(SEED)?.execute(params![
                    t.instance,
                    t.target,
                    t.to.0,
                    flag(t.to.1)
                ])?;
            }
            if let Some((path, pass)) = now {
                told.lost.push(Some((path, pass != 0)));
                continue;
            }
            told.lost.push(None);
            for d in destinations {
                tx.prepare_cached(QUEUE)?.execute(params![d, t.body])?;
            }
        }
        for d in destinations {
            told.dropped += tx.prepare_cached(TRIM)?.execute(params![d, keep])? as u64;
        }
        tx.commit()?;
        Ok(told)
    }

    fn queue(&mut self, destination: &str, bodies: &[&str]) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for body in bodies {
            tx.prepare_cached(QUEUE)?
                .execute(params![destination, body])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn claim(
        &mut self,
        destination: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<(i64, String)>, DbError> {
        let sql = CLAIM.replace("{lock}", "");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![until_ms, destination, now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    fn sent(&mut self, seq: i64) -> Result<(), DbError> {
        self.conn.prepare_cached(SENT)?.execute(params![seq])?;
        Ok(())
    }

    fn release(&mut self, seq: Option<i64>) -> Result<(), DbError> {
        match seq {
            Some(seq) => self.conn.prepare_cached(RELEASE)?.execute(params![seq])?,
            None => self.conn.execute(RELEASE_ALL, [])?,
        };
        Ok(())
    }

    fn waiting(&mut self, destination: &str) -> Result<u64, DbError> {
        let n: i64 = self
            .conn
            .prepare_cached(WAITING)?
            .query_row(params![destination], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl Outbox for Postgres {
    fn told(&mut self, visit: &mut dyn FnMut(&str, &str, &str, bool)) -> Result<bool, DbError> {
        let begun: i64 = self.client.query_one(BEGUN, &[])?.get(0);
        for r in &self.client.query(TOLD, &[])? {
            visit(r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) != 0);
        }
        Ok(begun > 0)
    }

    fn seed(&mut self, cells: &[Cell<'_>]) -> Result<(), DbError> {
        let mut sorted = cells.to_vec();
        sorted.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut tx = self.client.transaction()?;
        let seed = tx.prepare(SEED)?;
        for (instance, target, path, pass) in sorted {
            tx.execute(&seed, &[&instance, &target, &path, &flag(pass)])?;
        }
        tx.execute(BEGIN, &[])?;
        tx.commit()?;
        Ok(())
    }

    fn tell(
        &mut self,
        tells: &[Tell<'_>],
        destinations: &[&str],
        keep: i64,
    ) -> Result<Told, DbError> {
        let mut tx = self.client.transaction()?;
        let (moving, one, seed, queue) = (
            tx.prepare(MOVE)?,
            tx.prepare(TOLD_ONE)?,
            tx.prepare(SEED)?,
            tx.prepare(QUEUE)?,
        );
        let mut told = Told {
            lost: vec![None; tells.len()],
            dropped: 0,
        };
        // Cells locked in one order by every collector: two of them never wait on each other.
        let mut order: Vec<usize> = (0..tells.len()).collect();
        order.sort_unstable_by(|a, b| {
            (tells[*a].instance, tells[*a].target).cmp(&(tells[*b].instance, tells[*b].target))
        });
        for n in order {
            let t = &tells[n];
            let (to, from) = (flag(t.to.1), flag(t.from.1));
            let moved = tx.execute(
                &moving,
                &[&t.to.0, &to, &t.instance, &t.target, &t.from.0, &from],
            )? == 1;
            let now = if moved {
                None
            } else {
                tx.query_opt(&one, &[&t.instance, &t.target])?
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) != 0))
            };
            match now {
                Some(now) => {
                    told.lost[n] = Some(now);
                    continue;
                }
                None if !moved => {
                    tx.execute(&seed, &[&t.instance, &t.target, &t.to.0, &to])?;
                }
                None => {}
            }
            for d in destinations {
                tx.execute(&queue, &[d, &t.body])?;
            }
        }
        for d in destinations {
            told.dropped += tx.execute(TRIM, &[d, &keep])?;
        }
        tx.commit()?;
        Ok(told)
    }

    fn queue(&mut self, destination: &str, bodies: &[&str]) -> Result<(), DbError> {
        let mut tx = self.client.transaction()?;
        let queue = tx.prepare(QUEUE)?;
        for body in bodies {
            tx.execute(&queue, &[&destination, body])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn claim(
        &mut self,
        destination: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<(i64, String)>, DbError> {
        let sql = CLAIM.replace("{lock}", "FOR UPDATE SKIP LOCKED");
        Ok(self
            .client
            .query_opt(&sql, &[&until_ms, &destination, &now_ms])?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn sent(&mut self, seq: i64) -> Result<(), DbError> {
        self.client.execute(SENT, &[&seq])?;
        Ok(())
    }

    fn release(&mut self, seq: Option<i64>) -> Result<(), DbError> {
        match seq {
            Some(seq) => self.client.execute(RELEASE, &[&seq])?,
            None => self.client.execute(RELEASE_ALL, &[])?,
        };
        Ok(())
    }

    fn waiting(&mut self, destination: &str) -> Result<u64, DbError> {
        let n: i64 = self.client.query_one(WAITING, &[&destination])?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
