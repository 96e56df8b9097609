//! A cell's uptime over a year, read from its hours ([`super::db::hours`]), not its reports:
//! `GET /v1/uptime?instance=&target=&since=` (the hours, as JSON) and the cell page's
//! section (a bar a day over the last 90 days, and the share of reports that met the
//! expectation over the last day, week, month and year).

use super::dashboard::esc;
use super::db::hours::{HOUR_MS, Hour, hour_of};
use super::db::{DbError, Engine};
use std::fmt::Write as _;

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * HOUR_MS;
/// Hours a query returns at most (the newest): 400 days, as long as they are kept.
pub const MAX_HOURS: i64 = 400 * 24;
/// How far back a query reads without `since=`, and the page: a year.
pub const YEAR_MS: i64 = 365 * DAY_MS;
/// Days the page draws.
const DAYS_DRAWN: i64 = 90;
/// The page's shares: over what, and how long back.
const SHARES: [(&str, i64); 4] = [
    ("day", DAY_MS),
    ("7 days", 7 * DAY_MS),
    ("30 days", 30 * DAY_MS),
    ("365 days", YEAR_MS),
];

/// The cell's hours from the one `since_ms` falls in on, the newest [`MAX_HOURS`], oldest
/// first, and whether older ones were left out. Blocks.
///
/// # Errors
/// When the database cannot be read.
pub fn read(
    db: &mut dyn Engine,
    instance: &str,
    target: &str,
    since_ms: i64,
) -> Result<(Vec<Hour>, bool), DbError> {
    let mut hours = Vec::new();
    // One more, to know there are more.
    db.hours(
        instance,
        target,
        hour_of(since_ms),
        MAX_HOURS + 1,
        &mut |h| {
            hours.push(h);
        },
    )?;
    let cut = hours.len() > usize::try_from(MAX_HOURS).unwrap_or(usize::MAX);
    hours.truncate(usize::try_from(MAX_HOURS).unwrap_or(usize::MAX));
    hours.reverse();
    Ok((hours, cut))
}

/// What `GET /v1/uptime` answers.
#[derive(serde::Serialize)]
pub struct Answer<'a> {
    /// The instance asked for.
    pub instance: Option<&'a str>,
    /// The target asked for.
    pub target: Option<&'a str>,
    /// Its hours, oldest first.
    pub hours: Vec<Shown<'a>>,
    /// Older hours matched than were given.
    pub cut: bool,
}

/// An hour as the API gives it.
#[derive(serde::Serialize)]
pub struct Shown<'a> {
    /// When it starts (RFC 3339).
    hour: String,
    reports: i64,
    passed: i64,
    parted: i64,
    path: &'a str,
}

/// `hours` as the API gives them.
#[must_use]
pub fn shown(hours: &[Hour]) -> Vec<Shown<'_>> {
    hours
        .iter()
        .map(|h| Shown {
            hour: rfc3339(h.hour_ms),
            reports: h.reports,
            passed: h.passed,
            parted: h.parted,
            path: &h.path,
        })
        .collect()
}

fn rfc3339(ms: i64) -> String {
    let at = u64::try_from(ms / 1000).map_or(std::time::UNIX_EPOCH, |s| {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
    });
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The hours of `hours` (oldest first) that start from `from_ms` and before `to_ms`.
fn between(hours: &[Hour], from_ms: i64, to_ms: i64) -> &[Hour] {
    let first = hours.partition_point(|h| h.hour_ms < from_ms);
    let end = hours.partition_point(|h| h.hour_ms < to_ms);
    &hours[first..end.max(first)]
}

/// The sums of `hours`: reports, passed, parted, and the newest path (none without hours).
fn sum(hours: &[Hour]) -> Option<(i64, i64, i64, &str)> {
    hours.iter().fold(None, |acc, h| {
        let (r, p, x, _) = acc.unwrap_or((0, 0, 0, ""));
        Some((r + h.reports, p + h.passed, x + h.parted, h.path.as_str()))
    })
}

/// `passed` of `reports` as a percentage with a tenth, rounded down: 100 % only when every
/// report met the expectation.
fn percent(passed: i64, reports: i64) -> String {
    let tenths = passed.saturating_mul(1000) / reports.max(1);
    format!("{}.{} %", tenths / 10, tenths % 10)
}

/// The page's section for `hours` (oldest first) at `now_ms`. Everything stored is escaped.
pub fn render(html: &mut String, hours: &[Hour], now_ms: i64) {
    html.push_str("<h2>Uptime</h2><p id=\"uptime\">Reports that met the expectation:");
    for (i, (name, back)) in SHARES.iter().enumerate() {
        let from = now_ms - back;
        let sep = if i == 0 { " " } else { "; " };
        // The hours that end after `from`.
        match sum(between(hours, from - HOUR_MS + 1, i64::MAX)) {
            Some((reports, passed, _, _)) => {
                let _ = write!(
                    html,
                    "{sep}<b>{}</b> of {reports} over the last {name}",
                    percent(passed, reports)
                );
            }
            None => {
                let _ = write!(html, "{sep}none over the last {name}");
            }
        }
    }
    let _ = write!(
        html,
        ".</p><p>A bar a day over the last {DAYS_DRAWN} days (UTC), coloured by the path of its newest report, outlined where a report failed the expectation, underlined where one parted from the configuration.</p><div class=\"bars\" id=\"days\">"
    );
    let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
    for back in (0..DAYS_DRAWN).rev() {
        let start = today - back * DAY_MS;
        let day = rfc3339(start);
        let day = day.get(..10).unwrap_or(&day);
        match sum(between(hours, start, start + DAY_MS)) {
            Some((reports, passed, parted, path)) => {
                let _ = write!(
                    html,
                    "<span class=\"bar {}{}{}\" title=\"{day}: {reports} reports, {} met the expectation, {parted} parted from the configuration\"></span>",
                    esc(path),
                    if passed < reports { " fail" } else { "" },
                    if parted > 0 { " parted" } else { "" },
                    percent(passed, reports),
                );
            }
            None => {
                let _ = write!(
                    html,
                    "<span class=\"bar none\" title=\"{day}: no report\"></span>"
                );
            }
        }
    }
    html.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(hour_ms: i64, reports: i64, passed: i64, path: &str) -> Hour {
        Hour {
            hour_ms,
            reports,
            passed,
            parted: reports - passed,
            path: path.to_string(),
        }
    }

    #[test]
    fn a_share_is_rounded_down_so_only_all_is_100() {
        assert_eq!(percent(120, 120), "100.0 %");
        assert_eq!(percent(119_999, 120_000), "99.9 %");
        assert_eq!(percent(0, 0), "0.0 %");
    }

    #[test]
    fn days_sum_their_hours_and_days_without_a_report_say_so() {
        let now: i64 = 1_764_583_200_000 + 30 * 60_000; // 2025-12-01T10:30:00Z
        let today = now.div_euclid(DAY_MS) * DAY_MS;
        let hours = [
            hour(today - DAY_MS, 120, 120, "public"),
            hour(today, 120, 118, "public"),
            hour(today + 9 * HOUR_MS, 120, 120, "gateway-endpoint"),
        ];
        let mut html = String::new();
        render(&mut html, &hours, now);
        assert!(
            html.contains(
                "<b>99.1 %</b> of 240 over the last day; <b>99.4 %</b> of 360 over the last 7 days"
            ),
            "{html}"
        );
        assert_eq!(html.matches("class=\"bar none\"").count(), 88, "{html}");
        assert!(html.contains(
            "<span class=\"bar gateway-endpoint fail parted\" title=\"2025-12-01: 240 reports, 99.1 % met"
        ));
        assert!(html.contains("<span class=\"bar public\" title=\"2025-11-30: 120 reports"));
    }

    #[test]
    fn without_hours_each_share_says_none() {
        let mut html = String::new();
        render(&mut html, &[], 0);
        assert!(html.contains("none over the last day; none over the last 7 days"));
    }
}
