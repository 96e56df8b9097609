//! AWS region codes: their syntax and where a command finds one, written once.

use std::fmt;

/// `ap-northeast-2`, `us-gov-west-1`, `cn-north-1`: two letters, words, a number.
#[must_use]
pub fn is_valid(code: &str) -> bool {
    let parts: Vec<&str> = code.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// A region given where one was expected, that is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} {value:?} is not an AWS region; use a code such as ap-northeast-2")]
pub struct BadRegion {
    /// `--region`, `AWS_REGION` or `AWS_DEFAULT_REGION`.
    pub origin: &'static str,
    /// What it said.
    pub value: String,
}

/// Where the region came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--region`.
    Flag,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`.
    Environment,
    /// The instance metadata.
    Metadata,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--region",
            Self::Environment => "the environment",
            Self::Metadata => "the instance metadata",
        })
    }
}

/// The region every command uses: `--region`, then `AWS_REGION`, then `AWS_DEFAULT_REGION`
/// (empty values count as unset, as the AWS SDKs do), then the instance metadata's. What the
/// operator wrote is checked; the metadata's was checked when it was read.
///
/// # Errors
/// The first region the operator gave that is not a region code.
pub fn choose(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    metadata: Option<&str>,
) -> Result<Option<(String, Source)>, BadRegion> {
    let given = flag
        .map(|r| ("--region", r.to_string(), Source::Flag))
        .or_else(|| {
            ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find_map(|k| {
                    env(k)
                        .filter(|v| !v.is_empty())
                        .map(|v| (k, v, Source::Environment))
                })
        });
    match given {
        Some((origin, value, _)) if !is_valid(&value) => Err(BadRegion { origin, value }),
        Some((_, value, from)) => Ok(Some((value, from))),
        None => Ok(metadata.map(|r| (r.to_string(), Source::Metadata))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_codes() {
        for ok in [
            "ap-northeast-2",
            "us-gov-west-1",
            "cn-north-1",
            "eu-central-2",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "apne2",
            "Tokyo",
            "us-east",
            "us--1",
            "usa-east-1",
            "us-east-1a",
            "",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn the_flag_then_the_environment_then_the_metadata() {
        let env = |k: &str| match k {
            "AWS_REGION" => Some(String::new()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".into()),
            _ => None,
        };
        let none = |_: &str| None;
        assert_eq!(
            choose(Some("us-east-1"), &env, Some("ap-northeast-2")).unwrap(),
            Some(("us-east-1".into(), Source::Flag))
        );
        assert_eq!(
            choose(None, &env, Some("ap-northeast-2")).unwrap(),
            Some(("eu-west-1".into(), Source::Environment))
        );
        assert_eq!(
            choose(None, &none, Some("ap-northeast-2")).unwrap(),
            Some(("ap-northeast-2".into(), Source::Metadata))
        );
        assert_eq!(choose(None, &none, None).unwrap(), None);
        let e = choose(Some("apne2"), &none, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--region \"apne2\" is not an AWS region; use a code such as ap-northeast-2"
        );
    }
}
