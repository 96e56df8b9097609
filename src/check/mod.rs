//! `probe check`: resolve, ping, connect, handshake and request every address of every
//! target at once, then decide a verdict per target.

mod connection;
mod dns;
mod engine;
mod http;
mod icmp;
mod invalid;
pub mod plan;
mod tcp;
mod tls;

pub use engine::{Deps, run};
pub use plan::{Args, Fallback, Format, Plan};

use crate::context::{self, Ec2Mode};
use crate::deliver::{self, Delivery};
use crate::error::{Error, exit};
use crate::model::{self, Agent, Path};
use crate::net::dns::SystemResolver;
use crate::net::ping::SystemPinger;
use crate::net::tls::Trust;
use crate::output;
use crate::verdict;
use std::collections::HashMap;
use std::sync::Arc;

/// Runs `probe check` and returns the exit code.
///
/// # Errors
/// Usage errors (bad arguments or files) and environment errors (no resolver configuration,
/// `--ec2 required` unmet).
pub async fn execute(args: &Args) -> Result<u8, Error> {
    let env = |k: &str| std::env::var(k).ok();
    let tty = output::stdout_is_terminal();
    let settings = args.context.settings(&env).map_err(Error::usage)?;
    // The command line and its files first: nothing is sent for a run that cannot happen.
    let draft = plan::build(args, &env, tty, Fallback::Syntax).map_err(Error::usage)?;
    let trust = Trust::new(&draft.ca_files).map_err(Error::usage)?;
    let delivery = draft
        .report_to
        .as_ref()
        .map(|r| {
            let identity = if r.identity {
                let endpoint = settings
                    .imds
                    .clone()
                    .ok_or_else(|| Error::usage(plan::PlanError::IdentityImdsOff))?;
                Some(endpoint)
            } else {
                None
            };
            Delivery::new(
                &r.url,
                deliver::Credentials {
                    token_file: r.token_file.as_deref(),
                    identity,
                },
                r.spool.clone(),
                trust.client_config(),
            )
            .map_err(|error| {
                Error::Usage(crate::Usage::Delivery {
                    error,
                    url: "--report-to",
                    spool: "--spool",
                })
            })
        })
        .transpose()?;
    let metadata = context::metadata(&settings).await;
    let fallback = Fallback::Metadata {
        instance: metadata.instance.as_ref(),
        status: &metadata.status,
    };
    let plan = plan::build(args, &env, tty, fallback).map_err(Error::usage)?;
    let needs_dns = plan.targets.iter().any(|(t, _)| t.ip_literal().is_none());
    let resolver = if needs_dns {
        SystemResolver::new(plan.resolver, plan.timeout).map_err(Error::environment)?
    } else {
        SystemResolver::none()
    };
    let pinger = SystemPinger::new();
    // Every address at once where the machine allows it: one timeout for a thousand
    // unreachable addresses, not one per wave.
    let files = crate::limits::raise_open_files();
    tracing::debug!("open-file limit {files}");
    let mut agent = agent(&plan, &resolver, &pinger);
    agent.context.imds.clone_from(&metadata.status);
    agent.instance = metadata.instance.clone();
    let deps = Deps {
        agent,
        resolver: Arc::new(resolver),
        pinger: Arc::new(pinger),
        trust,
    };
    let mut last: HashMap<String, Path> = HashMap::new();
    // Installed before the first run, so a stop asked during it lets it finish first.
    let mut stop = std::pin::pin!(crate::stop::requested());
    loop {
        let report = once(&plan, &deps, &settings, metadata.instance.as_ref()).await?;
        let text = match plan.format {
            Format::Json => output::json::render(&report),
            Format::Table => output::table::render_width(&report, output::terminal_width()),
            Format::Console => deliver::console_lines(&report).join("\n") + "\n",
        };
        output::emit(&text)?;
        if plan.console {
            deliver::to_console(&report);
        }
        let mut delivered = true;
        if let Some(d) = &delivery {
            let outcome = d.deliver(&report).await;
            eprintln!("probe: {}", outcome.line);
            delivered = outcome.delivered;
        }
        let Some(period) = plan.every else {
            return Ok(match (report.pass, delivered) {
                (false, _) => exit::FAIL,
                (true, false) => exit::UNDELIVERED,
                (true, true) => exit::PASS,
            });
        };
        for t in &report.targets {
            let before = last.insert(t.target.clone(), t.verdict.path);
            if let Some((from, to)) = before.and_then(|b| verdict::moved(b, t.verdict.path)) {
                tracing::warn!("{}: {from} -> {to}: {}", t.target, t.verdict.reason);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = &mut stop => return Ok(exit::PASS),
        }
    }
}

/// One run: the checks, with the EC2 API read alongside.
async fn once(
    plan: &Plan,
    deps: &Deps<SystemResolver, SystemPinger>,
    settings: &context::Settings,
    instance: Option<&model::Instance>,
) -> Result<model::Report, Error> {
    let discovery = context::discover(settings, plan.region.as_deref(), instance);
    if settings.ec2 == Ec2Mode::Required {
        let known = discovery.await;
        if known.view.is_none() {
            return Err(Error::environment(crate::Environment::Ec2Required(
                known.status,
            )));
        }
        return Ok(run(plan, deps, std::future::ready(known)).await);
    }
    // The EC2 API is read while the checks run: it costs no time of its own.
    Ok(run(plan, deps, discovery).await)
}

fn agent(plan: &Plan, resolver: &SystemResolver, pinger: &SystemPinger) -> Agent {
    use crate::net::{dns::Resolve, ping::Ping};
    Agent {
        hostname: hostname(),
        version: env!("CARGO_PKG_VERSION").into(),
        region: plan.region.clone(),
        vpc_cidrs: plan.vpc_cidrs.clone(),
        resolvers: resolver.servers(),
        icmp: pinger.mode().into(),
        instance: None,
        context: model::ContextStatus::default(),
    }
}

/// The kernel's host name (namespaces of the lab each have their own).
#[must_use]
pub fn hostname() -> String {
    // A hardened service may not see /proc/sys (ProcSubset=pid): /etc/hostname then.
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
