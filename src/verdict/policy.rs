//! Whether an endpoint's policy refuses probe's own request: an anonymous HTTPS GET, which for
//! S3 is an action on a bucket or an object (ListAllMyBuckets, ListBucket, GetObject) and for
//! other services no API action at all. A 403 through such an endpoint comes from the policy,
//! not from the path: the service answered.

use crate::model::{Policy, Statement};

/// The request an anonymous GET stands for, as a policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `s3:GetObject`; for services other than S3, `<service>:*` (no one action).
    pub action: String,
    /// `arn:aws:s3:::bucket/key`, or `*`.
    pub resource: String,
    /// Whether the action and resource are exact; otherwise a policy refuses the request only
    /// when it refuses every action of the service.
    exact: bool,
}

/// The request probe's GET of `path` on `host` makes of `service` (`com.amazonaws.<region>.<name>`
/// or an endpoint service's name).
#[must_use]
pub fn request(service: &str, host: &str, path: &str) -> Request {
    let name = service.rsplit('.').next().unwrap_or(service);
    if name != "s3" {
        return Request {
            action: format!("{name}:*"),
            resource: "*".into(),
            exact: false,
        };
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    // Virtual-hosted style: <bucket>.s3.<region>.amazonaws.com (or .s3.dualstack.).
    let hosted = host
        .find(".s3.")
        .map(|i| host[..i].to_string())
        .filter(|b| !b.is_empty() && !b.starts_with("vpce-"));
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_matches('/');
    let (bucket, key) = match hosted {
        Some(b) => (Some(b), path.to_string()),
        None => match path.split_once('/') {
            Some((b, k)) => (Some(b.to_string()), k.to_string()),
            None if path.is_empty() => (None, String::new()),
            None => (Some(path.to_string()), String::new()),
        },
    };
    let (action, resource) = match (bucket, key.is_empty()) {
        (None, _) => ("s3:ListAllMyBuckets", "*".to_string()),
        (Some(b), true) => ("s3:ListBucket", format!("arn:aws:s3:::{b}")),
        (Some(b), false) => ("s3:GetObject", format!("arn:aws:s3:::{b}/{key}")),
    };
    Request {
        action: action.into(),
        resource,
        exact: true,
    }
}

/// Why `policy` refuses `req`: a statement that denies it, or no statement that allows it.
/// `None` when it allows it, or when a statement it might fall under has conditions this
/// reading cannot weigh.
#[must_use]
pub fn refuses(policy: &Policy, req: &Request) -> Option<String> {
    let applies = |s: &&Statement| s.any_principal && !s.conditional;
    if let Some(s) = policy.statements.iter().filter(applies).find(|s| {
        !s.allow
            && s.actions.iter().any(|p| covers(p, req))
            && s.resources
                .iter()
                .any(|r| r == "*" || glob(r, &req.resource))
    }) {
        return Some(format!(
            "{} denies {} on {}",
            name(s),
            req.action,
            req.resource
        ));
    }
    let may_allow = |s: &Statement| {
        s.allow
            && (s.conditional
                || (s.any_principal
                    && s.actions.iter().any(|p| may_match(p, req))
                    && s.resources
                        .iter()
                        .any(|r| !req.exact || glob(r, &req.resource))))
    };
    if policy.statements.iter().any(may_allow) {
        return None;
    }
    let allowed: Vec<String> = policy
        .statements
        .iter()
        .filter(|s| s.allow)
        .map(|s| format!("{} on {}", s.actions.join(" "), s.resources.join(" ")))
        .collect();
    Some(format!(
        "no statement allows {} on {}{}",
        req.action,
        req.resource,
        if allowed.is_empty() {
            String::new()
        } else {
            format!(" (it allows {})", allowed.join("; "))
        }
    ))
}

fn name(s: &Statement) -> String {
    s.sid
        .as_ref()
        .map_or_else(|| "a statement".into(), |sid| format!("statement {sid}"))
}

/// A deny pattern covers the request: the exact action, or every action of the service.
fn covers(pattern: &str, req: &Request) -> bool {
    if req.exact {
        glob(
            &pattern.to_ascii_lowercase(),
            &req.action.to_ascii_lowercase(),
        )
    } else {
        pattern == "*" || pattern.eq_ignore_ascii_case(&req.action)
    }
}

/// An allow pattern may match the request: the exact action, or any action of the service.
fn may_match(pattern: &str, req: &Request) -> bool {
    let p = pattern.to_ascii_lowercase();
    if req.exact {
        glob(&p, &req.action.to_ascii_lowercase())
    } else {
        let service = req.action.trim_end_matches('*').to_ascii_lowercase();
        p == "*" || p.starts_with(&service)
    }
}

/// The policy language's wildcards: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(statements: &str) -> Policy {
        Policy::parse(&format!(r#"{{"Statement": {statements}}}"#)).unwrap()
    }

    #[test]
    fn probes_get_is_the_s3_action_its_host_and_path_name() {
        let r = |host, path| {
            let q = request("com.amazonaws.ap-northeast-2.s3", host, path);
            (q.action, q.resource)
        };
        let s3 = "s3.ap-northeast-2.amazonaws.com";
        assert_eq!(r(s3, "/"), ("s3:ListAllMyBuckets".into(), "*".into()));
        assert_eq!(
            r(s3, "/lab-bucket"),
            ("s3:ListBucket".into(), "arn:aws:s3:::lab-bucket".into())
        );
        assert_eq!(
            r(s3, "/lab-bucket/a/b.txt?x=1"),
            (
                "s3:GetObject".into(),
                "arn:aws:s3:::lab-bucket/a/b.txt".into()
            )
        );
        assert_eq!(
            r("lab-bucket.s3.ap-northeast-2.amazonaws.com", "/k"),
            ("s3:GetObject".into(), "arn:aws:s3:::lab-bucket/k".into())
        );
        let cf = request(
            "com.amazonaws.ap-northeast-2.cloudformation",
            "cloudformation.ap-northeast-2.amazonaws.com",
            "/",
        );
        assert_eq!((cf.action.as_str(), cf.exact), ("cloudformation:*", false));
    }

    #[test]
    fn a_policy_refuses_by_a_deny_or_for_want_of_an_allow() {
        let s3 = request(
            "com.amazonaws.ap-northeast-2.s3",
            "s3.ap-northeast-2.amazonaws.com",
            "/",
        );
        let bucket_only = policy(
            r#"[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lab-bucket/*"}]"#,
        );
        assert_eq!(
            refuses(&bucket_only, &s3).as_deref(),
            Some(
                "no statement allows s3:ListAllMyBuckets on * (it allows s3:GetObject on arn:aws:s3:::lab-bucket/*)"
            )
        );
        let object = request(
            "com.amazonaws.ap-northeast-2.s3",
            "s3.ap-northeast-2.amazonaws.com",
            "/lab-bucket/x",
        );
        assert_eq!(refuses(&bucket_only, &object), None);
        let everything =
            policy(r#"{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}"#);
        assert_eq!(refuses(&everything, &s3), None);
        let cf = request("com.amazonaws.ap-northeast-2.cloudformation", "h", "/");
        let deny = policy(
            r#"[{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
                {"Sid": "NoOne", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}]"#,
        );
        assert_eq!(
            refuses(&deny, &cf).as_deref(),
            Some("statement NoOne denies cloudformation:* on *")
        );
        // One action of the service allowed: probe's GET may be let through.
        let one = policy(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "cloudformation:DescribeStacks", "Resource": "*"}"#,
        );
        assert_eq!(refuses(&one, &cf), None);
        // A condition this reading cannot weigh: nothing is claimed.
        let conditional = policy(
            r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}"#,
        );
        assert_eq!(refuses(&conditional, &s3), None);
    }

    #[test]
    fn wildcards_match_as_the_policy_language_says() {
        assert!(glob("arn:aws:s3:::lab-*/*", "arn:aws:s3:::lab-bucket/a/b"));
        assert!(glob("s3:Get*", "s3:GetObject"));
        assert!(glob("s3:?etObject", "s3:GetObject"));
        assert!(!glob("s3:Get*", "s3:PutObject"));
        assert!(!glob(
            "arn:aws:s3:::lab-bucket/*",
            "arn:aws:s3:::lab-bucket"
        ));
        assert!(glob("*", ""));
    }
}
