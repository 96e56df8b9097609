//! Command-line arguments of `probe check`, validated into a plan with nothing optional
//! left to decide.

pub use super::invalid::PlanError;
use crate::model::{Expect, Instance, SourceStatus, region};
use crate::output::{self, Form};
use crate::target::{self, Target};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Output format requested on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table on a terminal, JSON otherwise.
    Auto,
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
    /// Only the marked verdict lines (probe.verdict/v1) that --console writes to
    /// /dev/console: for a service whose output systemd copies to the serial console.
    Console,
}

const EXAMPLES: &str = "Examples:
  probe check s3 cloudformation --expect s3=gateway-endpoint
  probe check https://sts.ap-northeast-2.amazonaws.com/ tcp://10.10.0.5:5432 -o json
  probe check s3 --report-to http://10.10.0.10:7878 --token-file probe.token --every 60s";

/// Arguments of `probe check`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// What to check: an AWS service name (s3, cloudformation, sts...), a host name,
    /// host:port, or a URL (https://, http://, tls://, tcp://).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// AWS region for service names [default: AWS_REGION, AWS_DEFAULT_REGION, then the
    /// instance metadata's].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// DNS server to ask instead of those in /etc/resolv.conf.
    #[arg(long, value_name = "IP[:PORT]", value_parser = crate::values::resolver)]
    pub resolver: Option<SocketAddr>,

    /// A VPC CIDR block, to classify addresses (repeatable) [default: the instance
    /// metadata's].
    #[arg(long = "vpc-cidr", value_name = "CIDR", value_parser = crate::values::cidr)]
    pub vpc_cidrs: Vec<IpNet>,

    /// What a target should come to: a path (interface-endpoint, gateway-endpoint, vpc,
    /// peering, transit-gateway, private, nat-gateway, public, unreachable, dns-failed),
    /// reachable, or auto: what the VPC's configuration predicts (repeatable; a bare --expect
    /// auto for every other target).
    #[arg(long = "expect", value_name = "TARGET=PATH")]
    pub expects: Vec<String>,

    /// ICMP echo requests per address; 0 turns ICMP off.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub ping_count: u16,

    /// Time between echo requests to one address.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = crate::values::duration)]
    pub ping_interval: Duration,

    /// Time limit of each stage (each DNS server asked, each echo, TCP, TLS, HTTP).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::values::duration)]
    pub timeout: Duration,

    /// Time limit of the checks, DNS to the last HTTP byte [default: 5 x --timeout]; the
    /// instance metadata is read before them, the EC2 API alongside (--ec2-timeout).
    #[arg(long, value_name = "DURATION", value_parser = crate::values::duration)]
    pub deadline: Option<Duration>,

    /// Most addresses checked at once [default: as many as the open-file limit allows,
    /// raised at start].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Extra trusted CA certificates, PEM (repeatable; SSL_CERT_FILE is added too).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,

    /// Text the HTTP body must contain.
    #[arg(long, value_name = "TEXT")]
    pub expect_body: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Auto)]
    pub output: Output,

    /// Instance metadata and EC2 API options.
    #[command(flatten)]
    pub context: crate::context::Options,

    /// Send the JSON report to this collector (probe collect), as http://10.10.0.5:7878.
    #[arg(long, value_name = "URL")]
    pub report_to: Option<String>,

    /// File holding the token shared with the collector.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Prove reports with this instance's AWS identity: an ed25519 key kept in the spool,
    /// enrolled with the signed instance identity document (aws), or not (off) [default: aws
    /// without --token-file, off with it].
    #[arg(long, value_name = "MODE", value_enum)]
    pub identity: Option<IdentityMode>,

    /// Where reports wait while the collector is unreachable [default: /var/spool/probe for
    /// root, else ~/.local/state/probe/spool].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,

    /// Check again every DURATION (as 60s), logging each verdict that changes.
    #[arg(long, value_name = "DURATION", value_parser = crate::values::period)]
    pub every: Option<Duration>,

    /// Also write each verdict as one marked line to /dev/console, which the EC2 API's
    /// GetConsoleOutput returns even from an instance with no network path.
    #[arg(long)]
    pub console: bool,
}

/// Whether reports are proven with the instance's AWS identity (`--identity`).
// The option's help describes both values; documented variants would turn the whole help
// into clap's long layout.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityMode {
    Aws,
    Off,
}

/// Where reports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTo {
    /// The collector's URL.
    pub url: String,
    /// The shared token's file.
    pub token_file: Option<PathBuf>,
    /// Sign with the instance's identity.
    pub identity: bool,
    /// The spool directory.
    pub spool: PathBuf,
}

/// What fills in a region and VPC CIDRs the command line does not give.
#[derive(Debug, Clone, Copy)]
pub enum Fallback<'a> {
    /// Nothing yet: check the command line's syntax only, before anything is sent.
    Syntax,
    /// The instance metadata, or why there is none.
    Metadata {
        /// The instance, when the metadata answered.
        instance: Option<&'a Instance>,
        /// `ok`, `off` or why it is unavailable.
        status: &'a SourceStatus,
    },
}

/// Concrete output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Table for people.
    Table,
    /// JSON document.
    Json,
    /// Marked verdict lines.
    Console,
}

/// A validated `probe check` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Targets in command-line order, each with its expectation.
    pub targets: Vec<(Target, Option<Expect>)>,
    /// Region used to expand service names.
    pub region: Option<String>,
    /// DNS server override.
    pub resolver: Option<SocketAddr>,
    /// VPC CIDR blocks.
    pub vpc_cidrs: Vec<IpNet>,
    /// Echo requests per address.
    pub ping_count: u16,
    /// Time between echo requests.
    pub ping_interval: Duration,
    /// Per-stage time limit.
    pub timeout: Duration,
    /// Whole-run time limit.
    pub deadline: Duration,
    /// The operator's cap on addresses checked at once; the open-file limit bounds it too.
    pub concurrency: Option<usize>,
    /// Extra trusted CA files.
    pub ca_files: Vec<PathBuf>,
    /// Required body text.
    pub expect_body: Option<String>,
    /// Output format.
    pub format: Format,
    /// The collector, when reports are sent.
    pub report_to: Option<ReportTo>,
    /// Period of repeated runs.
    pub every: Option<Duration>,
    /// Verdicts also go to /dev/console.
    pub console: bool,
}

/// Validates `args` into a plan. `env` reads environment variables; `tty` tells whether
/// stdout is a terminal.
///
/// # Errors
/// What is wrong with the line; its text names the bad argument and the fix.
pub fn build(
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
    tty: bool,
    fallback: Fallback<'_>,
) -> Result<Plan, PlanError> {
    if args.targets.is_empty() {
        return Err(PlanError::NoTarget);
    }
    let (known, instance) = match fallback {
        // Any well-formed region lets service names through the syntax check.
        Fallback::Syntax => (Some("us-east-1"), None),
        Fallback::Metadata { instance, .. } => {
            (instance.and_then(|i| i.region.as_deref()), instance)
        }
    };
    let region = region::choose(args.region.as_deref(), env, known)?.map(|(r, _)| r);
    let targets: Vec<Target> = args
        .targets
        .iter()
        .map(|t| {
            target::parse(t, region.as_deref()).map_err(|error| PlanError::Target {
                error,
                metadata: match fallback {
                    Fallback::Metadata { status, .. }
                        if region.is_none() && *status != SourceStatus::Off =>
                    {
                        Some(status.clone())
                    }
                    _ => None,
                },
            })
        })
        .collect::<Result<_, _>>()?;
    let mut vpc_cidrs = args.vpc_cidrs.clone();
    if vpc_cidrs.is_empty() {
        vpc_cidrs = instance.map(|i| i.vpc_cidrs.clone()).unwrap_or_default();
    }
    let expects = validate_expects(&args.expects, &targets)?;
    let timeout = args.timeout;
    let deadline = args.deadline.unwrap_or(timeout * 5);
    if deadline < timeout {
        return Err(PlanError::Deadline { deadline, timeout });
    }
    if args.concurrency == Some(0) {
        return Err(PlanError::NoConcurrency);
    }
    let mut ca_files = args.ca_files.clone();
    for f in &ca_files {
        if !f.is_file() {
            return Err(PlanError::CaFile(f.clone()));
        }
    }
    if let Some(f) = env("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        let path = PathBuf::from(&f);
        if !path.is_file() {
            return Err(PlanError::SslCertFile(f));
        }
        ca_files.push(path);
    }
    Ok(Plan {
        targets: targets.into_iter().zip(expects).collect(),
        region,
        resolver: args.resolver,
        vpc_cidrs,
        ping_count: args.ping_count,
        ping_interval: args.ping_interval,
        timeout,
        deadline,
        concurrency: args.concurrency,
        ca_files,
        expect_body: args.expect_body.clone(),
        format: format(args.output, tty),
        report_to: args
            .report_to
            .as_ref()
            .map(|url| report_to(args, url))
            .transpose()?,
        every: args.every,
        console: args.console,
    })
}

/// Validates a `probe check` command line given as words (without `probe check`) exactly
/// as the command would, before anything is sent: for `probe userdata` and `probe install`,
/// so that what runs at boot is what runs by hand. With `files` false, `--ca-file` paths
/// are not looked for (they name files on another machine).
///
/// # Errors
/// What `probe check` would say of it.
pub fn validate_line(words: &[String], files: bool) -> Result<Plan, PlanError> {
    #[derive(clap::Parser)]
    #[command(name = "probe check")]
    struct Line {
        #[command(flatten)]
        args: Args,
    }
    let argv = std::iter::once("probe check".to_string()).chain(words.iter().cloned());
    let mut line = <Line as clap::Parser>::try_parse_from(argv)?;
    if !files {
        line.args.ca_files.clear();
    }
    build(&line.args, &|_| None, false, Fallback::Syntax)
}

fn format(output: Output, tty: bool) -> Format {
    let common = match output {
        Output::Console => return Format::Console,
        Output::Auto => output::Output::Auto,
        Output::Table => output::Output::Table,
        Output::Json => output::Output::Json,
    };
    match common.form(tty) {
        Form::Table => Format::Table,
        Form::Json => Format::Json,
    }
}

fn validate_expects(
    expects: &[String],
    targets: &[Target],
) -> Result<Vec<Option<Expect>>, PlanError> {
    let mut out = vec![None; targets.len()];
    let mut auto = false;
    for e in expects {
        if e == "auto" {
            auto = true;
            continue;
        }
        let (name, path) = e
            .split_once('=')
            .ok_or_else(|| PlanError::ExpectForm(e.clone()))?;
        let expect: Expect = path.parse().map_err(|why| PlanError::ExpectPath {
            given: e.clone(),
            why,
        })?;
        let index = targets
            .iter()
            .position(|t| t.input == name)
            .or_else(|| targets.iter().position(|t| t.host == name))
            .ok_or_else(|| PlanError::ExpectTarget {
                given: e.clone(),
                name: name.to_string(),
                targets: targets.iter().map(|t| t.input.clone()).collect(),
            })?;
        if out[index].replace(expect).is_some() {
            return Err(PlanError::ExpectTwice(name.to_string()));
        }
    }
    if auto {
        // The targets named with their own expectation keep it.
        for e in &mut out {
            e.get_or_insert(Expect::Auto);
        }
    }
    Ok(out)
}

/// `--report-to`'s proofs: the token, the identity (the default without a token), or both.
fn report_to(args: &Args, url: &str) -> Result<ReportTo, PlanError> {
    let identity = match args.identity {
        Some(mode) => mode == IdentityMode::Aws,
        None => args.token_file.is_none(),
    };
    if !identity && args.token_file.is_none() {
        return Err(PlanError::NoProof);
    }
    if identity && args.context.no_imds {
        return Err(PlanError::IdentityWithoutImds);
    }
    Ok(ReportTo {
        url: url.to_string(),
        token_file: args.token_file.clone(),
        identity,
        spool: args
            .spool
            .clone()
            .unwrap_or_else(crate::deliver::default_spool),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Path;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan_of(line: &str, env: &[(&str, &str)]) -> Result<Plan, String> {
        let argv = std::iter::once("check").chain(line.split_whitespace());
        let cli = Cli::try_parse_from(argv).map_err(|e| crate::values::one_line(&e))?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let env = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        build(&cli.args, &env, false, Fallback::Syntax).map_err(|e| e.to_string())?;
        build(
            &cli.args,
            &env,
            false,
            Fallback::Metadata {
                instance: None,
                status: &SourceStatus::Off,
            },
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_bare_expect_auto_covers_every_target_not_named() {
        let p = plan_of(
            "s3 sts cloudformation --region ap-northeast-2 --expect auto --expect s3=gateway-endpoint --expect sts=auto",
            &[],
        )
        .unwrap();
        let expects: Vec<Option<Expect>> = p.targets.iter().map(|(_, e)| *e).collect();
        assert_eq!(
            expects,
            vec![
                Some(Expect::Path(Path::GatewayEndpoint)),
                Some(Expect::Auto),
                Some(Expect::Auto)
            ]
        );
    }

    #[test]
    fn command_lines_to_plans() {
        let p = plan_of(
            "s3 cloudformation --region ap-northeast-2 --expect s3=gateway-endpoint --vpc-cidr 10.10.0.0/16 --timeout 1s",
            &[],
        )
        .unwrap();
        assert_eq!(p.targets.len(), 2);
        assert_eq!(p.targets[0].0.host, "s3.ap-northeast-2.amazonaws.com");
        assert_eq!(p.targets[0].1, Some(Expect::Path(Path::GatewayEndpoint)));
        assert_eq!(p.targets[1].1, None);
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.deadline, Duration::from_secs(5));
        assert_eq!(p.format, Format::Json);
        assert_eq!(p.vpc_cidrs, vec!["10.10.0.0/16".parse::<IpNet>().unwrap()]);

        let p = plan_of("sts", &[("AWS_DEFAULT_REGION", "eu-west-1")]).unwrap();
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        let p = plan_of(
            "sts",
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
        )
        .unwrap();
        assert_eq!(p.region.as_deref(), Some("us-east-1"));
        let p = plan_of("example.com --resolver 127.0.0.1:5353 -o table", &[]).unwrap();
        assert_eq!(p.resolver, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(p.format, Format::Table);
        assert_eq!(
            plan_of("example.com --resolver 10.0.0.2", &[])
                .unwrap()
                .resolver,
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            plan_of("example.com --expect example.com=unreachable", &[])
                .unwrap()
                .targets[0]
                .1,
            Some(Expect::Unreachable)
        );
    }

    #[test]
    fn a_bad_line_is_a_typed_error() {
        let build_of = |line: &str| {
            let argv = std::iter::once("check").chain(line.split_whitespace());
            let cli = Cli::try_parse_from(argv).unwrap();
            build(&cli.args, &|_| None, false, Fallback::Syntax)
        };
        assert!(matches!(build_of(""), Err(PlanError::NoTarget)));
        assert!(matches!(
            build_of("s3 --timeout 5s --deadline 1s"),
            Err(PlanError::Deadline { .. })
        ));
        assert!(matches!(
            build_of("s3 --expect s3=gateway-endpoint --expect s3=public"),
            Err(PlanError::ExpectTwice(name)) if name == "s3"
        ));
        assert!(matches!(
            validate_line(&["s3".into(), "--bogus".into()], false),
            Err(PlanError::Words(_))
        ));
    }

    #[test]
    fn command_lines_to_errors() {
        for (line, env, want) in [
            ("", vec![], "no target given"),
            ("s3", vec![], "pass --region"),
            (
                "s3 --region apne2",
                vec![],
                "--region \"apne2\" is not an AWS region",
            ),
            ("s3", vec![("AWS_REGION", "Tokyo")], "AWS_REGION \"Tokyo\""),
            ("h.example --expect h.example", vec![], "write TARGET=PATH"),
            (
                "h.example --expect other=public",
                vec![],
                "no target \"other\"; the targets are h.example",
            ),
            (
                "h.example --expect h.example=nowhere",
                vec![],
                "unknown expectation \"nowhere\"",
            ),
            (
                "h.example --expect h.example=public --expect h.example=vpc",
                vec![],
                "twice",
            ),
            (
                "h.example --timeout 2x",
                vec![],
                "'2x' for '--timeout <DURATION>'",
            ),
            ("h.example --timeout 0s", vec![], "longer than zero"),
            (
                "h.example --timeout 3s --deadline 1s",
                vec![],
                "shorter than --timeout",
            ),
            ("h.example --concurrency 0", vec![], "--concurrency 0"),
            (
                "h.example --resolver dns.local",
                vec![],
                "'dns.local' for '--resolver <IP[:PORT]>'",
            ),
            (
                "h.example --vpc-cidr 10.10.0.0/33",
                vec![],
                "'10.10.0.0/33' for '--vpc-cidr <CIDR>': give a CIDR block",
            ),
            (
                "h.example --ca-file /nonexistent/ca.pem",
                vec![],
                "--ca-file /nonexistent/ca.pem: no such file",
            ),
            (
                "h.example",
                vec![("SSL_CERT_FILE", "/nonexistent.pem")],
                "SSL_CERT_FILE=/nonexistent.pem",
            ),
            ("h.example:0", vec![], "port 0"),
        ] {
            let e = plan_of(line, &env).expect_err(line);
            assert!(e.contains(want), "{line:?}: got {e:?}, want {want:?}");
            assert!(!e.trim_end().contains('\n'), "one line: {e}");
        }
    }
}
