//! Sending reports to the collector. Every report is written to the spool first and sent
//! from there, oldest first, and removed only once the collector acknowledged it: a report
//! outlives an unreachable collector and a crash, and resending is harmless (the collector
//! stores each report id once). The spool is bounded and says what it drops.

mod enrol;
pub mod spool;

pub use enrol::Enroller;
use spool::{Spool, spooled_id};

use crate::auth::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER, Token};
use crate::error::innermost;
use crate::identity::wire::{KEY_HEADER, KEY_SIGNATURE_HEADER};
use crate::model::{ConsoleLine, Report};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reports kept at most while the collector is unreachable.
pub const SPOOL_LIMIT: usize = 1_000;
/// Answers with an error a report may get before it is moved to the dead-letter folder.
pub const ATTEMPTS: u32 = 10;
/// Where reports the collector keeps refusing go, inside the spool: kept for people, never
/// sent again.
pub const DEAD: &str = "dead";
/// Time for one POST.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Time an agent's run spends sending at most: a slow collector and a full spool must not
/// hold the next check (1,000 reports x 5 s would be over an hour).
pub const BUDGET: Duration = Duration::from_secs(30);

/// Where and how to send reports.
pub struct Delivery {
    url: String,
    /// The collector's URL without the route.
    base: String,
    token: Option<Token>,
    identity: Option<Enroller>,
    spool: Spool,
    client: reqwest::Client,
    /// Time one flush may take, when bounded.
    budget: Option<Duration>,
    /// Error answers per spooled file, since this process started.
    refusals: std::sync::Mutex<std::collections::HashMap<PathBuf, u32>>,
    /// Reports moved to the dead-letter folder since this process started.
    dead: std::sync::atomic::AtomicU64,
}

/// How the delivery of one run's report went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One line for stderr.
    pub line: String,
    /// The collector acknowledged this run's report.
    pub delivered: bool,
}

/// How a flush of the spool went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// Reports the collector acknowledged.
    pub sent: usize,
    /// Reports still waiting.
    pub waiting: usize,
    /// Why the flush stopped early, when it did.
    pub stopped: Option<String>,
}

/// How reports are proven to the collector: the shared token, the instance's identity, or
/// both. A relay gives neither identity nor always a token: it forwards the agent's proof.
#[derive(Debug, Clone, Default)]
pub struct Credentials<'a> {
    /// The shared token's file.
    pub token_file: Option<&'a Path>,
    /// Sign with a key enrolled by the identity document this IMDS endpoint serves.
    pub identity: Option<String>,
}

/// The default spool: /var/spool/probe for root, else the user's state directory.
#[must_use]
pub fn default_spool() -> PathBuf {
    if std::env::var("USER").as_deref() == Ok("root")
        || std::path::Path::new("/var/spool/probe").is_dir()
    {
        return PathBuf::from("/var/spool/probe");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("probe/spool")
}

/// Why a delivery cannot be set up. It names the input, not the flag: each command adds its
/// own flag names (`--report-to` and `--spool` for an agent, `--forward` and `--data` for a
/// relay).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The collector's URL is not http(s).
    #[error("{0:?}: give the collector's URL, as http://10.10.0.5:7878")]
    Url(String),
    /// The token file cannot be used.
    #[error(transparent)]
    Token(#[from] auth::TokenError),
    /// The identity key cannot be made or used.
    #[error(transparent)]
    Key(#[from] crate::identity::KeyError),
    /// The spool directory cannot be made.
    #[error("{}: cannot create it ({source}); give a writable directory", path.display())]
    Spool {
        /// The spool directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl SetupError {
    /// The message with the flag names of the command that set the delivery up: `url` for the
    /// collector's URL, `spool` for the spool directory.
    #[must_use]
    pub fn with_flags(&self, url: &str, spool: &str) -> String {
        match self {
            Self::Url(_) => format!("{url} {self}"),
            Self::Spool { .. } => format!("{spool} {self}"),
            Self::Token(_) | Self::Key(_) | Self::Client(_) => self.to_string(),
        }
    }
}

/// A report that could not be written to the spool.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to {}: {source}", path.display())]
pub struct SpoolError {
    /// The spool directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl Delivery {
    /// Validates the collector URL, loads the token, prepares the spool.
    ///
    /// # Errors
    /// A one-line message naming the option and the fix.
    pub fn new(
        url: &str,
        credentials: Credentials<'_>,
        spool: PathBuf,
        tls: rustls::ClientConfig,
    ) -> Result<Self, SetupError> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SetupError::Url(url.into()));
        }
        let token = credentials.token_file.map(Token::load).transpose()?;
        std::fs::create_dir_all(&spool).map_err(|source| SetupError::Spool {
            path: spool.clone(),
            source,
        })?;
        let identity = credentials
            .identity
            .map(|imds| Enroller::new(&spool, imds))
            .transpose()?;
        let client = post_client(tls, TIMEOUT).map_err(SetupError::Client)?;
        Ok(Self {
            url: format!("{url}/v1/reports"),
            base: url.to_string(),
            token,
            identity,
            spool: Spool::new(spool, SPOOL_LIMIT),
            client,
            budget: Some(BUDGET),
            refusals: std::sync::Mutex::default(),
            dead: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Reports moved to the dead-letter folder since start.
    #[must_use]
    pub fn dead_letters(&self) -> u64 {
        self.dead.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts an error answer for `path`; after [`ATTEMPTS`] the report is moved aside, so
    /// one report the collector keeps refusing never holds the ones behind it.
    async fn refused_again(&self, path: &Path, why: &str) {
        {
            let mut refusals = self
                .refusals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = refusals.entry(path.to_path_buf()).or_insert(0);
            *n += 1;
            if *n < ATTEMPTS {
                return;
            }
            refusals.remove(path);
        }
        let buried = path.to_path_buf();
        match self.on_spool(move |s| s.bury(&buried)).await {
            Ok(dead) => {
                self.dead.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    "{} was refused {ATTEMPTS} times ({why}): moved to {} and not sent again",
                    path.display(),
                    dead.display()
                );
            }
            Err(e) => tracing::warn!(
                "{} was refused {ATTEMPTS} times ({why}) and cannot be moved aside: {e}",
                path.display()
            ),
        }
    }

    /// Runs `f` on the spool from a blocking thread: its calls wait on the disk.
    async fn on_spool<T: Send + 'static>(&self, f: impl FnOnce(&Spool) -> T + Send + 'static) -> T {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || f(&spool))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Spooled reports, oldest first.
    async fn spooled(&self) -> Vec<PathBuf> {
        self.on_spool(Spool::list).await
    }

    /// Removes a sent or refused report.
    async fn remove(&self, path: &Path) {
        let path = path.to_path_buf();
        self.on_spool(move |s| s.remove(&path)).await;
    }

    /// Keeps at most `limit` reports waiting.
    #[must_use]
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.spool.limit = limit;
        self
    }

    /// At the limit, refuses a new report rather than dropping the oldest (a relay's queue:
    /// what it holds was acknowledged to its agents).
    #[must_use]
    pub fn refusing_when_full(mut self) -> Self {
        self.spool.refuse_when_full = true;
        self
    }

    /// Lets a flush take as long as it needs (a relay's forwarding loop).
    #[must_use]
    pub fn unbounded(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Spools `report`, then sends everything spooled. Returns a line saying how it went.
    pub async fn deliver(&self, report: &Report) -> Outcome {
        let undelivered = |why: String| Outcome {
            line: format!("report not spooled, not sent: {why}"),
            delivered: false,
        };
        let body = match serde_json::to_vec(report) {
            Ok(b) => b,
            Err(e) => return undelivered(e.to_string()),
        };
        let id = report.id.clone();
        let dropped = match self.on_spool(move |s| s.enqueue(&id, &body, None)).await {
            Ok(dropped) => dropped,
            Err(e) => return undelivered(e.to_string()),
        };
        let f = self.flush().await;
        let delivered = !self
            .spooled()
            .await
            .iter()
            .any(|p| spooled_id(p) == Some(report.id.as_str()));
        let mut line = format!("{} report(s) sent to {}", f.sent, self.url);
        if f.waiting > 0 {
            line = format!(
                "{line}; {} kept in {} for the next run ({})",
                f.waiting,
                self.spool.dir.display(),
                f.stopped.unwrap_or_default()
            );
        }
        if dropped > 0 {
            line = format!("{line}; spool full: dropped the {dropped} oldest");
        }
        Outcome { line, delivered }
    }

    /// Adds the report `body` (whose id is `id`) to the spool; returns how many of the
    /// oldest had to go to stay within the limit.
    ///
    /// # Errors
    /// When the spool cannot be written.
    pub fn enqueue(&self, id: &str, body: &[u8]) -> Result<usize, SpoolError> {
        self.spool.enqueue(id, body, None)
    }

    /// As [`Self::enqueue`], with the agent's key id and signature kept beside the body, so
    /// a relay forwards the proof it was given (it cannot make one).
    ///
    /// # Errors
    /// When the spool cannot be written.
    pub fn enqueue_signed(
        &self,
        id: &str,
        body: &[u8],
        proof: &Proof,
    ) -> Result<usize, SpoolError> {
        self.spool.enqueue(id, body, Some(proof))
    }

    /// The collector's URL without its route.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client, for a relay's enrolments.
    #[must_use]
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the spooled reports, oldest first, until one cannot go now. With an identity,
    /// the key is enrolled first when the collector does not know it yet.
    pub async fn flush(&self) -> Flushed {
        if let Some(identity) = &self.identity {
            if !identity.enrolled(&self.base) {
                match identity.enrol(&self.client, &self.base).await {
                    Ok(line) => tracing::info!("{line}"),
                    Err(why) => {
                        return Flushed {
                            sent: 0,
                            waiting: self.spooled().await.len(),
                            stopped: Some(why.to_string()),
                        };
                    }
                }
            }
        }
        let mut sent = 0usize;
        let mut stopped = None;
        let deadline = self.budget.map(|b| std::time::Instant::now() + b);
        let out_of_time = || {
            Fate::Later(format!(
                "sending took {} s: the rest waits for the next run",
                BUDGET.as_secs()
            ))
        };
        for path in self.spooled().await {
            let attempt = self.send(&path);
            let result = match deadline {
                Some(d) if std::time::Instant::now() >= d => Err(out_of_time()),
                Some(d) => tokio::time::timeout_at(d.into(), attempt)
                    .await
                    .unwrap_or_else(|_| Err(out_of_time())),
                None => attempt.await,
            };
            match result {
                Ok(()) => {
                    self.remove(&path).await;
                    sent += 1;
                }
                Err(Fate::Refused(why)) => {
                    tracing::warn!(
                        "the collector refused {} for good ({why}): dropping it",
                        path.display()
                    );
                    self.remove(&path).await;
                }
                Err(Fate::Later(why)) => {
                    stopped = Some(why);
                    break;
                }
                Err(Fate::Rejected(why)) => {
                    // The collector answered: the next report may fare better.
                    self.refused_again(&path, &why).await;
                    stopped = Some(why);
                }
                Err(Fate::Foreign) => {
                    tracing::warn!(
                        "{} is not a report probe spooled: left alone (neither sent nor removed)",
                        path.display()
                    );
                }
            }
        }
        Flushed {
            sent,
            waiting: self.spooled().await.len(),
            stopped,
        }
    }

    async fn send(&self, path: &Path) -> Result<(), Fate> {
        let id = spooled_id(path).unwrap_or_default();
        let file = path.to_path_buf();
        let (body, kept) = self
            .on_spool(move |_| spool::read(&file))
            .await
            .map_err(|e| Fate::Later(e.to_string()))?;
        // The name says probe wrote it; the content must agree before it goes anywhere.
        if !written_by_probe(&body, id) {
            return Err(Fate::Foreign);
        }
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            let now = auth::now();
            request = request
                .header(TIMESTAMP_HEADER, now.to_string())
                .header(SIGNATURE_HEADER, token.sign(now, &body));
        }
        let proof = match &self.identity {
            Some(identity) => Some(Proof {
                key_id: identity.key().id(),
                signature: identity
                    .key()
                    .sign(&crate::identity::wire::report_message(&body)),
            }),
            None => kept,
        };
        if let Some(proof) = proof {
            request = request
                .header(KEY_HEADER, proof.key_id)
                .header(KEY_SIGNATURE_HEADER, proof.signature);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Fate::Later(format!("collector unreachable: {}", innermost(&e))))?;
        let status = response.status().as_u16();
        if status == 401 {
            if let Some(identity) = &self.identity {
                let answer = read_limited(response, 4096).await;
                let code = serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_string));
                if code.as_deref() == Some("unknown-key") {
                    // The collector lost or forgot the enrolment: enrol again, then resend.
                    identity.forget();
                    return Err(Fate::Later(
                        "the collector does not know this agent's key: it is enrolled again on the next send".into(),
                    ));
                }
                return Err(Fate::Rejected(format!(
                    "collector answered HTTP 401: {}",
                    String::from_utf8_lossy(&answer)
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(300)
                        .collect::<String>()
                )));
            }
        }
        match status {
            200..=299 => {
                // Only a collector's answer naming this report as stored (now or before)
                // acknowledges it; any other 2xx (a proxy's page) does not.
                let answer = read_limited(response, 4096).await;
                let ack: Option<Ack> = serde_json::from_slice(&answer).ok();
                match ack {
                    Some(a) if a.id == id => Ok(()),
                    _ => Err(Fate::Later(format!(
                        "HTTP {status} without the collector's acknowledgement of {id}: is --report-to a probe collector?"
                    ))),
                }
            }
            300..=399 => {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(
                        || "nowhere".to_string(),
                        |l| crate::terminal::safe(l).into_owned(),
                    );
                Err(Fate::Later(format!(
                    "the collector answered HTTP {status} redirecting to {location}: reports are not sent on through redirects; give --report-to the collector's own URL"
                )))
            }
            400 | 413 | 422 => Err(Fate::Refused(format!("HTTP {status}"))),
            _ => Err(Fate::Rejected(format!("collector answered HTTP {status}"))),
        }
    }
}

/// The collector's answer to a stored report.
#[derive(serde::Deserialize)]
struct Ack {
    id: String,
    #[expect(
        dead_code,
        reason = "present in every acknowledgement; its value is not needed"
    )]
    stored: bool,
}

/// An agent's proof of a report: its key's id and signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proof {
    /// The key's id.
    pub key_id: String,
    /// Its signature of the body, base64.
    pub signature: String,
}

/// The client every POST that leaves probe goes through (reports, alerts): `timeout` for
/// each request, and a redirect never followed: a 301/302 would turn the POST into a GET
/// whose 2xx acknowledges nothing, and a 307 would send the signed body to another host.
///
/// # Errors
/// When the client cannot be built.
pub fn post_client(
    tls: rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
}

/// At most `limit` bytes (and a chunk) of a response body: an answer is small, whoever
/// sends it.
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            break;
        }
    }
    body
}

/// Whether `body` is a probe report with the id its file name gives.
fn written_by_probe(body: &[u8], id: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        schema: &'a str,
        id: &'a str,
    }
    serde_json::from_slice::<Head<'_>>(body)
        .is_ok_and(|h| h.schema == crate::model::SCHEMA && h.id == id)
}

enum Fate {
    /// Never acceptable: drop it.
    Refused(String),
    /// The collector is not there: stop, and try everything again on the next run.
    Later(String),
    /// The collector answered with an error: try this one again later, the next one now.
    Rejected(String),
    /// Named like a spooled report but not one: left where it is, untouched.
    Foreign,
}

/// Writes each verdict as one marked, compact JSON line to /dev/console (root only), where
/// the EC2 API's GetConsoleOutput can read it back.
pub fn to_console(report: &Report) {
    use std::io::Write;
    let mut console = match std::fs::OpenOptions::new()
        .append(true)
        .open("/dev/console")
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("--console: cannot open /dev/console ({e}): run as root");
            return;
        }
    };
    for line in console_lines(report) {
        let _ = writeln!(console, "{line}");
    }
}

/// One line per target: the marker, then the verdict as compact JSON.
#[must_use]
pub fn console_lines(report: &Report) -> Vec<String> {
    ConsoleLine::of(report)
        .iter()
        .map(ConsoleLine::render)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CONSOLE_MARKER;

    #[test]
    fn console_lines_are_marked_compact_json_one_per_target() {
        let report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report.json")).unwrap();
        let lines = console_lines(&report);
        assert_eq!(lines.len(), report.targets.len());
        let (marker, json) = lines[0].split_once(' ').unwrap();
        assert_eq!(marker, CONSOLE_MARKER);
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["id"], report.id.as_str());
        assert_eq!(v["target"], "cloudformation");
        assert_eq!(v["path"], "interface-endpoint");
    }
}
