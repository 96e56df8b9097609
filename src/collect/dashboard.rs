//! `GET /`: the whole VPC at a glance. Instances by subnet down, targets across, each cell
//! the latest path with its colour and age; below, the verdicts that changed. The page
//! reloads itself every five seconds.

use super::store::Views;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Renders the page; `now` is Unix seconds, for the ages.
#[must_use]
pub fn render(v: &Views, now: u64) -> String {
    // Instances by subnet, then by label.
    let mut instances: Vec<(&str, &str, &String)> = v
        .matrix
        .keys()
        .map(|(i, _)| i)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|key| {
            let host = v.hosts.get(key);
            let label = host.map_or(key.as_str(), |h| h.label.as_str());
            let subnet = host.and_then(|h| h.subnet.as_deref()).unwrap_or("");
            (subnet, label, key)
        })
        .collect();
    instances.sort();
    let targets: BTreeSet<&String> = v.matrix.keys().map(|(_, t)| t).collect();
    let mut html = String::from(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">",
        "<title>probe: the VPC at a glance</title><style>",
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.4em .7em;text-align:left}",
        "td.cell{font-weight:600}.age{font-weight:400;color:#555;font-size:12px}",
        ".interface-endpoint{background:#c8f0c8}.gateway-endpoint{background:#bfe3ff}",
        ".vpc,.private{background:#e6f5d0}.public{background:#fff3bf}.special{background:#eee}",
        ".unreachable,.dns-failed{background:#ffc9c9}.fail{outline:2px solid #c00}",
        "</style></head><body><h1>probe: the VPC at a glance</h1>",
    ));
    if instances.is_empty() && v.bootstraps.is_empty() {
        html.push_str("<p id=\"empty\">No report yet. Run <code>probe check ... --report-to URL --token-file FILE</code> on an instance.</p>");
    } else if !instances.is_empty() {
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
                            "<td class=\"cell {}{}\" data-instance=\"{}\" data-target=\"{}\" data-path=\"{}\">{}<div class=\"age\">{}</div></td>",
                            esc(&c.path),
                            if c.pass { "" } else { " fail" },
                            esc(label),
                            esc(t),
                            esc(&c.path),
                            esc(&c.path),
                            age(&c.at, now)
                        );
                    }
                    None => html.push_str("<td></td>"),
                }
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>");
    }
    let stuck: Vec<_> = v.bootstraps.values().filter(|(_, b)| !b.done()).collect();
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
    html.push_str("<h2>Changes</h2><ul id=\"changes\">");
    for c in v.changes.iter().rev() {
        let _ = write!(
            html,
            "<li>{} -&gt; {}: {} -&gt; {} at {}</li>",
            esc(&c.instance),
            esc(&c.target),
            esc(&c.from),
            esc(&c.to),
            esc(c.at.get(11..16).unwrap_or(&c.at))
        );
    }
    html.push_str("</ul></body></html>\n");
    html
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

/// HTML-escapes text from reports, which come from the network.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
