//! The instance identity document, as IMDS serves it at
//! `/latest/dynamic/instance-identity/document`. Only the fields probe checks are read; AWS
//! signs the exact bytes, so the text itself is what travels.

use serde::Deserialize;
use std::time::SystemTime;

/// What probe reads of the document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The instance's account, 12 digits.
    pub account_id: String,
    /// Its region.
    pub region: String,
    /// `i-...`.
    pub instance_id: String,
    /// When the instance last started (RFC 3339): a stop and start moves it on.
    pub pending_time: String,
    /// Its primary private address, when given.
    #[serde(default)]
    pub private_ip: Option<String>,
}

/// A document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the instance identity document {0}")]
pub struct DocumentError(pub String);

impl Document {
    /// Parses the document's text and checks the fields probe relies on.
    ///
    /// # Errors
    /// What is missing or malformed.
    pub fn parse(text: &[u8]) -> Result<Self, DocumentError> {
        let doc: Self = serde_json::from_slice(text)
            .map_err(|e| DocumentError(format!("is not the JSON AWS serves: {e}")))?;
        if doc.account_id.len() != 12 || !doc.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DocumentError(format!(
                "has accountId {:?}, not 12 digits",
                crate::terminal::safe(&doc.account_id)
            )));
        }
        if !crate::model::region::is_valid(&doc.region) {
            return Err(DocumentError(format!(
                "has region {:?}, not a region",
                crate::terminal::safe(&doc.region)
            )));
        }
        let id_ok = doc.instance_id.len() <= 32
            && doc
                .instance_id
                .strip_prefix("i-")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !id_ok {
            return Err(DocumentError(format!(
                "has instanceId {:?}, not an instance id",
                crate::terminal::safe(&doc.instance_id)
            )));
        }
        doc.started()?;
        Ok(doc)
    }

    /// A `pendingTime` as a time, when it is one.
    #[must_use]
    pub fn started_at(text: &str) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
    }

    /// `pendingTime` as a time.
    ///
    /// # Errors
    /// When it is not RFC 3339.
    pub fn started(&self) -> Result<SystemTime, DocumentError> {
        humantime::parse_rfc3339_weak(self.pending_time.trim_end_matches('Z')).map_err(|_| {
            DocumentError(format!(
                "has pendingTime {:?}, not an RFC 3339 time",
                crate::terminal::safe(&self.pending_time)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SAMPLE: &str = r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "ap-northeast-2a",
  "imageId" : "ami-0123456789abcdef0",
  "instanceId" : "i-0123456789abcdef0",
  "instanceType" : "t3.micro",
  "pendingTime" : "2026-12-01T09:00:00Z",
  "privateIp" : "10.10.1.10",
  "region" : "ap-northeast-2",
  "version" : "2017-09-30"
}"#;

    #[test]
    fn the_document_aws_serves_is_read() {
        let doc = Document::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(doc.account_id, "123456789012");
        assert_eq!(doc.instance_id, "i-0123456789abcdef0");
        assert_eq!(doc.region, "ap-northeast-2");
        assert!(doc.started().unwrap() > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn a_malformed_document_says_which_field() {
        let bad = SAMPLE.replace("123456789012", "12345");
        assert!(
            Document::parse(bad.as_bytes())
                .unwrap_err()
                .0
                .contains("accountId")
        );
        let bad = SAMPLE.replace("i-0123456789abcdef0", "i-../etc");
        assert!(
            Document::parse(bad.as_bytes())
                .unwrap_err()
                .0
                .contains("instanceId")
        );
        let bad = SAMPLE.replace("2026-12-01T09:00:00Z", "yesterday");
        assert!(
            Document::parse(bad.as_bytes())
                .unwrap_err()
                .0
                .contains("pendingTime")
        );
        assert!(Document::parse(b"[]").is_err());
    }
}
