//! Target specs as the operator writes them, turned into what to check.
//!
//! `s3` is an AWS service short name, `host`, `host:port` and `scheme://host[:port]/path`
//! name a host. The scheme decides which stages run: `tcp` connects only, `tls` adds the
//! handshake, `http` and `https` add a request.

use crate::model::Scheme;
use std::net::IpAddr;

/// A target that cannot be checked as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing was given.
    #[error("empty target: give a service name (s3), a host, host:port or a URL")]
    Empty,
    /// What is wrong with it, and the form expected.
    #[error("target {input:?}: {why}")]
    Invalid {
        /// The target as given.
        input: String,
        /// What is wrong, with the fix.
        why: Flaw,
    },
}

/// What is wrong with a target, each with the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Flaw {
    /// Several words in one argument.
    #[error("contains white space; give one host, host:port or URL per argument")]
    WhiteSpace,
    /// A service name with no region known.
    #[error(
        "is an AWS service name and needs a region: pass --region (as --region ap-northeast-2) or set AWS_REGION"
    )]
    NeedsRegion,
    /// A scheme probe does not speak.
    #[error("unknown scheme {0:?}; use https://, http://, tls:// or tcp://")]
    Scheme(String),
    /// `host/path` without a scheme.
    #[error("has a path but no scheme; write it as a URL such as https://host/path")]
    PathWithoutScheme,
    /// `user@host`.
    #[error("carries credentials (user@); probe sends none, remove them")]
    Credentials,
    /// No host.
    #[error("has no host")]
    NoHost,
    /// `[2001:db8::1` without its `]`.
    #[error("has an unclosed '[': write an IPv6 address as [2001:db8::1]:443")]
    UnclosedBracket,
    /// Text after `]` that is not a port.
    #[error("has text after ']'")]
    AfterBracket,
    /// A port that is no number.
    #[error("port {0:?} is not a number from 1 to 65535")]
    PortNotNumber(String),
    /// Port 0.
    #[error("port 0 cannot be connected to; use a port from 1 to 65535")]
    PortZero,
    /// A port over 65535.
    #[error("port {0} is over 65535")]
    PortTooLarge(String),
    /// A host with a colon that is no IPv6 address.
    #[error("{0:?} is not a valid IPv6 address")]
    Ipv6(String),
    /// A host name over 253 characters.
    #[error("host name is longer than 253 characters")]
    HostTooLong,
    /// Two dots in a row.
    #[error("host name has an empty label (two dots in a row)")]
    EmptyLabel,
    /// A label over 63 characters.
    #[error("label {0:?} is longer than 63 characters")]
    LabelTooLong(String),
    /// A character no host name holds.
    #[error(
        "label {label:?} has the character {character:?}; only letters, digits and '-' are allowed"
    )]
    LabelCharacter {
        /// The label.
        label: String,
        /// The character.
        character: char,
    },
    /// A label starting or ending with `-`.
    #[error("label {0:?} starts or ends with '-'")]
    LabelHyphen(String),
    /// `tcp://host` without a port.
    #[error("tcp:// needs a port, as in tcp://host:5432")]
    TcpNeedsPort,
    /// A path character HTTP cannot carry as is.
    #[error("path has the character {0:?}; percent-encode it")]
    PathCharacter(char),
}

/// A validated target: everything needed to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target exactly as given on the command line; expectations refer to it.
    pub input: String,
    /// Host name or IP literal, without brackets.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// Which stages run.
    pub scheme: Scheme,
    /// Request path and query for HTTP(S).
    pub path: String,
}

impl Target {
    /// The URL this target stands for, as a person would write it.
    #[must_use]
    pub fn url(&self) -> String {
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.scheme.uses_http() {
            format!("{}://{host}:{}{}", self.scheme, self.port, self.path)
        } else {
            format!("{}://{host}:{}", self.scheme, self.port)
        }
    }

    /// The host as an IP address, when it is a literal.
    #[must_use]
    pub fn ip_literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// How a target needs the region to be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: the target names its host.
    Nothing,
    /// An AWS service short name: the region completes it.
    Region,
}

/// Tells whether the target is an AWS service short name, before any region is known.
#[must_use]
pub fn needs(input: &str) -> Needs {
    let t = input.trim();
    if !t.is_empty() && !t.contains(['.', ':', '/', '[']) {
        Needs::Region
    } else {
        Needs::Nothing
    }
}

/// The DNS suffix of AWS service endpoints in a region.
#[must_use]
pub fn aws_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// Parses one target. `region` completes service short names.
///
/// # Errors
/// A one-line message naming the target, what is wrong and the expected form.
pub fn parse(input: &str, region: Option<&str>) -> Result<Target, TargetError> {
    let bad = |why: Flaw| TargetError::Invalid {
        input: input.to_string(),
        why,
    };
    if input.trim().is_empty() {
        return Err(TargetError::Empty);
    }
    if input.chars().any(char::is_whitespace) {
        return Err(bad(Flaw::WhiteSpace));
    }
    if needs(input) == Needs::Region {
        let Some(region) = region else {
            return Err(bad(Flaw::NeedsRegion));
        };
        let name = input.to_ascii_lowercase();
        validate_label(&name).map_err(bad)?;
        return Ok(Target {
            input: input.to_string(),
            host: format!("{name}.{region}.{}", aws_suffix(region)),
            port: 443,
            scheme: Scheme::Https,
            path: "/".into(),
        });
    }
    let (scheme, rest) = match input.split_once("://") {
        Some((s, rest)) => {
            let scheme = Scheme::parse(s).ok_or_else(|| bad(Flaw::Scheme(s.to_string())))?;
            (Some(scheme), rest)
        }
        None => (None, input),
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    if scheme.is_none() && !tail.is_empty() {
        return Err(bad(Flaw::PathWithoutScheme));
    }
    if authority.contains('@') {
        return Err(bad(Flaw::Credentials));
    }
    let (host, port) = split_host_port(authority).map_err(bad)?;
    validate_host(&host).map_err(bad)?;
    let scheme = match (scheme, port) {
        (Some(s), _) => s,
        (None, None | Some(443)) => Scheme::Https,
        (None, Some(80)) => Scheme::Http,
        (None, Some(_)) => Scheme::Tcp,
    };
    let Some(port) = port.or(scheme.default_port()) else {
        return Err(bad(Flaw::TcpNeedsPort));
    };
    let path = match tail.split('#').next().unwrap_or_default() {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if scheme.uses_http() {
        if let Some(c) = path.chars().find(|c| c.is_control() || !c.is_ascii()) {
            return Err(bad(Flaw::PathCharacter(c)));
        }
    }
    Ok(Target {
        input: input.to_string(),
        host,
        port,
        scheme,
        path,
    })
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), Flaw> {
    if authority.is_empty() {
        return Err(Flaw::NoHost);
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(Flaw::UnclosedBracket)?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':').ok_or(Flaw::AfterBracket)?)?),
        };
        return Ok((host.to_string(), port));
    }
    // A bare IPv6 address has several colons and no port.
    if authority.matches(':').count() > 1 {
        return Ok((authority.to_string(), None));
    }
    match authority.split_once(':') {
        Some((host, port)) => Ok((host.to_string(), Some(parse_port(port)?))),
        None => Ok((authority.to_string(), None)),
    }
}

fn parse_port(p: &str) -> Result<u16, Flaw> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Flaw::PortNotNumber(p.to_string()));
    }
    match p.parse::<u32>() {
        Ok(0) => Err(Flaw::PortZero),
        Ok(n) if n <= 65535 => Ok(u16::try_from(n).unwrap_or_default()),
        _ => Err(Flaw::PortTooLarge(p.to_string())),
    }
}

fn validate_host(host: &str) -> Result<(), Flaw> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(Flaw::Ipv6(host.to_string()));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err(Flaw::NoHost);
    }
    if name.len() > 253 {
        return Err(Flaw::HostTooLong);
    }
    name.split('.').try_for_each(validate_label)
}

fn validate_label(label: &str) -> Result<(), Flaw> {
    if label.is_empty() {
        return Err(Flaw::EmptyLabel);
    }
    if label.len() > 63 {
        return Err(Flaw::LabelTooLong(label.to_string()));
    }
    if let Some(character) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(Flaw::LabelCharacter {
            label: label.to_string(),
            character,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(Flaw::LabelHyphen(label.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> (String, u16, Scheme, String) {
        let t = parse(input, Some("ap-northeast-2")).expect(input);
        (t.host, t.port, t.scheme, t.path)
    }

    fn err(input: &str) -> String {
        parse(input, Some("ap-northeast-2"))
            .expect_err(input)
            .to_string()
    }

    #[test]
    fn service_names_expand_with_the_region() {
        assert_eq!(
            ok("s3"),
            (
                "s3.ap-northeast-2.amazonaws.com".into(),
                443,
                Scheme::Https,
                "/".into()
            )
        );
        let cn = parse("sts", Some("cn-north-1")).unwrap();
        assert_eq!(cn.host, "sts.cn-north-1.amazonaws.com.cn");
        let e = parse("s3", None).unwrap_err().to_string();
        assert!(e.contains("--region"), "{e}");
    }

    #[test]
    fn hosts_ports_and_urls() {
        assert_eq!(ok("example.com").1, 443);
        assert_eq!(ok("example.com:80").2, Scheme::Http);
        assert_eq!(ok("example.com:443").2, Scheme::Https);
        assert_eq!(ok("db.internal:5432").2, Scheme::Tcp);
        assert_eq!(
            ok("http://web.lab:8080/health?x=1"),
            ("web.lab".into(), 8080, Scheme::Http, "/health?x=1".into())
        );
        assert_eq!(ok("https://h.example").3, "/");
        assert_eq!(ok("tls://h.example").1, 443);
        assert_eq!(
            ok("https://[2001:db8::1]:8443/").0,
            "2001:db8::1".to_string()
        );
        assert_eq!(ok("2001:db8::1").1, 443);
        assert_eq!(ok("10.10.0.5:22").2, Scheme::Tcp);
        assert_eq!(
            parse("http://10.0.0.1/", None).unwrap().url(),
            "http://10.0.0.1:80/"
        );
    }

    #[test]
    fn a_bad_target_says_what_is_wrong_as_a_type() {
        let flaw = |input: &str| match parse(input, Some("ap-northeast-2")) {
            Err(TargetError::Invalid { why, .. }) => why,
            other => panic!("{input}: {other:?}"),
        };
        assert_eq!(flaw("tcp://db.internal"), Flaw::TcpNeedsPort);
        assert_eq!(flaw("h.example:0"), Flaw::PortZero);
        assert_eq!(flaw("[2001:db8::1"), Flaw::UnclosedBracket);
        assert_eq!(
            flaw("a_b!.example"),
            Flaw::LabelCharacter {
                label: "a_b!".into(),
                character: '!'
            }
        );
        assert_eq!(
            parse("s3", None).unwrap_err().to_string(),
            format!("target \"s3\": {}", Flaw::NeedsRegion)
        );
    }

    #[test]
    fn bad_targets_name_the_problem() {
        for (input, needle) in [
            ("", "empty target"),
            ("   ", "empty target"),
            ("a b", "white space"),
            ("ftp://h.example/", "unknown scheme"),
            ("h.example:0", "port 0"),
            ("h.example:65536", "over 65535"),
            ("h.example:http", "not a number"),
            ("h..example", "empty label"),
            ("-h.example", "starts or ends with '-'"),
            ("h!.example", "character '!'"),
            ("h.example/path", "has a path but no scheme"),
            ("https://user@h.example/", "credentials"),
            ("https://", "has no host"),
            ("tcp://h.example", "needs a port"),
            ("[2001:db8::1", "unclosed"),
            ("gg::zz", "not a valid IPv6"),
            ("https://h.example/é", "percent-encode"),
        ] {
            let e = err(input);
            assert!(e.contains(needle), "{input:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(err(&long).contains("longer than 63"));
    }
}
