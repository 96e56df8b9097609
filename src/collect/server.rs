//! The collector's HTTP API: `POST /v1/reports` (signed, at most 1 MiB, validated, stored
//! durably before the answer), `GET /v1/reports`, `GET /metrics`, and the dashboard at `/`.

use super::enrich::Enricher;
use super::enrol::{Identities, Proven, Refusal};
use super::entry::{Entry, Invalid};
use super::limit::RateLimit;
use super::relay::Relay;
use super::signed;
use super::store::{Store, Stored, print_changes};
use super::{dashboard, metrics};
use crate::auth::{self, Token};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub use signed::{BODY_LIMIT, BODY_TIME};

/// What every handler shares.
pub struct App {
    /// Messages when verdicts change, when asked for.
    pub alerts: Option<Arc<super::alerts::Alerts>>,
    /// The durable store.
    pub store: Store,
    /// Turns to query the database for a history (see [`super::history::SCANS`]).
    pub scans: tokio::sync::Semaphore,
    /// The shared token; `None` only on loopback.
    pub token: Option<Token>,
    /// The per-source limit on posted reports, when on.
    pub limit: Option<RateLimit>,
    /// The forwarding queue, when this collector is a relay.
    pub relay: Option<Arc<Relay>>,
    /// Labels reports whose agent had no EC2 API, when this machine has credentials.
    pub enricher: Option<Enricher>,
    /// This executable and its sha256, served at /v1/probe by a relay.
    pub exe: Option<(std::path::PathBuf, String)>,
    /// The dashboard, rendered once for every viewer.
    pub page: dashboard::Cache,
    /// Who may read the dashboard, the API and the metrics.
    pub reads: Reads,
    /// Instance identities, when accepted.
    pub identities: Option<Arc<Identities>>,
    /// Reports must carry the token and an identity both.
    pub require_both: bool,
}

/// Who may read `/`, `GET /v1/reports` and `/metrics`: they show the VPC's layout.
pub enum Reads {
    /// Anyone who reaches the port (a collector on the operator's machine).
    Open,
    /// Only with this token, as `Authorization: Bearer TOKEN` or as a browser's password.
    Token(String),
    /// No one: a relay serves reports in and /v1/probe out only.
    Closed,
}

impl Reads {
    /// The refusal to send when the request's headers may not read.
    pub(super) fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        match self {
            Self::Open => None,
            Self::Closed => Some(error(
                StatusCode::FORBIDDEN,
                "a relay serves reports in and /v1/probe out only: give it --read-token-file to read its dashboard, API and metrics",
            )),
            Self::Token(token) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(credential);
                if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                    return None;
                }
                let mut refusal = error(
                    StatusCode::UNAUTHORIZED,
                    "reading needs the read token: Authorization: Bearer TOKEN (a browser asks for it as a password)",
                );
                refusal.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(
                        "Basic realm=\"probe collect\", charset=\"UTF-8\"",
                    ),
                );
                Some(refusal)
            }
        }
    }
}

/// The secret in an Authorization header: a bearer token, or a Basic password.
fn credential(value: &str) -> Option<String> {
    use base64::Engine as _;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let pair = base64::engine::general_purpose::STANDARD
        .decode(value.strip_prefix("Basic ")?.trim())
        .ok()?;
    let pair = String::from_utf8(pair).ok()?;
    Some(pair.split_once(':')?.1.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route(
            "/v1/reports",
            get(list).post(post.layer(from_fn_with_state(app.clone(), signed::gate))),
        )
        .route("/metrics", get(prometheus))
        .route("/v1/history", get(super::history::api))
        .route("/cell", get(super::history::page))
        .route("/v1/uptime", get(super::history::uptime))
        .route(
            crate::identity::wire::ENROL_PATH,
            get(super::enrolment::challenge).post(super::enrolment::enrol),
        )
        .route("/v1/probe", get(executable))
        .with_state(app)
}

/// A refusal with its reason, as JSON.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// An identity refusal: its reason, and its code for the agent to act on.
pub(super) fn refusal(status: StatusCode, why: &Refusal) -> Response {
    (
        status,
        axum::Json(json!({ "error": why.to_string(), "code": why.code() })),
    )
        .into_response()
}

async fn post(
    State(app): State<Arc<App>>,
    axum::Extension(proven): axum::Extension<Proven>,
    peer: Option<axum::Extension<super::listen::Peer>>,
    bytes: Bytes,
) -> Response {
    let mut entry = match Entry::parse(&bytes) {
        Ok(e) => e,
        Err(Invalid::Content(why)) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, why.to_string());
        }
        Err(why) => return error(StatusCode::BAD_REQUEST, why.to_string()),
    };
    if let Some(identities) = &app.identities {
        if let Err(why) = identities.admit(&proven, &entry.report) {
            identities.refused("a report", peer.map(|p| p.0.0), &why);
            return refusal(StatusCode::FORBIDDEN, &why);
        }
    }
    if let (Some(ids), Some(enricher), Some((instance, _, _))) =
        (&app.identities, &app.enricher, &proven.key)
    {
        let region = entry.report.agent.region.clone().unwrap_or_default();
        if let Some(info) = Box::pin(enricher.instance_cached(&region, instance)).await {
            if let Err(why) = super::enrol::Identities::agrees(&info, &entry.report) {
                ids.refused("a report", peer.map(|p| p.0.0), &why);
                return refusal(StatusCode::FORBIDDEN, &why);
            }
        }
    }
    entry.set_authenticated(proven.record());
    if let Some(enricher) = &app.enricher {
        Box::pin(enricher.label(&mut entry)).await;
    }
    let id = entry.report.id.clone();
    // A report proven by its agent's key goes on as the agent signed it (the relay cannot
    // sign it anew, and must not change what it measured); one proven by the token goes on
    // as stored, with this relay's labels, under the relay's token.
    let forward = app
        .relay
        .as_ref()
        .map(|_| match (&proven.key, &proven.signature) {
            (Some(_), Some(proof)) => (bytes.to_vec(), Some(proof.clone())),
            _ => (entry.doc().as_bytes().to_vec(), None),
        });
    let for_alerts = app.alerts.as_ref().map(|_| entry.report.clone());
    match app.store.put(entry).await {
        Ok((stored, changes)) => {
            if let (Some(alerts), Some(report), Stored::New) = (&app.alerts, &for_alerts, stored) {
                // The report is stored: a message that cannot be written is held back (said
                // here, not the report) until the next start, which finds its verdict not
                // told and writes it.
                if let Err(e) = alerts.observe(report).await {
                    tracing::error!("an alert is not written: {e}; the next start writes it");
                }
            }
            // Queued on every acknowledgement, a duplicate's too: an earlier copy may have
            // been stored but not queued (503), and the upstream stores each id once.
            if let (Some(relay), Some((line, proof))) = (&app.relay, forward) {
                // Files written and synced: off the async threads.
                let (relay, id) = (relay.clone(), id.clone());
                let queued =
                    tokio::task::spawn_blocking(move || relay.enqueue(&id, &line, proof.as_ref()))
                        .await;
                let why = match queued {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(why) = why {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("stored, but not queued for forwarding: {why}"),
                    );
                }
            }
            print_changes(&changes);
            let status = if stored == Stored::New {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                status,
                axum::Json(json!({ "id": id, "stored": stored == Stored::New })),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Deserialize)]
struct Filter {
    instance: Option<String>,
    target: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    if let Some(refusal) = app.reads.refusal(&headers) {
        return refusal;
    }
    let limit = f.limit.unwrap_or(100).min(1000);
    let views = app.store.views();
    let docs: Vec<&str> = views
        .recent
        .iter()
        .rev()
        .filter(|e| {
            f.instance.as_ref().is_none_or(|i| {
                super::store::instance_key(&e.report) == *i
                    || super::store::instance_label(&e.report).contains(i.as_str())
            })
        })
        .filter(|e| {
            f.target
                .as_ref()
                .is_none_or(|t| e.report.targets.iter().any(|x| &x.target == t))
        })
        .take(limit)
        .map(|e| e.doc())
        .collect();
    // The stored documents are JSON already: written out as they are, unknown fields and all.
    let body = format!("{{\"reports\":[{}]}}", docs.join(","));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A relay serves its own executable, so a private instance with no internet can fetch
/// probe from it. It is streamed from the file (never held in memory per request); the
/// sha256, computed once at start, lets the fetcher check what it got.
async fn executable(State(app): State<Arc<App>>) -> Response {
    let Some((path, sha)) = &app.exe else {
        return error(
            StatusCode::NOT_FOUND,
            "only a relay (probe collect --forward) serves its executable",
        );
    };
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {}: {e}", path.display()),
            );
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::HeaderName::from_static("x-probe-sha256"),
                sha.clone(),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}

/// Why a relay cannot serve its own executable.
#[derive(Debug, thiserror::Error)]
pub enum ExecutableError {
    /// The system does not say where it is.
    #[error("cannot find this executable: {0}")]
    Find(#[source] std::io::Error),
    /// It cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The executable.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// This executable and its sha256, for a relay's /v1/probe.
///
/// # Errors
/// When the executable cannot be found or read.
pub async fn this_executable() -> Result<(std::path::PathBuf, String), ExecutableError> {
    let path = std::env::current_exe().map_err(ExecutableError::Find)?;
    let read = path.clone();
    let sha = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read;
        let mut file = std::fs::File::open(&read)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        Ok(auth::hex(ctx.finish().as_ref()))
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    .map_err(|source| ExecutableError::Read {
        path: path.clone(),
        source,
    })?;
    Ok((path, sha))
}

async fn prometheus(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = app.reads.refusal(&headers) {
        return refusal;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(
            &app.store.views(),
            app.relay.as_ref().map(|r| r.dead_letters()),
        ) + &app
            .identities
            .as_ref()
            .map(|i| i.metrics())
            .unwrap_or_default()
            + &app.alerts.as_ref().map(|a| a.metrics()).unwrap_or_default(),
    )
        .into_response()
}

async fn dashboard(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = app.reads.refusal(&headers) {
        return refusal;
    }
    let page = app.page.page(&app.store.views(), auth::now());
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.as_str().to_owned(),
    )
        .into_response()
}
