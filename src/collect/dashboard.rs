//! `GET /`: the whole VPC at a glance. Instances by subnet down, targets across, each cell
//! the latest path with its colour and age; below, the verdicts that changed. The page
//! reloads itself every five seconds.

use super::store::Views;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Instances shown at most: the page stays small whatever the VPC's size.
pub const MAX_INSTANCES: usize = 200;
/// Targets (columns) shown at most.
pub const MAX_TARGETS: usize = 40;
/// Instances whose bootstrap is stuck shown at most.
const MAX_STUCK: usize = 100;

/// The page, rendered at most once a second and only when something changed, whoever asks:
/// many viewers cost one rendering.
#[derive(Default)]
pub struct Cache {
    page: Mutex<Option<(u64, u64, Arc<String>)>>,
}

impl Cache {
    /// The page for `v` at `now` (Unix seconds): the cached one when neither the views (by
    /// their version) nor the second changed.
    pub fn page(&self, v: &Views, now: u64) -> Arc<String> {
        let mut page = self
            .page
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*page {
            Some((version, at, html)) if *version == v.version && *at == now => html.clone(),
            _ => {
                let html = Arc::new(render(v, now));
                *page = Some((v.version, now, html.clone()));
                html
            }
        }
    }
}

/// The pages' style: each path's colour, the same on every page.
pub const STYLE: &str = concat!(
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}",
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.4em .7em;text-align:left}",
    "td.cell{font-weight:600}.age{font-weight:400;color:#555;font-size:12px}",
    ".interface-endpoint{background:#c8f0c8}.gateway-endpoint{background:#bfe3ff}",
    ".vpc,.peering,.transit-gateway,.private{background:#e6f5d0}",
    ".public,.nat-gateway{background:#fff3bf}.special{background:#eee}",
    ".unreachable,.dns-failed{background:#ffc9c9}.fail{outline:2px solid #c00}",
    ".parted{border:3px dashed #c60}.config{font-weight:400;color:#c60;font-size:12px}",
    "td.cell a{color:inherit;text-decoration:none}",
);

/// Renders the page; `now` is Unix seconds, for the ages.
#[must_use]
pub fn render(v: &Views, now: u64) -> String {
    // The instances that reported last, then by subnet and label.
    let mut latest: Vec<(&str, &String)> = v
        .hosts
        .iter()
        .filter(|(_, h)| !h.last.is_empty())
        .map(|(key, h)| (h.last.as_str(), key))
        .collect();
    let total = latest.len();
    if total > MAX_INSTANCES {
        latest.select_nth_unstable_by(MAX_INSTANCES - 1, |a, b| b.0.cmp(a.0));
        latest.truncate(MAX_INSTANCES);
    }
    let mut instances: Vec<(&str, &str, &String)> = latest
        .into_iter()
        .map(|(_, key)| {
            let host = v.hosts.get(key);
            let label = host.map_or(key.as_str(), |h| h.label.as_str());
            let subnet = host.and_then(|h| h.subnet.as_deref()).unwrap_or("");
            (subnet, label, key)
        })
        .collect();
    instances.sort();
    let all_targets: BTreeSet<&String> = v.matrix.keys().map(|(_, t)| t).collect();
    let hidden_targets = all_targets.len().saturating_sub(MAX_TARGETS);
    let targets: Vec<&String> = all_targets.into_iter().take(MAX_TARGETS).collect();
    let mut html = String::from(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">",
        "<title>probe: the VPC at a glance</title><style>",
    ));
    html.push_str(STYLE);
    html.push_str("</style></head><body><h1>probe: the VPC at a glance</h1>");
    if total == 0 && v.bootstraps.is_empty() {
        html.push_str("<p id=\"empty\">No report yet. Run <code>probe check ... --report-to URL --token-file FILE</code> on an instance.</p>");
    } else if total > 0 {
        html.push_str("<table id=\"matrix\"><tr><th>instance</th><th>subnet</th>");
        for t in &targets {
            let _ = write!(html, "<th>{}</th>", esc(t));
        }
        html.push_str("</tr>");
        for (subnet, label, key) in &instances {
            let _ = write!(html, "<tr><th>{}</th><td>{}</td>", esc(label), esc(subnet));
            for t in &targets {
                match v.matrix.get(&((*key).clone(), (*t).clone())) {
                    Some(c) => {
                        let _ = write!(
                            html,
                            "<td class=\"cell {}{}{}\" data-instance=\"{}\" data-target=\"{}\" data-path=\"{}\"><a href=\"/cell?instance={}&amp;target={}\">{}</a>{}<div class=\"age\">{}</div></td>",
                            esc(c.path.as_str()),
                            if c.pass { "" } else { " fail" },
                            if c.parted.is_some() { " parted" } else { "" },
                            esc(label),
                            esc(t),
                            esc(c.path.as_str()),
                            query(key),
                            query(t),
                            esc(c.path.as_str()),
                            // Packets and configuration part: the finding to look at first.
                            c.parted.map_or(String::new(), |p| format!(
                                "<div class=\"config\">config says {}</div>",
                                esc(p.as_str())
                            )),
                            age(&c.at, now)
                        );
                    }
                    None => html.push_str("<td></td>"),
                }
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>");
        if total > instances.len() || hidden_targets > 0 {
            let _ = write!(
                html,
                "<p id=\"hidden\">Showing the {} instances that reported last of {total}, and {} of {} targets: the API (/v1/reports?instance=...) has the rest.</p>",
                instances.len(),
                targets.len(),
                targets.len() + hidden_targets
            );
        }
    }
    stuck_table(&mut html, v);
    changes_list(&mut html, v);
    html.push_str("</ul></body></html>\n");
    html
}

/// The instances whose bootstrap has not installed probe: the ones an operator most needs to
/// see, since they never report.
fn stuck_table(html: &mut String, v: &Views) {
    let stuck: Vec<_> = v
        .bootstraps
        .values()
        .filter(|(_, b)| !b.done())
        .take(MAX_STUCK)
        .collect();
    if !stuck.is_empty() {
        // The instances the operator most needs to see: probe never got there.
        html.push_str("<h2>Not installed yet</h2><table id=\"bootstrap\"><tr><th>instance</th><th>subnet</th><th>last attempt</th><th>source</th><th>detail</th></tr>");
        for (host, b) in stuck {
            let _ = write!(
                html,
                "<tr class=\"unreachable\" data-instance=\"{}\" data-result=\"{}\"><th>{}</th><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                esc(&host.label),
                esc(&b.result),
                esc(&host.label),
                esc(host.subnet.as_deref().unwrap_or("")),
                esc(&b.result),
                b.attempt.map(|n| format!(" (#{n})")).unwrap_or_default(),
                esc(b.source.as_deref().unwrap_or("")),
                esc(&b.detail)
            );
        }
        html.push_str("</table>");
    }
}

/// The verdicts that changed, newest first.
fn changes_list(html: &mut String, v: &Views) {
    html.push_str("<h2>Changes</h2><ul id=\"changes\">");
    for c in v.changes.iter().rev() {
        let _ = write!(
            html,
            "<li>{} -&gt; {}: {} -&gt; {} at {}</li>",
            esc(&c.instance),
            esc(&c.target),
            esc(c.from.as_str()),
            esc(c.to.as_str()),
            esc(c.at.get(11..16).unwrap_or(&c.at))
        );
    }
}

fn age(at: &str, now: u64) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(at) else {
        return String::new();
    };
    let then = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(then);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

/// Percent-encodes a query value (every byte but unreserved ones), so a target or an
/// instance from a report cannot end the attribute or the query.
#[must_use]
pub fn query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// HTML-escapes text from reports, which come from the network.
#[must_use]
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::store::{Cell, Host};

    fn views(instances: usize) -> Views {
        let mut v = Views::default();
        for i in 0..instances {
            let key = format!("i-{i:08}");
            let at = format!(
                "2026-11-25T{:02}:{:02}:{:02}Z",
                i / 3600,
                (i / 60) % 60,
                i % 60
            );
            v.hosts.insert(
                key.clone(),
                Host {
                    label: format!("web-{i} ({key})"),
                    subnet: Some("subnet-1".into()),
                    last: at.clone(),
                },
            );
            v.matrix.insert(
                (key, "s3".into()),
                Cell {
                    path: crate::model::Path::Public,
                    reachable: true,
                    pass: true,
                    at,
                    // Every seventh cell: packets through where the configuration blocks.
                    parted: (i % 7 == 0).then_some(crate::model::Path::Unreachable),
                },
            );
        }
        v
    }

    /// Issue 9, 7: with 50,000 instances the page was 235 MB and took 6-7 s.
    #[test]
    fn the_page_stays_small_whatever_the_vpc_and_says_what_it_hides() {
        let v = views(50_000);
        let start = std::time::Instant::now();
        let page = render(&v, 0);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert!(page.len() < 200_000, "{} bytes", page.len());
        assert_eq!(page.matches("<tr><th>web-").count(), MAX_INSTANCES);
        assert!(page.contains("Showing the 200 instances that reported last of 50000"));
        // The newest are the ones shown.
        assert!(page.contains("web-49999 (i-00049999)"));
    }

    #[test]
    fn a_cell_where_packets_and_configuration_part_is_marked() {
        let page = render(&views(8), 0);
        assert_eq!(
            page.matches("cell public parted").count(),
            2,
            "cells 0 and 7"
        );
        assert_eq!(
            page.matches("<div class=\"config\">config says unreachable</div>")
                .count(),
            2
        );
    }

    #[test]
    fn many_viewers_cost_one_rendering_a_second() {
        let mut v = views(3);
        let cache = Cache::default();
        let a = cache.page(&v, 100);
        assert!(
            Arc::ptr_eq(&a, &cache.page(&v, 100)),
            "same second, same views"
        );
        assert!(!Arc::ptr_eq(&a, &cache.page(&v, 101)), "ages move on");
        v.version += 1;
        assert!(!Arc::ptr_eq(&cache.page(&v, 101), &cache.page(&v, 102)));
    }
}
