//! A VPC endpoint's policy, as the IAM policy language writes it: statements that allow or
//! deny actions on resources to principals. Parsed from the document DescribeVpcEndpoints
//! gives; what a statement matches is decided in `crate::verdict`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An endpoint policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Its statements, in order.
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Its `Sid`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `Allow` (true) or `Deny`.
    pub allow: bool,
    /// It applies to every principal (`"*"`, or `{"AWS": "*"}`).
    pub any_principal: bool,
    /// Action patterns (`s3:GetObject`, `s3:*`, `*`).
    pub actions: Vec<String>,
    /// Resource patterns (`arn:aws:s3:::bucket/*`, `*`).
    pub resources: Vec<String>,
    /// It has a `Condition`, or names its scope by `NotAction`, `NotResource` or
    /// `NotPrincipal`: what it matches depends on more than the request's action and resource.
    pub conditional: bool,
}

/// What is not a policy in a document.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No `Statement`, or one that is neither a list nor an object.
    #[error("no Statement")]
    NoStatement,
    /// A statement's `Effect` is neither `Allow` nor `Deny`.
    #[error("a statement's Effect is {0:?}")]
    Effect(Option<String>),
}

impl Policy {
    /// Reads a policy document.
    ///
    /// # Errors
    /// What is not a policy in it.
    pub fn parse(document: &str) -> Result<Self, PolicyError> {
        let v: Value = serde_json::from_str(document)?;
        let statements = match v.get("Statement") {
            Some(Value::Array(a)) => a.iter().map(statement).collect::<Result<_, _>>()?,
            Some(s @ Value::Object(_)) => vec![statement(s)?],
            _ => return Err(PolicyError::NoStatement),
        };
        Ok(Self { statements })
    }

    /// The policy AWS gives an endpoint created without one: everything, to everyone.
    #[must_use]
    pub fn allows_everything(&self) -> bool {
        self.statements.iter().any(|s| {
            s.allow
                && s.any_principal
                && !s.conditional
                && s.actions.iter().any(|a| a == "*")
                && s.resources.iter().any(|r| r == "*")
        }) && self.statements.iter().all(|s| s.allow)
    }
}

/// A string or a list of strings, as the policy language lets either stand.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn statement(v: &Value) -> Result<Statement, PolicyError> {
    let allow = match v.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        other => return Err(PolicyError::Effect(other.map(str::to_string))),
    };
    let any_principal = match v.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(o)) => o
            .get("AWS")
            .is_some_and(|a| strings(Some(a)).iter().any(|p| p == "*")),
        _ => false,
    };
    Ok(Statement {
        sid: v.get("Sid").and_then(Value::as_str).map(str::to_string),
        allow,
        any_principal,
        actions: strings(v.get("Action")),
        resources: strings(v.get("Resource")),
        conditional: ["Condition", "NotAction", "NotResource", "NotPrincipal"]
            .iter()
            .any(|k| v.get(*k).is_some()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_in_every_form_the_language_allows() {
        let p = Policy::parse(
            r#"{"Version": "2012-10-17", "Statement": [
                {"Sid": "Bucket", "Effect": "Allow", "Principal": {"AWS": ["*"]},
                 "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::lab-bucket/*"},
                {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*",
                 "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "1"}}}]}"#,
        )
        .unwrap();
        assert_eq!(p.statements.len(), 2);
        let s = &p.statements[0];
        assert_eq!(s.sid.as_deref(), Some("Bucket"));
        assert!(s.allow && s.any_principal && !s.conditional);
        assert_eq!(s.resources, ["arn:aws:s3:::lab-bucket/*"]);
        assert!(!p.statements[1].allow && p.statements[1].conditional);
        assert!(!p.allows_everything());
        let default = Policy::parse(
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}"#,
        )
        .unwrap();
        assert!(default.allows_everything());
        assert!(Policy::parse("{}").is_err());
        assert!(Policy::parse(r#"{"Statement": [{"Effect": "Maybe"}]}"#).is_err());
    }
}
