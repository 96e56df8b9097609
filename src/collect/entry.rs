//! A received report as the collector keeps it: the typed model (for the matrix, the metrics
//! and the filters) beside the document it came as. The document is what is stored and
//! served, so fields a newer v1 agent adds survive the collector, its database and the relay.

use crate::model::{Report, SCHEMA};
use serde_json::Value;

/// A document's top-level fields, each as its text, in order.
type Fields = indexmap::IndexMap<String, Box<serde_json::value::RawValue>>;

/// A validated report and its document.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What this version of probe understands of it.
    pub report: Report,
    /// The whole document as one line of JSON, unknown fields included.
    doc: String,
}

impl Entry {
    /// Parses and validates a posted body.
    ///
    /// # Errors
    /// [`Invalid::Json`] when it is not a probe report at all, [`Invalid::Content`] when it
    /// is one with content no collector should store.
    pub fn parse(bytes: &[u8]) -> Result<Self, Invalid> {
        let entry = Self::stored(bytes)?;
        timed(&entry.report)?;
        Ok(entry)
    }

    /// Parses a document stored (or logged) by a collector, which took it by the rules of
    /// its version: [`Entry::parse`] but for the rules added since, so nothing stored is
    /// skipped by a later version.
    ///
    /// # Errors
    /// As [`Entry::parse`].
    pub fn stored(bytes: &[u8]) -> Result<Self, Invalid> {
        // serde skips unknown fields without a depth limit, and the document is served as
        // stored: a deeply nested one would break every reader of the API (jq, Python).
        let depth = nesting(bytes);
        if depth > MAX_DEPTH {
            return Err(Invalid::Nested(depth));
        }
        let report: Report = serde_json::from_slice(bytes).map_err(Invalid::Json)?;
        validate(&report)?;
        let text = std::str::from_utf8(bytes.trim_ascii()).map_err(Invalid::Utf8)?;
        // JSON strings cannot hold a raw line break, so one is whitespace between tokens:
        // only a pretty-printed document needs rewriting to fit on one line.
        let doc = if text.bytes().any(|b| b == b'\n' || b == b'\r') {
            let value: Value = serde_json::from_str(text).map_err(Invalid::Json)?;
            value.to_string()
        } else {
            text.to_string()
        };
        Ok(Self { report, doc })
    }

    /// An entry made here (from console lines), whose document is the model itself.
    ///
    /// # Errors
    /// When the report cannot be serialised or is not valid.
    pub fn from_report(report: Report) -> Result<Self, Invalid> {
        validate(&report)?;
        timed(&report)?;
        let doc = serde_json::to_string(&report).map_err(Invalid::Json)?;
        Ok(Self { report, doc })
    }

    /// Writes changes made to the model (the collector's own labels) into the document,
    /// keeping every field the model does not know.
    pub fn sync(&mut self) {
        let (Ok(mut doc), Ok(typed)) = (
            serde_json::from_str::<Value>(&self.doc),
            serde_json::to_value(&self.report),
        ) else {
            return;
        };
        overlay(&mut doc, typed);
        self.doc = doc.to_string();
    }

    /// Records how the collector authenticated the report, replacing whatever the agent's
    /// document said there.
    pub fn set_authenticated(&mut self, how: crate::model::Authenticated) {
        // Only this field changes, and every report takes it (it counts in the collector's
        // throughput): the top-level fields are read as their text, not parsed into a tree,
        // and written back as they came, in their order.
        let typed = serde_json::value::to_raw_value(&how);
        self.report.authenticated = Some(how);
        let fields = serde_json::from_str::<Fields>(&self.doc);
        if let (Ok(mut fields), Ok(typed)) = (fields, typed) {
            fields.insert("authenticated".into(), typed);
            if let Ok(doc) = serde_json::to_string(&fields) {
                self.doc = doc;
            }
        }
    }

    /// The document: compact JSON on one line.
    #[must_use]
    pub fn doc(&self) -> &str {
        &self.doc
    }
}

/// What identifies an instance across reports: its id, else its host name.
#[must_use]
pub fn instance_key(report: &Report) -> String {
    report
        .agent
        .instance
        .as_ref()
        .and_then(|i| i.instance_id.clone())
        .unwrap_or_else(|| report.agent.hostname.clone())
}

/// The path the configuration predicted for `t`, when it and the packets parted.
#[must_use]
pub fn parted(t: &crate::model::TargetReport) -> Option<crate::model::Path> {
    t.verdict
        .predicted
        .as_ref()
        .filter(|_| t.verdict.agrees == Some(false))
        .map(|p| p.path)
}

/// Deepest nesting of arrays and objects accepted (a report has about 7).
pub const MAX_DEPTH: usize = 64;

/// How deep `json`'s arrays and objects nest, counted outside strings; cheap enough to run
/// before any parsing.
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// Not JSON, or not shaped like a report (400).
    #[error("the report is nested {0} levels deep, over the {MAX_DEPTH} a report needs")]
    Nested(usize),
    /// Not JSON, or not shaped like a report (400).
    #[error("not a probe report: {0}")]
    Json(#[source] serde_json::Error),
    /// Not UTF-8 (400).
    #[error("not a probe report: {0}")]
    Utf8(#[source] std::str::Utf8Error),
    /// A report whose content is refused (422).
    #[error(transparent)]
    Content(#[from] Refused),
}

/// What a collector refuses to store of a report that parses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Another schema.
    #[error("schema {0:?} is not {SCHEMA}")]
    Schema(String),
    /// An id that cannot name a file or a line.
    #[error("id must be 1 to 128 letters, digits or '-'")]
    Id,
    /// No host name, or one too long.
    #[error("agent.hostname must be 1 to 255 characters")]
    Hostname,
    /// Nothing checked.
    #[error("a report has at least one target")]
    NoTarget,
    /// A time the store cannot order it by.
    #[error(
        "started_at must be an RFC 3339 time after 1970, as 2026-12-04T10:00:00Z, not {:?}",
        crate::terminal::safe(.0)
    )]
    Time(String),
}

/// Copies `typed` into `doc`: objects key by key, arrays of the same length element by
/// element, anything else replaced. Keys only `doc` has are kept.
fn overlay(doc: &mut Value, typed: Value) {
    match (doc, typed) {
        (Value::Object(d), Value::Object(t)) => {
            for (k, v) in t {
                match d.get_mut(&k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(t)) if d.len() == t.len() => {
            for (slot, v) in d.iter_mut().zip(t) {
                overlay(slot, v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// What serde's types do not say about a report.
fn validate(r: &Report) -> Result<(), Refused> {
    if r.schema != SCHEMA {
        return Err(Refused::Schema(r.schema.clone()));
    }
    if r.id.is_empty()
        || r.id.len() > 128
        || !r.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Refused::Id);
    }
    if r.agent.hostname.is_empty() || r.agent.hostname.len() > 255 {
        return Err(Refused::Hostname);
    }
    if r.targets.is_empty() {
        return Err(Refused::NoTarget);
    }
    Ok(())
}

/// A new report's time, which its history, its hour and the retention go by (added after
/// reports were stored without it: see [`Entry::stored`]).
fn timed(r: &Report) -> Result<(), Refused> {
    let after_1970 =
        humantime::parse_rfc3339_weak(&r.started_at).is_ok_and(|t| t > std::time::UNIX_EPOCH);
    if !after_1970 {
        let shown: String = r.started_at.chars().take(64).collect();
        return Err(Refused::Time(shown));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = include_str!("../../tests/fixtures/report.json");

    #[test]
    fn a_document_nested_too_deep_is_refused_before_parsing() {
        let mut doc: Value = serde_json::from_str(REPORT).unwrap();
        doc["from_the_future"] = "[[[\"]]]]]]\\\"\"".into();
        let fine = serde_json::to_vec(&doc).unwrap();
        assert!(nesting(&fine) < 10, "brackets in strings do not count");
        assert!(Entry::parse(&fine).is_ok());
        let text = String::from_utf8(fine).unwrap();
        let deep = format!(
            "{}\"deep\":{}{},",
            &text[..1],
            "[".repeat(100_000),
            "]".repeat(100_000)
        ) + &text[1..];
        match Entry::parse(deep.as_bytes()) {
            Err(why @ Invalid::Nested(_)) => {
                assert!(why.to_string().contains("nested 100001 levels"), "{why}");
            }
            other => panic!("accepted: {:?}", other.map(|e| e.report.id)),
        }
    }

    #[test]
    fn unknown_fields_survive_parsing_labelling_and_storing() {
        let mut doc: Value = serde_json::from_str(REPORT).unwrap();
        doc["from_the_future"] = serde_json::json!({"a": 1});
        doc["targets"][0]["addresses"][0]["future_stage"] = "ok".into();
        let mut entry = Entry::parse(&serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        entry.report.targets[0].verdict.reason = "relabelled".into();
        entry.sync();
        let line = entry.doc();
        assert!(!line.contains('\n'), "one line");
        let back: Value = serde_json::from_str(line).unwrap();
        assert_eq!(back["from_the_future"]["a"], 1);
        assert_eq!(back["targets"][0]["addresses"][0]["future_stage"], "ok");
        assert_eq!(back["targets"][0]["verdict"]["reason"], "relabelled");
        assert_eq!(back["id"], doc["id"]);
    }

    #[test]
    fn the_collectors_authentication_replaces_the_agents_and_keeps_the_rest_as_sent() {
        let mut doc: Value = serde_json::from_str(REPORT).unwrap();
        doc["authenticated"] =
            serde_json::json!({"method": "aws-identity", "instance_id": "i-forged"});
        // A field as a newer agent might write it: its text kept, not parsed and rewritten.
        let future = r#""from_the_future":{"b":[1,2.50,"\u00e9\"}"],"a":null}"#;
        let sent = format!("{{{future},{}", &doc.to_string()[1..]);
        let mut entry = Entry::parse(sent.as_bytes()).unwrap();
        entry.set_authenticated(crate::model::Authenticated {
            method: crate::model::AuthMethod::Token,
            instance_id: None,
            account_id: None,
            key_id: None,
        });
        let back: Value = serde_json::from_str(entry.doc()).unwrap();
        assert_eq!(back["authenticated"]["method"], "token");
        assert!(back["authenticated"]["instance_id"].is_null());
        assert_eq!(entry.doc().matches("\"authenticated\"").count(), 1);
        let sent: Value = serde_json::from_str(&sent).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&back), keys(&sent), "every field, in its place");
        assert!(
            entry.doc().starts_with(&format!("{{{future},")),
            "{}",
            entry.doc()
        );
        assert_eq!(
            entry.report.authenticated.as_ref().map(|a| a.method),
            Some(crate::model::AuthMethod::Token)
        );
    }

    #[test]
    fn refusals_say_which_kind() {
        assert!(matches!(Entry::parse(b"{"), Err(Invalid::Json(_))));
        assert!(matches!(Entry::parse(b"{\"id\":1}"), Err(Invalid::Json(_))));
        let mut doc: Value = serde_json::from_str(REPORT).unwrap();
        doc["schema"] = "probe.report/v9".into();
        let e = Entry::parse(doc.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(&e, Invalid::Content(Refused::Schema(s)) if s == "probe.report/v9"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "schema \"probe.report/v9\" is not probe.report/v1"
        );
    }

    #[test]
    fn a_time_the_store_cannot_order_by_is_refused() {
        let mut doc: Value = serde_json::from_str(REPORT).unwrap();
        for bad in [
            "",
            "yesterday",
            "1969-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
        ] {
            doc["started_at"] = bad.into();
            let e = Entry::parse(doc.to_string().as_bytes()).unwrap_err();
            assert!(
                matches!(&e, Invalid::Content(Refused::Time(t)) if t == bad),
                "{bad}: {e:?}"
            );
        }
        doc["started_at"] = "late\u{1b}[2J".into();
        let e = Entry::parse(doc.to_string().as_bytes()).unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        for good in ["2026-12-04T10:00:00Z", "2026-12-04T10:00:00.123Z"] {
            doc["started_at"] = good.into();
            assert!(Entry::parse(doc.to_string().as_bytes()).is_ok(), "{good}");
        }
        // One an earlier collector stored is still read back.
        doc["started_at"] = "yesterday".into();
        assert!(Entry::stored(doc.to_string().as_bytes()).is_ok());
    }
}
