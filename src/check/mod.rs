//! `probe check`: resolve, ping, connect, handshake and request every address of every
//! target at once, then decide a verdict per target.

mod connect;
mod engine;
mod icmp;
pub mod plan;

pub use engine::{Deps, run};
pub use plan::{Args, Format, Plan};

use crate::error::{Error, exit};
use crate::net::dns::SystemResolver;
use crate::net::ping::SystemPinger;
use crate::net::tls::Trust;
use crate::report::{self, Agent};
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// Runs `probe check` and returns the exit code.
///
/// # Errors
/// Usage errors (bad arguments or files) and environment errors (no resolver configuration).
pub async fn execute(args: &Args) -> Result<u8, Error> {
    let tty = std::io::stdout().is_terminal();
    let plan = plan::build(args, &|k| std::env::var(k).ok(), tty).map_err(Error::Usage)?;
    let trust = Trust::new(&plan.ca_files).map_err(Error::Usage)?;
    let needs_dns = plan.targets.iter().any(|(t, _)| t.ip_literal().is_none());
    let resolver = if needs_dns {
        SystemResolver::new(plan.resolver, plan.timeout).map_err(Error::Environment)?
    } else {
        SystemResolver::none()
    };
    let pinger = SystemPinger::new();
    let deps = Deps {
        agent: agent(&plan, &resolver, &pinger),
        resolver: Arc::new(resolver),
        pinger: Arc::new(pinger),
        trust,
    };
    let report = run(&plan, &deps).await;
    let text = match plan.format {
        Format::Json => report::json::render(&report),
        Format::Table => report::table::render(&report),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Error::Environment(format!(
                "cannot write the report to stdout: {e}"
            )));
        }
    }
    Ok(if report.pass { exit::PASS } else { exit::FAIL })
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
    }
}

/// The kernel's host name (namespaces of the lab each have their own).
#[must_use]
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
