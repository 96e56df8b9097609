//! Rendering the bootstrap (`userdata/bootstrap.sh` with `userdata/fetch.sh` inside) for
//! one set of values, in the three forms EC2 accepts. Pure: the command reads the files.

use std::fmt::Write as _;

const BOOTSTRAP: &str = include_str!("../../userdata/bootstrap.sh");
const FETCH: &str = include_str!("../../userdata/fetch.sh");

/// UserData's limit, before base64.
pub const LIMIT: usize = 16_384;
/// Where the bootstrap installs the token and the CA on the instance.
pub const TOKEN_PATH: &str = "/etc/probe/token";
/// See [`TOKEN_PATH`].
pub const CA_PATH: &str = "/etc/probe/ca.pem";

/// The three forms of UserData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A shell script (#!/bin/sh), as UserData or for cloud-init's user-data.
    Script,
    /// A #cloud-config document that writes the script and runs it.
    CloudConfig,
    /// The UserData block of an AWS::EC2::Instance, for a CloudFormation template (YAML):
    /// Fn::Base64 of Fn::Sub; ${Name} in a value stays a reference Fn::Sub fills in.
    Cloudformation,
}

/// What goes into the bootstrap; every text already validated by [`check_value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values {
    /// Sources, tried in order.
    pub sources: Vec<String>,
    /// Pinned sha256 of the x86_64 binary, lowercase hex.
    pub sha256_x86_64: Option<String>,
    /// Pinned sha256 of the aarch64 binary.
    pub sha256_aarch64: Option<String>,
    /// The collector's token.
    pub token: Option<String>,
    /// A PEM CA certificate the agent trusts.
    pub ca: Option<String>,
    /// The agent's `probe check` arguments, as the instance runs them.
    pub args: Vec<String>,
    /// The collector a relay on this instance forwards to, when it runs one.
    pub relay: Option<String>,
    /// Where that relay listens.
    pub relay_listen: String,
}

/// Why a value cannot go into the script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    /// A character that would end the quoting or the line.
    #[error("{what} {value:?} holds {found}, which would break the script: remove it")]
    Character {
        /// Which value.
        what: String,
        /// The value.
        value: String,
        /// The character, described.
        found: String,
    },
    /// The rendered UserData is over EC2's limit.
    #[error(
        "the UserData is {0} bytes, over the {LIMIT} EC2 accepts: use fewer sources or arguments, or a smaller CA file"
    )]
    TooLarge(usize),
}

/// Refuses what single quotes cannot carry: a quote, a backslash or backquote (harmless in
/// sh quotes, but they make the YAML forms and the log lines ambiguous), control characters
/// and newlines; white space too unless `spaces`.
///
/// # Errors
/// [`Unsafe::Character`] naming the value and the character.
pub fn check_value(what: &str, value: &str, spaces: bool) -> Result<(), Unsafe> {
    let bad = value.chars().find(|c| {
        matches!(c, '\'' | '"' | '\\' | '`') || c.is_control() || (!spaces && c.is_whitespace())
    });
    match bad {
        None => Ok(()),
        Some(c) => Err(Unsafe::Character {
            what: what.to_string(),
            value: value.to_string(),
            found: match c {
                '\n' => "a newline".into(),
                '\r' => "a carriage return".into(),
                '\t' => "a tab".into(),
                ' ' => "a space".into(),
                c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
                c => format!("a {c}"),
            },
        }),
    }
}

/// A piece of the rendered script: our own text, or a value.
enum Piece<'a> {
    Ours(&'a str),
    Value(String),
}

/// The script, as pieces, so that the CloudFormation form can escape our `${` and leave the
/// values' references alone.
fn pieces(v: &Values) -> Vec<Piece<'_>> {
    let fetch = FETCH.trim_end_matches('\n');
    let value = |name: &str| -> String {
        match name {
            "VERSION" => env!("CARGO_PKG_VERSION").into(),
            "SHA256_X86_64" => v.sha256_x86_64.clone().unwrap_or_default(),
            "SHA256_AARCH64" => v.sha256_aarch64.clone().unwrap_or_default(),
            "SOURCES" => v.sources.join(" "),
            "RELAY" => v.relay.clone().unwrap_or_default(),
            "RELAY_LISTEN" => v.relay_listen.clone(),
            "ARGS" => v.args.join("\n"),
            "TOKEN" => v.token.clone().unwrap_or_default(),
            "CA" => v.ca.clone().unwrap_or_default().trim_end().to_string(),
            _ => String::new(),
        }
    };
    let mut out = Vec::new();
    let mut rest = BOOTSTRAP;
    while let Some(start) = rest.find('@') {
        let Some(len) = rest[start + 1..].find('@') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            out.push(Piece::Ours(&rest[..=start]));
            rest = &rest[start + 1..];
            continue;
        }
        out.push(Piece::Ours(&rest[..start]));
        if name == "FETCH" {
            out.push(Piece::Ours(fetch));
        } else {
            out.push(Piece::Value(value(name)));
        }
        rest = &rest[start + len + 2..];
    }
    out.push(Piece::Ours(rest));
    out
}

/// The script exactly as the instance runs it.
#[must_use]
pub fn script(v: &Values) -> String {
    pieces(v)
        .into_iter()
        .map(|p| match p {
            Piece::Ours(s) => s.to_string(),
            Piece::Value(s) => s,
        })
        .collect()
}

/// The UserData in `format`, and the size EC2 counts (for CloudFormation, the script that
/// Fn::Sub produces, with each reference counted as written).
///
/// # Errors
/// [`Unsafe::TooLarge`] when over EC2's limit.
pub fn render(v: &Values, format: Format) -> Result<(String, usize), Unsafe> {
    let script = script(v);
    let (text, size) = match format {
        Format::Script => {
            let n = script.len();
            (script, n)
        }
        Format::CloudConfig => {
            let mut doc = String::from(
                "#cloud-config\n# probe bootstrap: cloud-init writes the script, then runs it once.\nwrite_files:\n  - path: /var/lib/probe-bootstrap.sh\n    permissions: '0700'\n    content: |\n",
            );
            indent(&mut doc, &script, 6);
            doc.push_str("runcmd:\n  - [sh, /var/lib/probe-bootstrap.sh]\n");
            let n = doc.len();
            (doc, n)
        }
        Format::Cloudformation => {
            let escaped: String = pieces(v)
                .into_iter()
                .map(|p| match p {
                    Piece::Ours(s) => s.replace("${", "${!"),
                    Piece::Value(s) => s,
                })
                .collect();
            let mut doc = String::from("UserData:\n  Fn::Base64:\n    Fn::Sub: |\n");
            indent(&mut doc, &escaped, 6);
            (doc, script.len())
        }
    };
    if size > LIMIT {
        return Err(Unsafe::TooLarge(size));
    }
    Ok((text, size))
}

/// Appends `text` to `doc` as the body of a YAML block scalar: each line indented by `n`
/// spaces (empty lines stay empty).
fn indent(doc: &mut String, text: &str, n: usize) {
    for line in text.lines() {
        if line.is_empty() {
            doc.push('\n');
        } else {
            let _ = writeln!(doc, "{:n$}{line}", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            sources: vec![
                "http://10.10.0.10:7878/v1/probe".into(),
                "https://b.s3.ap-northeast-2.amazonaws.com/probe/".into(),
            ],
            sha256_x86_64: Some("a".repeat(64)),
            sha256_aarch64: None,
            token: Some("tok3n".into()),
            ca: None,
            args: vec![
                "s3".into(),
                "--expect-body".into(),
                "Web Server 1".into(),
                "--token-file".into(),
                TOKEN_PATH.into(),
            ],
            relay: None,
            relay_listen: "0.0.0.0:7878".into(),
        }
    }

    #[test]
    fn values_land_in_single_quotes_and_the_fetch_script_inside() {
        let s = script(&values());
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(&format!("x86_64) sha='{}' ;;", "a".repeat(64))));
        assert!(s.contains("sha=''\n"), "aarch64 pins nothing");
        assert!(s.contains(
            "PROBE_SOURCES='http://10.10.0.10:7878/v1/probe https://b.s3.ap-northeast-2.amazonaws.com/probe/'"
        ));
        assert!(s.contains("'s3\n--expect-body\nWeb Server 1\n--token-file\n/etc/probe/token'"));
        assert!(s.contains("token='tok3n'"));
        assert!(s.contains("# probe-fetch: downloads probe"));
        assert!(!s.contains("@FETCH@") && !s.contains("@ARGS@"), "{s}");
        assert!(s.trim_end().ends_with("probe_bootstrap"));
    }

    #[test]
    fn cloudformation_escapes_our_references_and_keeps_the_values() {
        let mut v = values();
        v.sources = vec!["http://${PublicInstance.PrivateIp}:7878/v1/probe".into()];
        let (text, size) = render(&v, Format::Cloudformation).unwrap();
        assert!(text.starts_with("UserData:\n  Fn::Base64:\n    Fn::Sub: |\n      #!/bin/sh\n"));
        assert!(text.contains("PROBE_SOURCES='http://${PublicInstance.PrivateIp}:7878/v1/probe'"));
        assert!(text.contains("url=\"${!src}probe-$PROBE_ARCH-unknown-linux-musl\""));
        assert!(!text.contains("${src}"));
        assert_eq!(size, script(&v).len());
    }

    #[test]
    fn cloud_config_indents_the_script_under_write_files() {
        let (text, _) = render(&values(), Format::CloudConfig).unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        assert!(text.contains("    content: |\n      #!/bin/sh\n"));
        assert!(text.ends_with("runcmd:\n  - [sh, /var/lib/probe-bootstrap.sh]\n"));
    }

    #[test]
    fn unsafe_values_are_named() {
        for (value, spaces, want) in [
            ("it's", true, "a '"),
            ("a\nb", true, "a newline"),
            ("a b", false, "a space"),
            ("a\u{1b}[31m", true, "U+001B"),
            ("a\\b", true, "a \\"),
        ] {
            let e = check_value("--x", value, spaces).unwrap_err().to_string();
            assert!(e.contains(want), "{value:?}: {e}");
        }
        check_value("--x", "Web Server 1 ${Ref}", true).unwrap();
    }

    #[test]
    fn over_the_limit_is_refused_with_its_size() {
        let mut v = values();
        v.args = vec!["x".repeat(LIMIT)];
        let e = render(&v, Format::Script).unwrap_err().to_string();
        assert!(e.contains("bytes, over the 16384"), "{e}");
    }
}
