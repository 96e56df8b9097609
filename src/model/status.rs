//! Where a source of context stands: in use, turned off, or unavailable and why.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of the instance metadata, the EC2 API, or the collector's EC2 API. In JSON it is
/// one string: `ok`, `off`, or the reason it is unavailable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(from = "String", into = "String")]
pub enum SourceStatus {
    /// It answered.
    Ok,
    /// It was not asked.
    #[default]
    Off,
    /// It was asked and could not answer; why, in one line with the fix.
    Unavailable(String),
}

impl SourceStatus {
    /// Whether the source answered.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        *self == Self::Ok
    }
}

impl From<String> for SourceStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "ok" => Self::Ok,
            "off" => Self::Off,
            _ => Self::Unavailable(s),
        }
    }
}

impl From<&str> for SourceStatus {
    fn from(s: &str) -> Self {
        Self::from(s.to_string())
    }
}

impl From<SourceStatus> for String {
    fn from(s: SourceStatus) -> Self {
        s.to_string()
    }
}

impl fmt::Display for SourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Off => f.write_str("off"),
            Self::Unavailable(why) => f.write_str(why),
        }
    }
}
