//! A cell's history: `GET /v1/history?instance=&target=&since=&limit=` (its verdicts over
//! time, as JSON), `GET /v1/uptime?instance=&target=&since=` (its hours, [`super::uptime`])
//! and `GET /cell?instance=&target=` (the page: its uptime over a year, its timeline as bars,
//! as Gatus draws uptime, where packets and configuration parted, and the last report's
//! addresses, stages, the configuration's reasons and the diagnoses). All query the database
//! (the instance's reports or the cell's hours since a time, by index), from a blocking
//! thread, two at a time at most.

use super::dashboard::{STYLE, esc, query};
use super::db::hours::Hour;
use super::db::{DbError, Engine};
use super::server::{App, error};
use super::store::{instance_key, instance_label, parted};
use super::uptime;
use crate::model::{Report, TargetReport};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::Arc;

/// Points a query returns at most (the newest).
const MAX_POINTS: usize = 10_000;
/// Points the page draws (the newest).
const PAGE_POINTS: usize = 500;
/// Queries reading the database at once.
pub const SCANS: usize = 2;

/// One report's verdict for the cell.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Point {
    /// When the report was made (RFC 3339).
    pub at: String,
    /// The report's id.
    pub id: String,
    /// The path.
    pub path: crate::model::Path,
    /// Reachable or not.
    pub reachable: bool,
    /// The expectation was met.
    pub pass: bool,
    /// The path the configuration predicted, when it and the packets parted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parted: Option<crate::model::Path>,
    /// Why.
    pub reason: String,
}

/// A cell's history, oldest first, and its newest report's target.
#[derive(Debug, Default)]
pub struct History {
    /// The instance as shown.
    pub label: String,
    /// The points, oldest first.
    pub points: Vec<Point>,
    /// More matched than were kept.
    pub cut: bool,
    /// The newest report's part for the target.
    pub last: Option<(String, TargetReport)>,
}

/// Reads the cell's points from `db`: reports of `instance` (its id or host name) for
/// `target`, made at `since` or later, the newest `limit`. Blocks.
///
/// # Errors
/// When the database cannot be read.
pub fn read(
    db: &mut dyn Engine,
    instance: &str,
    target: &str,
    since: Option<&str>,
    limit: usize,
) -> Result<History, DbError> {
    let mut out = History::default();
    let mut points = Vec::new();
    // The target is in the document as a JSON string: a cheap test before parsing.
    let quoted = serde_json::to_string(target).unwrap_or_default();
    let since_ms = since.map_or(i64::MIN, super::db::millis);
    // Newest first, and no further than the newest `limit` (and one to know there are more).
    db.history(instance, since_ms, &mut |doc| {
        if !doc.contains(&quoted) {
            return true;
        }
        let Ok(report) = serde_json::from_str::<Report>(doc) else {
            return true;
        };
        if instance_key(&report) != instance {
            return true;
        }
        let Some(t) = report.targets.iter().find(|t| t.target == target) else {
            return true;
        };
        if points.len() == limit {
            out.cut = true;
            return false;
        }
        if out.last.is_none() {
            out.label = instance_label(&report);
            out.last = Some((report.started_at.clone(), t.clone()));
        }
        points.push(Point {
            at: report.started_at.clone(),
            id: report.id.clone(),
            path: t.verdict.path,
            reachable: t.verdict.reachable,
            pass: t.verdict.pass,
            parted: parted(t),
            reason: t.verdict.reason.clone(),
        });
        true
    })?;
    points.reverse();
    out.points = points;
    Ok(out)
}

/// The query of both routes.
#[derive(serde::Deserialize)]
pub struct Cell {
    instance: Option<String>,
    target: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

/// A `since=` that is neither a time nor a duration.
#[derive(Debug, thiserror::Error)]
#[error(
    "since={:?}: give a time (2026-12-04T10:00:00Z) or a duration back from now (24h)",
    crate::terminal::safe(.0)
)]
struct BadSince(String);

/// `since` as RFC 3339: a time as given, or a duration back from now (`24h`).
fn since(text: Option<&str>) -> Result<Option<String>, BadSince> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if humantime::parse_rfc3339_weak(text).is_ok() {
        return Ok(Some(text.to_string()));
    }
    let ago = humantime::parse_duration(text).map_err(|_| BadSince(text.to_string()))?;
    let at = std::time::SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(std::time::UNIX_EPOCH);
    Ok(Some(humantime::format_rfc3339_seconds(at).to_string()))
}

/// Runs `read` (given a connection to the database, the instance, the target and the time
/// from which to read, RFC 3339), for those who may read, on a blocking thread, at most
/// [`SCANS`] at once.
async fn run<T: Send + 'static>(
    app: &App,
    headers: &HeaderMap,
    q: &Cell,
    read: impl FnOnce(&mut dyn Engine, &str, &str, Option<&str>) -> Result<T, DbError> + Send + 'static,
) -> Result<T, Response> {
    if let Some(refusal) = app.reads.refusal(headers) {
        return Err(refusal);
    }
    let (Some(instance), Some(target)) = (q.instance.clone(), q.target.clone()) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "give instance= (an instance id or host name) and target=",
        ));
    };
    let since =
        since(q.since.as_deref()).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let Ok(_turn) = app.scans.acquire().await else {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "stopping"));
    };
    let database = app.store.database().clone();
    tokio::task::spawn_blocking(move || {
        read(
            database.attach()?.as_mut(),
            &instance,
            &target,
            since.as_deref(),
        )
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the database: {e}"),
        )
    })
}

/// `GET /v1/history`.
pub async fn api(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Cell>,
) -> Response {
    let limit = q.limit.unwrap_or(1_000).clamp(1, MAX_POINTS);
    let history = move |db: &mut dyn Engine, i: &str, t: &str, since: Option<&str>| {
        read(db, i, t, since, limit)
    };
    match run(&app, &headers, &q, history).await {
        Ok(h) => axum::Json(serde_json::json!({
            "instance": q.instance,
            "target": q.target,
            "points": h.points,
            "cut": h.cut,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `GET /v1/uptime`: the cell's hours, a year back unless `since=` says otherwise.
pub async fn uptime(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Cell>,
) -> Response {
    let hours = |db: &mut dyn Engine, i: &str, t: &str, since: Option<&str>| {
        let since_ms = since.map_or_else(|| now_ms() - uptime::YEAR_MS, super::db::millis);
        uptime::read(db, i, t, since_ms)
    };
    match run(&app, &headers, &q, hours).await {
        Ok((hours, cut)) => axum::Json(uptime::Answer {
            instance: q.instance.as_deref(),
            target: q.target.as_deref(),
            hours: uptime::shown(&hours),
            cut,
        })
        .into_response(),
        Err(r) => r,
    }
}

fn now_ms() -> i64 {
    super::db::millis_of(std::time::SystemTime::now())
}

/// `GET /cell`.
pub async fn page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Cell>,
) -> Response {
    let now = now_ms();
    let both = move |db: &mut dyn Engine, i: &str, t: &str, since: Option<&str>| {
        // A year is fewer hours than a query gives: none is cut.
        let (hours, _) = uptime::read(db, i, t, now - uptime::YEAR_MS)?;
        Ok((read(db, i, t, since, PAGE_POINTS)?, hours))
    };
    match run(&app, &headers, &q, both).await {
        Ok((h, hours)) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render(
                q.instance.as_deref().unwrap_or_default(),
                q.target.as_deref().unwrap_or_default(),
                &h,
                &hours,
                now,
            ),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// The cell's page at `now_ms`: its reports' timeline and the last report (`h`), and its
/// uptime from `hours`. Everything from reports is escaped.
#[must_use]
pub fn render(instance: &str, target: &str, h: &History, hours: &[Hour], now_ms: i64) -> String {
    let label = if h.label.is_empty() {
        instance
    } else {
        &h.label
    };
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\"><title>probe: {} to {}</title><style>{STYLE}{}</style></head><body><p><a href=\"/\">the VPC at a glance</a></p><h1>{} &rarr; {}</h1>",
        esc(label),
        esc(target),
        ".bars{display:flex;gap:1px;height:2.2em;margin:1em 0}.bar{flex:1;min-width:2px;max-width:12px}.bar.parted{border:0;border-bottom:4px solid #c60}.bar.none{background:#f4f4f4}",
        esc(label),
        esc(target),
    );
    if h.points.is_empty() && hours.is_empty() {
        html.push_str(
            "<p id=\"none\">No report of this instance names this target.</p></body></html>",
        );
        return html;
    }
    uptime::render(&mut html, hours, now_ms);
    if h.points.is_empty() {
        html.push_str("<p id=\"none\">No report of this instance for this target is kept (retention); its hours are above.</p></body></html>");
        return html;
    }
    html.push_str("<h2>Each report kept</h2>");
    let _ = write!(
        html,
        "<p>{} reports{}, {} to {}; a bar each, coloured by path, outlined where the expectation failed, underlined where the configuration predicted another path.</p><div class=\"bars\" id=\"timeline\">",
        h.points.len(),
        if h.cut { " (the newest)" } else { "" },
        esc(&h.points[0].at),
        esc(&h.points[h.points.len() - 1].at),
    );
    for p in &h.points {
        let _ = write!(
            html,
            "<span class=\"bar {}{}{}\" title=\"{} {}{}: {}\"></span>",
            esc(p.path.as_str()),
            if p.pass { "" } else { " fail" },
            if p.parted.is_some() { " parted" } else { "" },
            esc(&p.at),
            esc(p.path.as_str()),
            p.parted.map_or(String::new(), |c| format!(
                " (config says {})",
                esc(c.as_str())
            )),
            esc(&p.reason),
        );
    }
    html.push_str("</div>");
    if let Some((at, t)) = &h.last {
        last_report(&mut html, instance, at, t);
    }
    html.push_str("</body></html>");
    html
}

/// The newest report's verdict, addresses and stages, the configuration's reasons and the
/// diagnoses.
fn last_report(html: &mut String, instance: &str, at: &str, t: &TargetReport) {
    let v = &t.verdict;
    let _ = write!(
        html,
        "<h2>The last report, {}</h2><p id=\"verdict\" class=\"{}\"><b>{}</b> {}{}: {}</p>",
        esc(at),
        esc(v.path.as_str()),
        if v.pass { "PASS" } else { "FAIL" },
        if v.reachable { "reachable via " } else { "" },
        esc(v.path.as_str()),
        esc(&v.reason),
    );
    html.push_str("<table id=\"addresses\"><tr><th>address</th><th>class</th><th>ping</th>");
    for phase in crate::model::Phase::CONNECTION {
        let _ = write!(html, "<th>{}</th>", phase.as_str());
    }
    html.push_str("</tr>");
    for a in &t.addresses {
        html.push_str("<tr>");
        for cell in crate::output::table::address_cells(a) {
            let _ = write!(html, "<td>{}</td>", esc(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    if let Some(p) = &v.predicted {
        let _ = write!(
            html,
            "<h2>What the configuration says</h2><p id=\"predicted\">{}</p><ul id=\"because\">",
            esc(&p.says)
        );
        for f in &p.because {
            let _ = write!(
                html,
                "<li>{} {}</li>",
                if f.allows { "&#10003;" } else { "&#10007;" },
                esc(&f.says)
            );
        }
        html.push_str("</ul>");
    }
    if !v.diagnoses.is_empty() {
        html.push_str("<h2>Diagnoses</h2><ul id=\"diagnoses\">");
        for d in &v.diagnoses {
            let _ = write!(
                html,
                "<li><code>{}</code> {}</li>",
                esc(d.code.as_str()),
                esc(&d.message)
            );
        }
        html.push_str("</ul>");
    }
    let _ = write!(
        html,
        "<p><a href=\"/v1/history?instance={}&amp;target={}\">this history as JSON</a></p>",
        query(instance),
        query(&t.target)
    );
}
