//! Text from the network on a terminal: control characters escaped, so a report, a console
//! or a header can neither move the cursor, recolour the screen nor forge a line.

use std::borrow::Cow;

/// `text` with every control character (escape, carriage return, newline...) written as a
/// Rust escape (`\u{1b}`, `\r`, `\n`).
#[must_use]
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(safe("i-0123 (web-1) -> s3"), "i-0123 (web-1) -> s3");
        assert_eq!(
            safe("a\u{1b}[2Jb\r\nfake -> s3: public -> vpc"),
            "a\\u{1b}[2Jb\\r\\nfake -> s3: public -> vpc"
        );
        assert_eq!(safe("ünïcode"), "ünïcode");
    }
}
