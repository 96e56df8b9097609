//! Alerts: a message to each `--alert` destination when a cell's verdict changes (after
//! `--alert-after` reports in a row) and when it recovers. Each message is written to the
//! destination's outbox (`DATA/alerts/NAME/`, synced) before the report that made it is
//! acknowledged, and sent from there by one task per destination, oldest first, retried with
//! back-off: a destination that fails or hangs never holds ingestion or the others, and a
//! restart loses nothing: what each cell was last told is kept too (`told.rs`), and the
//! store's reports are replayed over it at the start.

pub mod rule;
pub mod told;

use crate::deliver::spool::{self, Spool};
use crate::model::Report;
use rule::{Alert, Event, Streaks};
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
const OUTBOX: usize = 10_000;

/// A metric's name, type, help and value for a destination.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Destination) -> u64,
);

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
    /// The outbox cannot be made.
    #[error("--alert: cannot create the outbox {}: {source}; check --data", path.display())]
    Outbox {
        /// The outbox.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The told log cannot be read at the start.
    #[error("--alert: cannot read {} to resume the alerts: {source}; check --data", path.display())]
    Resume {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stored reports cannot be read at the start.
    #[error("--alert: cannot read the stored reports to resume the alerts: {0}")]
    Replay(#[source] super::store::StoreError),
    /// The told log cannot be written at the start.
    #[error("--alert: {0}; check --data")]
    Told(#[source] crate::deliver::SpoolError),
    /// The HTTP client cannot be built.
    #[error("--alert: cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// One destination and its outbox.
struct Destination {
    kind: Kind,
    url: String,
    /// The URL without its path, for logs (a Slack URL's path is its secret).
    shown: String,
    outbox: Spool,
    wake: Notify,
    /// Messages the destination took, and deliveries that failed, since start.
    sent: AtomicU64,
    failed: AtomicU64,
}

/// Every destination, and the cells' streaks.
pub struct Alerts {
    after: u32,
    streaks: Mutex<Streaks>,
    told: Arc<told::Told>,
    destinations: Vec<Arc<Destination>>,
    client: reqwest::Client,
}

impl Alerts {
    /// The destinations `specs` name (`webhook=URL`, `slack=URL`), their outboxes in
    /// `data/alerts`, alerting after `after` reports in a row.
    ///
    /// # Errors
    /// What is wrong with a spec or an outbox.
    pub fn new(
        specs: &[String],
        after: u32,
        data: &Path,
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
            // The outbox is named by the URL, so a reordered command line keeps each
            // message with its destination.
            let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
            let name = crate::auth::hex(&digest.as_ref()[..6]);
            let dir = data.join("alerts").join(name);
            std::fs::create_dir_all(&dir).map_err(|source| AlertError::Outbox {
                path: dir.clone(),
                source,
            })?;
            destinations.push(Arc::new(Destination {
                kind,
                url: url.to_string(),
                shown: format!(
                    "{} {}://{}{}",
                    spec.split('=').next().unwrap_or_default(),
                    parsed.scheme(),
                    parsed.host_str().unwrap_or_default(),
                    parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
                ),
                outbox: Spool::new(dir, OUTBOX),
                wake: Notify::new(),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }));
        }
        let client = crate::deliver::post_client(tls, TIMEOUT).map_err(AlertError::Client)?;
        let dir = data.join("alerts");
        std::fs::create_dir_all(&dir).map_err(|source| AlertError::Outbox {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            after,
            streaks: Mutex::new(Streaks::new(after)),
            told: Arc::new(told::Told::new(&dir)),
            destinations,
            client,
        })
    }

    /// Starts every cell where it stood at the stop: at what it was last told, with the
    /// reports stored in `database` replayed over it, so a change half-counted before the
    /// stop goes on being counted. A data directory without a told log starts at the store's newest
    /// verdicts (`matrix`): what happened before alerts were asked for is not told. Blocks:
    /// call it off the async threads.
    ///
    /// Returns the messages the replay made that were never written (a stop between the
    /// store and the outboxes): they are due, for [`Alerts::write`].
    ///
    /// # Errors
    /// When the store or the told log cannot be read, or the told log written.
    pub fn resume(
        &self,
        database: &super::db::Database,
        matrix: &std::collections::BTreeMap<(String, String), super::store::Cell>,
    ) -> Result<Vec<Alert>, AlertError> {
        let resume = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AlertError::Resume { path, source }
        };
        let Some(told) = self.told.read().map_err(resume(self.told.path()))? else {
            let mut streaks = self.streaks();
            for (key, cell) in matrix {
                streaks.start(key, cell);
            }
            self.told
                .rewrite(&streaks.told())
                .map_err(AlertError::Told)?;
            return Ok(Vec::new());
        };
        let mut streaks = Streaks::new(self.after);
        for (key, state) in &told {
            streaks.seed(key, *state);
        }
        let mut last = std::collections::HashMap::new();
        super::store::each(database, &mut |entry| {
            for a in streaks.observe(&entry.report) {
                last.insert((a.instance_key.clone(), a.target.clone()), a);
            }
        })
        .map_err(AlertError::Replay)?;
        // A message whose verdict the told log has was written; the last one of a cell whose
        // verdict it has not was lost, and the cell stays at what was told until it is written.
        let mut now = streaks.told();
        let due: Vec<Alert> = last
            .into_iter()
            .filter(|(key, a)| told.get(key) != Some(&a.to))
            .map(|(key, a)| {
                now.insert(key, a.from);
                a
            })
            .collect();
        self.told.rewrite(&now).map_err(AlertError::Told)?;
        *self.streaks() = streaks;
        Ok(due)
    }

    /// Takes a stored report and writes the messages it makes to every outbox; returns
    /// once they are on disk.
    ///
    /// # Errors
    /// When an outbox cannot be written.
    pub async fn observe(&self, report: &Report) -> Result<(), crate::deliver::SpoolError> {
        let alerts = self.streaks().observe(report);
        self.write(&alerts).await
    }

    /// Writes `alerts` to every outbox, then to the told log; returns once they are on disk.
    ///
    /// # Errors
    /// When an outbox or the told log cannot be written.
    pub async fn write(&self, alerts: &[Alert]) -> Result<(), crate::deliver::SpoolError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let bodies: Vec<Vec<u8>> = alerts
            .iter()
            .map(|a| serde_json::to_vec(a).unwrap_or_default())
            .collect();
        for d in &self.destinations {
            let (outbox, bodies) = (d.outbox.clone(), bodies.clone());
            let written = tokio::task::spawn_blocking(
                move || -> Result<usize, crate::deliver::SpoolError> {
                    let mut dropped = 0;
                    for body in &bodies {
                        dropped += outbox.enqueue(&message_id(), body, None)?;
                    }
                    Ok(dropped)
                },
            )
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
            if written > 0 {
                tracing::warn!(
                    "alerts to {}: outbox full, dropped the {written} oldest",
                    d.shown
                );
            }
            d.wake.notify_one();
        }
        let (told, written) = (self.told.clone(), alerts.to_vec());
        tokio::task::spawn_blocking(move || told.append(&written))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        for a in alerts {
            tracing::info!("alert: {}", crate::terminal::safe(&text(a)));
        }
        Ok(())
    }

    /// Sends each destination's outbox, for ever: one task per destination, owned by `tasks`.
    pub fn spawn(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        for d in &self.destinations {
            let (d, client) = (d.clone(), self.client.clone());
            tasks.spawn(async move { send_for_ever(&d, &client).await });
        }
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
                "Alert messages in the destination's outbox.",
                |d| u64::try_from(d.outbox.waiting()).unwrap_or(u64::MAX),
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

/// A fresh message id. The outbox orders by the millisecond, then by this id: a counter
/// first keeps two messages of the same millisecond in the order they were made; the random
/// part keeps ids apart across restarts.
fn message_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    format!("{seq:012x}-{}", crate::auth::hex(&bytes))
}

async fn send_for_ever(d: &Destination, client: &reqwest::Client) {
    let mut backoff = BACKOFF.0;
    loop {
        let outbox = d.outbox.clone();
        let files = tokio::task::spawn_blocking(move || outbox.list())
            .await
            .unwrap_or_default();
        if files.is_empty() {
            d.wake.notified().await;
            continue;
        }
        for path in files {
            let file = path.clone();
            let read = tokio::task::spawn_blocking(move || spool::read(&file))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            let sent = match read {
                Ok((body, _)) => {
                    let Ok(alert) = serde_json::from_slice::<Alert>(&body) else {
                        tracing::warn!("{}: not an alert probe wrote: removed", path.display());
                        let outbox = d.outbox.clone();
                        let _ = tokio::task::spawn_blocking(move || outbox.remove(&path)).await;
                        continue;
                    };
                    deliver(d, client, &alert).await
                }
                Err(source) => Err(Undelivered::Read {
                    path: path.clone(),
                    source,
                }),
            };
            match sent {
                Ok(()) => {
                    backoff = BACKOFF.0;
                    d.sent.fetch_add(1, Ordering::Relaxed);
                    let outbox = d.outbox.clone();
                    let _ = tokio::task::spawn_blocking(move || outbox.remove(&path)).await;
                }
                Err(why) => {
                    d.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "alerts to {}: {why}; next try in {} s",
                        d.shown,
                        backoff.as_secs()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    break;
                }
            }
        }
    }
}

/// Sends one message; any 2xx is taken.
/// Why a message did not reach its destination (it is tried again).
#[derive(Debug, thiserror::Error)]
enum Undelivered {
    /// The outbox's file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// No answer: refused, reset, timed out, TLS.
    #[error("unreachable: {}", crate::error::innermost(.0))]
    Unreachable(#[source] reqwest::Error),
    /// The destination answered, but not with a success.
    #[error("answered HTTP {0}")]
    Status(u16),
}

async fn deliver(
    d: &Destination,
    client: &reqwest::Client,
    alert: &Alert,
) -> Result<(), Undelivered> {
    // Serialising an alert or a JSON value cannot fail.
    let body = match d.kind {
        Kind::Webhook => serde_json::to_vec(alert),
        Kind::Slack => serde_json::to_vec(&serde_json::json!({ "text": slack_text(alert) })),
    }
    .unwrap_or_default();
    let response = client
        .post(&d.url)
        .header("content-type", "application/json")
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

    fn alerts(data: &Path) -> Alerts {
        let tls = crate::net::tls::Trust::new(&[]).unwrap().client_config();
        Alerts::new(&["webhook=http://127.0.0.1:9/".into()], 1, data, tls).unwrap()
    }

    #[test]
    fn a_message_the_store_made_but_no_outbox_took_is_due_at_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("reports.jsonl");
        std::fs::write(&log, format!("{}\n{}\n", report(0, true), report(1, false))).unwrap();
        // The store imports the log into its database.
        let database = crate::collect::store::Store::open(dir.path())
            .unwrap()
            .database()
            .clone();
        let matrix = std::collections::BTreeMap::new();
        // No told log: alerts start at the store's newest verdicts (none here), nothing due.
        assert!(
            alerts(dir.path())
                .resume(&database, &matrix)
                .unwrap()
                .is_empty()
        );
        let first: Report = serde_json::from_str(&report(0, true)).unwrap();
        let key = (
            crate::collect::store::instance_key(&first),
            first.targets[0].target.clone(),
        );
        // The told log says the cell passed: the failure the store holds was never written.
        let told = told::Told::new(&dir.path().join("alerts"));
        let mut passed = told::Cells::new();
        let pass = rule::State {
            path: crate::model::Path::GatewayEndpoint,
            pass: true,
        };
        passed.insert(key.clone(), pass);
        told.rewrite(&passed).unwrap();
        let due = alerts(dir.path()).resume(&database, &matrix).unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].event, Event::Failing);
        // Until it is written, the told log still says the cell passed.
        assert_eq!(told.read().unwrap().unwrap()[&key], pass);
        // Written, it is due no more.
        told.append(&due).unwrap();
        assert!(
            alerts(dir.path())
                .resume(&database, &matrix)
                .unwrap()
                .is_empty()
        );
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
