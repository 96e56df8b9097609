//! `probe userdata`: the EC2 UserData that puts probe on an instance from its first boot.
//! The rendered script is the trust anchor: it pins each architecture's sha256, so what a
//! source serves (a relay, S3, a release) is checked, never trusted.

mod invalid;
pub mod render;

pub use invalid::UserDataError;

use crate::error::{Error, exit};
use render::{CA_PATH, Format, TOKEN_PATH, Values, check_value};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "Examples:
  probe userdata --source http://10.10.0.10:7878/v1/probe --sums dist/SHA256SUMS \\
      --token-file probe.token -- s3 --report-to http://10.10.0.10:7878 --console
  probe userdata --source https://BUCKET.s3.ap-northeast-2.amazonaws.com/probe/ \\
      --sha256 x86_64=HEX --format cloudformation -- s3 --console";

/// Arguments of `probe userdata`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Where the instance fetches probe, tried in order every round (repeatable): a relay's
    /// http://HOST:PORT/v1/probe, or a URL prefix ending in / (S3, a release) to which the
    /// artifact name, probe-ARCH-unknown-linux-musl, is appended.
    #[arg(long = "source", value_name = "URL", required = true)]
    pub sources: Vec<String>,

    /// A SHA256SUMS file (sha256sum format, as the release writes) pinning the binaries.
    #[arg(long, value_name = "FILE")]
    pub sums: Option<PathBuf>,

    /// A binary's sha256, as x86_64=HEX or aarch64=HEX (repeatable; overrides --sums).
    #[arg(long = "sha256", value_name = "ARCH=HEX")]
    pub sha256: Vec<String>,

    /// The collector's token: embedded, installed 0600 as /etc/probe/token, and passed to
    /// the agent as --token-file. Without it the UserData holds no secret: the agent proves
    /// its reports with the instance's AWS identity.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// A CA certificate (PEM) for the collector or targets: embedded, installed 0600 as
    /// /etc/probe/ca.pem, and passed to the agent as --ca-file.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// A relay on the instance too (probe install --relay).
    #[command(flatten)]
    pub relay: crate::install::Relay,

    /// What to print.
    #[arg(long, value_enum, default_value_t = Format::Script)]
    pub format: Format,

    /// The agent's probe check command line, as it runs by hand.
    #[arg(last = true, required = true, value_name = "CHECK_ARGS")]
    pub check: Vec<String>,
}

/// Runs `probe userdata`: prints the UserData, its size on stderr.
///
/// # Errors
/// Usage errors: a bad source, sha256, file or check argument, or UserData over 16 KiB.
pub fn execute(args: &Args) -> Result<u8, Error> {
    let values = values(args).map_err(Error::usage)?;
    let (text, size) =
        render::render(&values, args.format).map_err(|e| Error::usage(UserDataError::from(e)))?;
    print!("{text}");
    eprintln!(
        "probe userdata: {size} bytes of the {} EC2 accepts{}",
        render::LIMIT,
        if args.format == Format::Cloudformation {
            " (before Fn::Sub fills in references)"
        } else {
            ""
        }
    );
    Ok(exit::PASS)
}

/// Reads and validates everything the script will hold.
fn values(args: &Args) -> Result<Values, UserDataError> {
    let cfn = args.format == Format::Cloudformation;
    for s in &args.sources {
        validate_source(s, cfn)?;
    }
    let (x86, arm) = pinned(args)?;
    let token = args
        .token_file
        .as_deref()
        .map(|f| read_token(f, cfn))
        .transpose()?;
    let ca = args.ca_file.as_deref().map(read_ca).transpose()?;
    for a in &args.check {
        check_value("the check argument", a, true)?;
    }
    for (flag, what) in [("--token-file", "token"), ("--ca-file", "certificate")] {
        if args
            .check
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        {
            return Err(UserDataError::AfterDashDash { flag, what });
        }
    }
    // What runs by hand runs at boot: the same parser, with the files given here standing in
    // for the copies the instance will have.
    let mut local = args.check.clone();
    let mut instance = args.check.clone();
    if let Some(f) = &args.token_file {
        local.extend(["--token-file".into(), f.display().to_string()]);
        instance.extend(["--token-file".into(), TOKEN_PATH.into()]);
    }
    if let Some(f) = &args.ca_file {
        local.extend(["--ca-file".into(), f.display().to_string()]);
        instance.extend(["--ca-file".into(), CA_PATH.into()]);
    }
    // CloudFormation references stand where a value will be; the parser sees a stand-in.
    let local: Vec<String> = local.iter().map(|a| without_references(a)).collect();
    crate::check::plan::validate_line(&local, true)?;
    let service = crate::install::unit::service_command(&instance)?;
    if let Some(forward) = &args.relay.forward {
        check_value("--relay", forward, false)?;
        check_value("--relay-listen", &args.relay.listen, false)?;
        // A ${Ref} URL is checked by the template's AllowedPattern.
        let checked = if cfn && forward.contains("${") {
            crate::install::Relay {
                forward: Some("https://ref".into()),
                ..args.relay.clone()
            }
        } else {
            args.relay.clone()
        };
        checked.unit(&service)?;
    }
    Ok(Values {
        sources: args.sources.clone(),
        sha256_x86_64: x86,
        sha256_aarch64: arm,
        token,
        ca,
        args: instance,
        relay: args.relay.forward.clone(),
        relay_listen: args.relay.listen.clone(),
    })
}

fn validate_source(url: &str, cfn: bool) -> Result<(), UserDataError> {
    check_value("--source", url, false)?;
    // A whole reference (${ProbeSource}) is checked by the template's AllowedPattern.
    if cfn && url.starts_with("${") {
        return Ok(());
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(UserDataError::SourceScheme(url.to_string()));
    }
    if !(url.ends_with("/v1/probe") || url.ends_with('/')) {
        return Err(UserDataError::SourceForm(url.to_string()));
    }
    if url.contains('$') && !cfn {
        return Err(UserDataError::Reference {
            flag: "--source",
            value: url.to_string(),
            fix: "use --format cloudformation, or write the value",
        });
    }
    Ok(())
}

/// The pinned sha256 per architecture: --sha256 over --sums; at least one.
fn pinned(args: &Args) -> Result<(Option<String>, Option<String>), UserDataError> {
    let (mut x86, mut arm) = (None, None);
    if let Some(file) = &args.sums {
        let text =
            std::fs::read_to_string(file).map_err(|source| UserDataError::SumsUnreadable {
                path: file.clone(),
                source,
            })?;
        for line in text.lines() {
            let Some((hex, name)) = line.split_once(char::is_whitespace) else {
                continue;
            };
            let name = name.trim_start().trim_start_matches('*');
            let slot = match name.strip_prefix("probe-") {
                Some("x86_64-unknown-linux-musl") => &mut x86,
                Some("aarch64-unknown-linux-musl") => &mut arm,
                _ => continue,
            };
            *slot = Some(validate_hex(&format!("--sums {}", file.display()), hex)?);
        }
        if x86.is_none() && arm.is_none() {
            return Err(UserDataError::SumsEmpty(file.clone()));
        }
    }
    for pair in &args.sha256 {
        let (arch, hex) = pair
            .split_once('=')
            .ok_or_else(|| UserDataError::Sha256Form(pair.clone()))?;
        let slot = match arch {
            "x86_64" => &mut x86,
            "aarch64" => &mut arm,
            _ => {
                return Err(UserDataError::Sha256Arch(pair.clone()));
            }
        };
        *slot = Some(if hex.starts_with("${") && hex.ends_with('}') {
            if args.format != Format::Cloudformation {
                return Err(UserDataError::Reference {
                    flag: "--sha256",
                    value: pair.clone(),
                    fix: "use --format cloudformation",
                });
            }
            check_value("--sha256", hex, false)?;
            hex.to_string()
        } else {
            validate_hex("--sha256", hex)?
        });
    }
    if x86.is_none() && arm.is_none() {
        return Err(UserDataError::NoPin);
    }
    Ok((x86, arm))
}

fn validate_hex(what: &str, hex: &str) -> Result<String, UserDataError> {
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(UserDataError::NotSha256 {
            what: what.to_string(),
            hex: hex.to_string(),
        })
    }
}

fn read_token(file: &Path, cfn: bool) -> Result<String, UserDataError> {
    // A template's parameter reference (`${CollectorToken}`) is not the secret: the stack
    // puts the secret in its place, so the secret's rule cannot apply to it here.
    if cfn {
        if let Ok(text) = std::fs::read_to_string(file) {
            let text = text.trim();
            if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
                {
                    return Ok(text.to_string());
                }
            }
        }
    }
    let token = crate::auth::read_secret(file).map_err(UserDataError::Token)?;
    check_value(&format!("the token in {}", file.display()), &token, false)?;
    if token.contains("${") && !cfn {
        return Err(UserDataError::Reference {
            flag: "--token-file",
            value: file.display().to_string(),
            fix: "use --format cloudformation",
        });
    }
    Ok(token)
}

fn read_ca(file: &Path) -> Result<String, UserDataError> {
    let text = std::fs::read_to_string(file).map_err(|source| UserDataError::CaUnreadable {
        path: file.to_path_buf(),
        source,
    })?;
    let text = text.replace("\r\n", "\n");
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(UserDataError::CaEmpty(file.to_path_buf()));
    }
    for line in text.lines() {
        check_value(&format!("--ca-file {}", file.display()), line, true)?;
    }
    if text.contains('$') {
        return Err(UserDataError::CaDollar(file.to_path_buf()));
    }
    Ok(text)
}

/// `${Name}` references replaced by a stand-in the check parser accepts.
fn without_references(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        if let Some(end) = rest[start..].find('}') {
            out.push_str("ref");
            rest = &rest[start + end + 1..];
        } else {
            out.push_str(&rest[start..]);
            rest = "";
        }
    }
    out.push_str(rest);
    out
}
