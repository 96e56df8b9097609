//! Alerts: a message to each `--alert` destination when a cell's verdict changes (after
//! `--alert-after` reports in a row) and when it recovers. A message is written to the
//! store's outbox together with the verdict it tells, in one transaction
//! ([`crate::collect::db::outbox`]), before the report that made it is acknowledged, and
//! sent from there by one task per destination, oldest first, retried with back-off: a
//! destination that fails or hangs never holds ingestion or the others. A restart loses
//! nothing: each cell starts at what it was last told, with the newest run of its reports
//! that differ from it read back from the store. Collectors sharing a database count each
//! other's reports too (followed from the store) and tell each change once.

pub mod legacy;
mod resume;
pub mod rule;

use super::db::outbox::{Outbox, Tell};
use super::db::{Database, DbError, Healing};
use crate::model::Report;
use rule::{Alert, Event, State, Streaks};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Time one delivery may take: a receiver that hangs is cut then, and tried again.
const TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest wait after a failed delivery.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));
/// Messages an outbox keeps at most; past it the oldest go, with a warning.
const OUTBOX: i64 = 10_000;
/// How long a message taken for sending is held from the other collectors: past a delivery's
/// timeout, so only a collector that died holding it lets it go.
const LEASE: Duration = Duration::from_secs(30);
/// How often an idle destination looks for messages another collector wrote, or let go.
const POLL: Duration = Duration::from_secs(2);
/// How often the cells seen for the first time are recorded where they start.
const STARTS: Duration = Duration::from_secs(1);

/// A metric's name, type, help and value for a destination.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Destination) -> u64,
);

/// The alerts' connection to the store, used off the async threads, and where it is opened
/// again when lost.
type Db = Arc<Mutex<Healing<dyn Outbox>>>;

/// The form a destination takes its messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The alert as JSON (see [`Alert`]).
    Webhook,
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
}

/// A destination that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Not `webhook=URL` or `slack=URL`.
    #[error(
        "--alert {0:?}: write webhook=URL or slack=URL, as slack=https://hooks.slack.com/services/..."
    )]
    Form(String),
    /// The URL is not http(s).
    #[error("--alert {0:?}: the URL must start with http:// or https://")]
    Url(String),
    /// The store's alert tables cannot be used.
    #[error("--alert: {0}")]
    Db(#[source] DbError),
    /// The stored reports cannot be read at the start.
    #[error("--alert: cannot read the stored reports to resume the alerts: {0}")]
    Replay(#[source] super::store::StoreError),
    /// An older collector's alert files cannot be moved into the store.
    #[error("--alert: cannot import {}: {source}; check --data", path.display())]
    Import {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client cannot be built.
    #[error("--alert: cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The task writing to the store panicked or was cancelled.
    #[error("--alert: the store's writer stopped: {0}")]
    Stopped(String),
}

/// One destination.
struct Destination {
    kind: Kind,
    url: String,
    /// The URL without its path, for logs (a Slack URL's path is its secret).
    shown: String,
    /// Its outbox's name in the store: a digest of the URL, so a reordered command line
    /// keeps each message with its destination, and the store never holds the URL.
    name: String,
    wake: Notify,
    /// Messages the destination took, and deliveries that failed, since start.
    sent: AtomicU64,
    failed: AtomicU64,
    /// Messages in its outbox, as last counted.
    waiting: AtomicU64,
}

/// The destinations asked for, before the store is open.
pub struct Plan {
    after: u32,
    destinations: Vec<Destination>,
    client: reqwest::Client,
}

/// Every destination, and the cells' streaks.
pub struct Alerts {
    streaks: Mutex<Streaks>,
    /// Held from counting a report to writing its messages: messages are written in the
    /// order they were counted.
    order: tokio::sync::Mutex<()>,
    db: Db,
    destinations: Vec<Arc<Destination>>,
    client: reqwest::Client,
}

impl Plan {
    /// The destinations `specs` name (`webhook=URL`, `slack=URL`), alerting after `after`
    /// reports in a row.
    ///
    /// # Errors
    /// What is wrong with a spec.
    pub fn new(
        specs: &[String],
        after: u32,
        tls: rustls::ClientConfig,
    ) -> Result<Self, AlertError> {
        let mut destinations = Vec::new();
        for spec in specs {
            let (kind, url) = match spec.split_once('=') {
                Some(("webhook", url)) => (Kind::Webhook, url),
                Some(("slack", url)) => (Kind::Slack, url),
                _ => return Err(AlertError::Form(spec.clone())),
            };
            let Ok(parsed) = reqwest::Url::parse(url) else {
                return Err(AlertError::Url(spec.clone()));
            };
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(AlertError::Url(spec.clone()));
            }
            let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
            destinations.push(Destination {
                kind,
                url: url.to_string(),
                shown: format!(
                    "{} {}://{}{}",
                    spec.split('=').next().unwrap_or_default(),
                    parsed.scheme(),
                    parsed.host_str().unwrap_or_default(),
                    parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
                ),
                name: crate::auth::hex(&digest.as_ref()[..6]),
                wake: Notify::new(),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                waiting: AtomicU64::new(0),
            });
        }
        let client = crate::deliver::post_client(tls, TIMEOUT).map_err(AlertError::Client)?;
        Ok(Self {
            after,
            destinations,
            client,
        })
    }

    /// Connects to `database` and starts every cell where it stood at the stop: at what it
    /// was last told, and the newest run of its reports that differ from it
    /// ([`resume::streaks`]), so a change half-counted before the stop goes on being
    /// counted. A store where alerts never started starts at its newest verdicts
    /// (`matrix`): what happened before alerts were asked for is not told. An older collector's alert files in `data` are moved into the store first.
    /// Blocks: call it off the async threads.
    ///
    /// Returns the alerts, and the messages counted in full that were never written (a stop
    /// between the store and the outbox): they are due, for [`Alerts::write`].
    ///
    /// # Errors
    /// When the store cannot be reached, read or written.
    pub fn open(
        self,
        database: &Database,
        data: &Path,
        matrix: &BTreeMap<(String, String), super::store::Cell>,
    ) -> Result<(Alerts, Vec<Alert>), AlertError> {
        let mut db = database.outbox().map_err(AlertError::Db)?;
        legacy::import(data, db.as_mut())?;
        if !database.shared() {
            // Alone on its store: a message leased by a collector that died is this one's.
            db.release(None).map_err(AlertError::Db)?;
        }
        let mut told = HashMap::new();
        let begun = db
            .told(&mut |instance, target, path, pass| {
                if let Some(state) = state(path, pass) {
                    told.insert((instance.to_string(), target.to_string()), state);
                }
            })
            .map_err(AlertError::Db)?;
        let (streaks, due) = if begun {
            resume::streaks(database, &told, matrix, self.after)?
        } else {
            let mut streaks = Streaks::new(self.after);
            for (key, cell) in matrix {
                streaks.start(key, cell);
            }
            db.seed(&rows(&streaks.told())).map_err(AlertError::Db)?;
            (streaks, Vec::new())
        };
        let alerts = Alerts {
            streaks: Mutex::new(streaks),
            order: tokio::sync::Mutex::new(()),
            db: Arc::new(Mutex::new(Healing::new(db, database, Database::outbox))),
            destinations: self.destinations.into_iter().map(Arc::new).collect(),
            client: self.client,
        };
        Ok((alerts, due))
    }
}

/// Cells' verdicts told, as the store takes them.
fn rows<'a>(
    cells: impl IntoIterator<Item = (&'a (String, String), &'a State)>,
) -> Vec<super::db::outbox::Cell<'a>> {
    cells
        .into_iter()
        .map(|((i, t), s)| (i.as_str(), t.as_str(), s.path.as_str(), s.pass))
        .collect()
}

/// A verdict told, as the store keeps it; `None` for a path this probe does not know.
fn state(path: &str, pass: bool) -> Option<State> {
    serde_json::from_value(serde_json::Value::String(path.to_string()))
        .ok()
        .map(|path| State { path, pass })
}

/// Runs `f` on the store's connection, off the async threads.
async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&mut dyn Outbox) -> Result<T, DbError> + Send + 'static,
) -> Result<T, AlertError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        db.with(|c| f(c))
    })
    .await
    .map_err(|e| AlertError::Stopped(e.to_string()))?
    .map_err(AlertError::Db)
}

impl Alerts {
    /// Takes a stored report and writes the messages it makes; returns once they are
    /// committed.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub async fn observe(&self, report: &Report) -> Result<(), AlertError> {
        let _order = self.order.lock().await;
        let (alerts, started) = {
            let mut streaks = self.streaks();
            let alerts = streaks.observe(report);
            // New cells go with a message, or within a second ([`Alerts::spawn`]): a
            // transaction each would hold every report behind it.
            let started = if alerts.is_empty() {
                Vec::new()
            } else {
                streaks.take_started()
            };
            (alerts, started)
        };
        self.tell(alerts, started).await
    }

    /// Writes `alerts` (those due at the start); returns once they are committed.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub async fn write(&self, alerts: Vec<Alert>) -> Result<(), AlertError> {
        let _order = self.order.lock().await;
        self.tell(alerts, Vec::new()).await
    }

    /// Records where the `started` cells start, and writes `alerts` to every outbox with
    /// the verdicts they tell. A message whose cell was told otherwise meanwhile (by another
    /// collector) is not written, and the cell starts again from what the store says was
    /// told.
    async fn tell(
        &self,
        alerts: Vec<Alert>,
        started: Vec<((String, String), State)>,
    ) -> Result<(), AlertError> {
        if alerts.is_empty() && started.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self.destinations.iter().map(|d| d.name.clone()).collect();
        let (told, alerts) = blocking(&self.db, move |db| {
            if !started.is_empty() {
                db.seed(&rows(started.iter().map(|(key, s)| (key, s))))?;
            }
            if alerts.is_empty() {
                return Ok((super::db::outbox::Told::default(), alerts));
            }
            let bodies: Vec<String> = alerts
                .iter()
                .map(|a| serde_json::to_string(a).unwrap_or_default())
                .collect();
            let tells: Vec<Tell<'_>> = alerts
                .iter()
                .zip(&bodies)
                .map(|(a, body)| Tell {
                    instance: &a.instance_key,
                    target: &a.target,
                    from: (a.from.path.as_str(), a.from.pass),
                    to: (a.to.path.as_str(), a.to.pass),
                    body,
                })
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let told = db.tell(&tells, &names, OUTBOX)?;
            drop(tells);
            Ok((told, alerts))
        })
        .await?;
        for (a, lost) in alerts.iter().zip(told.lost) {
            match lost.and_then(|(path, pass)| state(&path, pass)) {
                None => tracing::info!("alert: {}", crate::terminal::safe(&text(a))),
                Some(now) => {
                    tracing::debug!(
                        "alert for {} -> {} told already",
                        crate::terminal::safe(&a.instance),
                        crate::terminal::safe(&a.target)
                    );
                    self.streaks()
                        .seed(&(a.instance_key.clone(), a.target.clone()), now);
                }
            }
        }
        if told.dropped > 0 {
            tracing::warn!(
                "alerts: outboxes full, dropped the {} oldest messages",
                told.dropped
            );
        }
        if !alerts.is_empty() {
            for d in &self.destinations {
                d.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Sends each destination's outbox, for ever: one task per destination, owned by `tasks`;
    /// and records where new cells start, once a second.
    pub fn spawn(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        for d in &self.destinations {
            let (d, client, db) = (d.clone(), self.client.clone(), self.db.clone());
            tasks.spawn(async move { send_for_ever(&d, &client, &db).await });
        }
        let alerts = self.clone();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(STARTS).await;
                let started = alerts.streaks().take_started();
                if let Err(e) = alerts.tell(Vec::new(), started).await {
                    // Those cells start at their newest verdict after a restart.
                    tracing::warn!("cannot record where new cells start: {e}");
                }
            }
        });
    }

    /// The destinations' counters, in Prometheus text (a destination named by its position,
    /// kind, scheme and host: a Slack URL's path is its secret).
    #[must_use]
    pub fn metrics(&self) -> String {
        use super::metrics::{escape, family};
        use std::fmt::Write as _;
        let mut out = String::new();
        let series: [Series; 3] = [
            (
                "probe_alerts_sent_total",
                "counter",
                "Alert messages the destination took.",
                |d| d.sent.load(Ordering::Relaxed),
            ),
            (
                "probe_alerts_failed_total",
                "counter",
                "Deliveries of alert messages that failed (each is tried again).",
                |d| d.failed.load(Ordering::Relaxed),
            ),
            (
                "probe_alerts_waiting",
                "gauge",
                "Alert messages in the destination's outbox, as last counted.",
                |d| d.waiting.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in series {
            family(&mut out, name, kind, help);
            for (n, d) in self.destinations.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{n=\"{n}\",destination=\"{}\"}} {}",
                    escape(&d.shown),
                    value(d)
                );
            }
        }
        out
    }

    fn streaks(&self) -> std::sync::MutexGuard<'_, Streaks> {
        self.streaks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Sends `d`'s outbox, oldest first; a failure gives the message back and waits.
async fn send_for_ever(d: &Destination, client: &reqwest::Client, db: &Db) {
    let mut backoff = BACKOFF.0;
    loop {
        let now = super::db::millis_of(std::time::SystemTime::now());
        let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let name = d.name.clone();
        let claimed = blocking(db, move |db| {
            let claimed = db.claim(&name, now, until)?;
            Ok((claimed, db.waiting(&name)?))
        })
        .await;
        let (seq, body) = match claimed {
            Ok((Some(message), waiting)) => {
                d.waiting.store(waiting, Ordering::Relaxed);
                message
            }
            Ok((None, waiting)) => {
                d.waiting.store(waiting, Ordering::Relaxed);
                tokio::select! {
                    () = d.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(
                    "alerts to {}: {e}; next try in {} s",
                    d.shown,
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        let Ok(alert) = serde_json::from_str::<Alert>(&body) else {
            tracing::warn!(
                "alerts to {}: message {seq} is not an alert probe wrote: removed",
                d.shown
            );
            let _ = blocking(db, move |db| db.sent(seq)).await;
            continue;
        };
        match deliver(d, client, &alert).await {
            Ok(()) => {
                backoff = BACKOFF.0;
                d.sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = blocking(db, move |db| db.sent(seq)).await {
                    // Sent again once the lease ends: at least once, never lost.
                    tracing::warn!("alerts to {}: cannot remove a sent message: {e}", d.shown);
                }
            }
            Err(why) => {
                d.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "alerts to {}: {why}; next try in {} s",
                    d.shown,
                    backoff.as_secs()
                );
                // Given back at once, so the next try (here or by another collector) takes
                // the oldest message again, not the one after it.
                let _ = blocking(db, move |db| db.release(Some(seq))).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// Why a message did not reach its destination (it is tried again).
#[derive(Debug, thiserror::Error)]
enum Undelivered {
    /// No answer: refused, reset, timed out, TLS.
    #[error("unreachable: {}", crate::error::innermost(.0))]
    Unreachable(#[source] reqwest::Error),
    /// The destination answered, but not with a success.
    #[error("answered HTTP {0}")]
    Status(u16),
}

/// A webhook's message: the alert, led by its [`Alert::id`].
#[derive(serde::Serialize)]
struct Sent<'a> {
    id: &'a str,
    #[serde(flatten)]
    alert: &'a Alert,
}

/// Sends one message, its id in the `Idempotency-Key` header too; any 2xx is taken.
async fn deliver(
    d: &Destination,
    client: &reqwest::Client,
    alert: &Alert,
) -> Result<(), Undelivered> {
    let id = alert.id();
    // Serialising an alert or a JSON value cannot fail.
    let body = match d.kind {
        Kind::Webhook => serde_json::to_vec(&Sent { id: &id, alert }),
        Kind::Slack => serde_json::to_vec(&serde_json::json!({ "text": slack_text(alert) })),
    }
    .unwrap_or_default();
    let response = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("idempotency-key", &id)
        .body(body)
        .send()
        .await
        .map_err(Undelivered::Unreachable)?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Undelivered::Status(status.as_u16()))
    }
}

/// The message in one line.
fn text(a: &Alert) -> String {
    let what = match a.event {
        Event::Failing => "FAILING",
        Event::Recovered => "RECOVERED",
        Event::Changed => "CHANGED",
    };
    format!(
        "{what}: {} -> {}: {} -> {} ({} reports in a row since {}): {}",
        a.instance, a.target, a.from.path, a.to.path, a.reports, a.at, a.reason
    )
}

/// The line for Slack: what reports say cannot become a link, a mention or markup there
/// (`&`, `<` and `>` escaped as Slack asks), nor a control character.
fn slack_text(a: &Alert) -> String {
    text(a)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n: u32, pass: bool) -> String {
        serde_json::to_string(&rule::tests::report(n, pass)).unwrap()
    }

    fn open(data: &Path, store: &crate::collect::store::Store) -> (Alerts, Vec<Alert>) {
        let tls = crate::net::tls::Trust::new(&[]).unwrap().client_config();
        let matrix = store.views().matrix.clone();
        Plan::new(&["webhook=http://127.0.0.1:9/".into()], 1, tls)
            .unwrap()
            .open(store.database(), data, &matrix)
            .unwrap()
    }

    fn told(database: &Database) -> Vec<String> {
        let mut told = Vec::new();
        database
            .outbox()
            .unwrap()
            .told(&mut |i, t, p, pass| told.push(format!("{i} {t} {p} {pass}")))
            .unwrap();
        told
    }

    #[tokio::test]
    async fn a_message_the_store_made_but_no_outbox_took_is_due_at_the_start_and_told_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::collect::store::Store::open(dir.path()).unwrap();
        let put = |n, pass| {
            let entry = crate::collect::entry::Entry::parse(report(n, pass).as_bytes()).unwrap();
            store.put(entry)
        };
        put(0, true).await.unwrap();
        // Alerts new to the store start at its newest verdicts: the pass, told to no one.
        assert!(open(dir.path(), &store).1.is_empty());
        let first: Report = serde_json::from_str(&report(0, true)).unwrap();
        let (instance, target) = (
            crate::collect::store::instance_key(&first),
            first.targets[0].target.clone(),
        );
        let database = store.database().clone();
        let passed = format!("{instance} {target} gateway-endpoint true");
        assert_eq!(told(&database), [passed.as_str()]);
        // A failure stored, and the collector stopped before its message was written.
        put(1, false).await.unwrap();
        let (one, due) = open(dir.path(), &store);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].event, Event::Failing);
        assert_eq!(told(&database), [passed.as_str()], "not written yet");
        // A second collector on the same store finds the same message due; written by both,
        // it is told once.
        let (two, again) = open(dir.path(), &store);
        one.write(due).await.unwrap();
        two.write(again).await.unwrap();
        let failed = format!("{instance} {target} public false");
        assert_eq!(told(&database), [failed.as_str()]);
        let name = &one.destinations[0].name;
        assert_eq!(database.outbox().unwrap().waiting(name).unwrap(), 1);
        // Written, it is due no more, and the cell starts at the failure.
        let (three, due) = open(dir.path(), &store);
        assert!(due.is_empty(), "{due:?}");
        put(2, true).await.unwrap();
        three
            .observe(&serde_json::from_str(&report(2, true)).unwrap())
            .await
            .unwrap();
        assert_eq!(told(&database), [passed.as_str()], "recovered, told");
    }

    #[tokio::test]
    async fn a_cell_whose_start_was_not_recorded_resumes_from_its_reports() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::collect::store::Store::open(dir.path()).unwrap();
        // Alerts started on the store, and nothing recorded since (a stop within a second
        // of the cell's first report).
        store.database().outbox().unwrap().seed(&[]).unwrap();
        for (n, pass) in [(0, true), (1, false)] {
            let entry = crate::collect::entry::Entry::parse(report(n, pass).as_bytes()).unwrap();
            store.put(entry).await.unwrap();
        }
        let (_, due) = open(dir.path(), &store);
        assert_eq!(due.len(), 1, "the pass was where it started: {due:?}");
        assert_eq!((due[0].event, due[0].from.pass), (Event::Failing, true));
    }

    #[test]
    fn a_report_cannot_put_a_mention_or_a_link_in_slack() {
        let mut r: Alert = Alert {
            event: Event::Failing,
            instance: "<!channel> web".into(),
            instance_key: "i-1".into(),
            target: "<https://evil|click>".into(),
            from: rule::State {
                path: crate::model::Path::Vpc,
                pass: true,
            },
            to: rule::State {
                path: crate::model::Path::Unreachable,
                pass: false,
            },
            reason: "a\u{1b}[2Jb & c".into(),
            at: "2026-12-04T10:00:00Z".into(),
            reports: 1,
        };
        let t = slack_text(&r);
        assert!(
            !t.contains('<') && !t.contains('>') && !t.contains('\u{1b}'),
            "{t}"
        );
        assert!(
            t.contains("&lt;!channel&gt;") && t.contains("b &amp; c"),
            "{t}"
        );
        r.event = Event::Recovered;
        assert!(slack_text(&r).starts_with("RECOVERED: "));
    }
}
