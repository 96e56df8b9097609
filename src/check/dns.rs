//! The DNS stage: the target's name resolved the way the system resolver would, each server
//! asked within the stage timeout, the whole stage within the run's deadline.

use super::engine::Ctx;
use crate::model::{CheckError, DnsRecord, DnsReport, Kind, Phase, millis};
use crate::net::dns::{Record, Resolve};
use crate::target::Target;
use std::time::Instant;
use tokio::time::timeout_at;

/// Resolves `target`'s host; an IP literal answers itself.
pub(super) async fn resolve<R: Resolve, P>(ctx: &Ctx<R, P>, target: &Target) -> DnsReport {
    let mut report = DnsReport::none();
    if let Some(ip) = target.ip_literal() {
        report.ok = true;
        report.addresses.push(ip);
        return report;
    }
    let _permit = ctx.permits.acquire().await;
    let t0 = Instant::now();
    let outcome = timeout_at(ctx.deadline, ctx.resolver.resolve(&target.host)).await;
    report.ms = millis(t0.elapsed());
    match outcome {
        Ok(Ok(answer)) => {
            report.ok = true;
            report.addresses = answer.addresses;
            report.cname = answer.cname;
            report.records = answer.records.into_iter().map(record).collect();
            report.rcode = Some(answer.rcode);
            report.server = Some(answer.server);
        }
        Ok(Err(failure)) => {
            report.rcode = failure.rcode;
            report.server = failure.server;
            report.error = Some(CheckError::new(Phase::Dns, failure.kind, failure.message));
        }
        Err(_) => {
            report.error = Some(CheckError::new(
                Phase::Dns,
                Kind::Deadline,
                "the run's deadline passed before DNS answered",
            ));
        }
    }
    report
}

fn record(r: Record) -> DnsRecord {
    DnsRecord {
        name: r.name,
        rtype: r.rtype.into(),
        ttl: r.ttl,
        data: r.data,
    }
}
