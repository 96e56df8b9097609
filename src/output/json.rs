//! The JSON renderer: any document, pretty-printed, one per run.

use serde::Serialize;

/// Renders a document as one JSON value followed by a newline.
#[must_use]
pub fn render(document: &impl Serialize) -> String {
    // Serializing plain structs with string keys cannot fail.
    let mut s = serde_json::to_string_pretty(document).unwrap_or_default();
    s.push('\n');
    s
}
