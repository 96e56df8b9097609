//! The JSON renderer: the report document, pretty-printed, one per run.

use super::Report;

/// Renders the report as one JSON document followed by a newline.
#[must_use]
pub fn render(report: &Report) -> String {
    // Serializing plain structs with string keys cannot fail.
    let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
    s.push('\n');
    s
}
