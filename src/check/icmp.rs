//! The ICMP stage: `--ping-count` echo requests, `--ping-interval` apart, each waiting up to
//! the stage timeout, all bounded by the run's deadline. ICMP never decides a verdict
//! (interface endpoint ENIs do not answer ping), so once the address has answered over TCP
//! the stage waits only [`GRACE`] more for replies in flight instead of holding the run.

use super::engine::Ctx;
use crate::model::{CheckError, IcmpReport, Kind, Phase, Status, millis};
use crate::net::dns::Resolve;
use crate::net::ping::{Echo, Ping};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long echo replies may still come once the address answered over TCP and the last
/// request is out: a reply takes one round trip, and the connection stages took several.
const GRACE: Duration = Duration::from_millis(25);

pub(super) async fn run<R: Resolve, P: Ping>(
    ctx: &Ctx<R, P>,
    ip: IpAddr,
    mut cutoff: watch::Receiver<Option<Instant>>,
) -> IcmpReport {
    if ctx.ping_count == 0 {
        return IcmpReport {
            status: Status::Skipped,
            hint: Some("ICMP is off (--ping-count 0)".into()),
            ..IcmpReport::default()
        };
    }
    if let Some(hint) = ctx.pinger.unavailable(ip) {
        return IcmpReport {
            status: Status::Skipped,
            hint: Some(hint),
            ..IcmpReport::default()
        };
    }
    // A random identifier per address keeps concurrent pings to one host apart.
    let ident = (uuid::Uuid::new_v4().as_u128() & 0xffff) as u16;
    let sent = Arc::new(AtomicU32::new(0));
    let first = Instant::now();
    // Every echo request is sent and gets the grace for its reply, however early TCP answered.
    let last_send = first + ctx.ping_interval * u32::from(ctx.ping_count - 1);
    let mut echoes = JoinSet::new();
    for seq in 0..ctx.ping_count {
        let pinger = ctx.pinger.clone();
        let sent = sent.clone();
        let start = first + ctx.ping_interval * u32::from(seq);
        let (deadline, timeout) = (ctx.deadline, ctx.timeout);
        echoes.spawn(async move {
            tokio::time::sleep_until(start).await;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            sent.fetch_add(1, Ordering::Relaxed);
            Some(pinger.echo(ip, ident, seq, timeout.min(left)).await)
        });
    }
    let mut rtts: Vec<Duration> = Vec::new();
    let mut errors: Vec<(std::io::ErrorKind, String)> = Vec::new();
    let mut cut: Option<Instant> = None;
    let mut cut_short = false;
    loop {
        let stop = async {
            match cut {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = echoes.join_next() => match joined {
                None => break,
                Some(Ok(Some(Echo::Reply(rtt)))) => rtts.push(rtt),
                Some(Ok(Some(Echo::Error(kind, message)))) => errors.push((kind, message)),
                Some(_) => {}
            },
            () = stop => {
                echoes.abort_all();
                cut_short = true;
                break;
            }
            Ok(()) = cutoff.changed(), if cut.is_none() => {
                cut = cutoff.borrow().map(|answered| answered.max(last_send) + GRACE);
            }
        }
    }
    summarize(
        sent.load(Ordering::Relaxed),
        &rtts,
        &errors,
        cut_short,
        ctx.timeout,
    )
}

/// Turns what came back into the stage's report.
fn summarize(
    sent: u32,
    rtts: &[Duration],
    errors: &[(std::io::ErrorKind, String)],
    cut_short: bool,
    timeout: Duration,
) -> IcmpReport {
    let received = u32::try_from(rtts.len()).unwrap_or(u32::MAX);
    let rtt_ms = (!rtts.is_empty()).then(|| {
        let total: Duration = rtts.iter().sum();
        millis(total / received)
    });
    let error = if received > 0 {
        None
    } else if let Some((kind, message)) = errors.first() {
        let kind = Kind::from_io(&std::io::Error::from(*kind));
        Some(CheckError::new(Phase::Icmp, kind, message.clone()))
    } else if sent == 0 {
        Some(CheckError::new(
            Phase::Icmp,
            Kind::Deadline,
            "the run's deadline passed before any echo request was sent",
        ))
    } else if cut_short {
        Some(CheckError::new(
            Phase::Icmp,
            Kind::Timeout,
            format!(
                "0 of {sent} echo replies, though the address answered over TCP: ICMP is filtered (interface endpoint ENIs never answer ping)"
            ),
        ))
    } else {
        Some(CheckError::new(
            Phase::Icmp,
            Kind::Timeout,
            format!(
                "0 of {sent} echo replies within {}",
                humantime::format_duration(timeout)
            ),
        ))
    };
    IcmpReport {
        status: if received > 0 {
            Status::Ok
        } else {
            Status::Fail
        },
        sent,
        received,
        rtt_ms,
        error,
        hint: None,
    }
}
