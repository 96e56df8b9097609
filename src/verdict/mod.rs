//! The verdict logic: what an address is, what a target's results mean and what looks wrong
//! in the VPC. Pure functions of the model; the check engine and the collector both call
//! [`judge`].

mod answer;
mod class;
mod decide;
mod diagnose;
mod firewall;
mod policy;
mod predict;
mod route;

pub use class::{aws_service, classify, enrich};
pub use decide::verdict;
pub use diagnose::diagnose;
pub use predict::predict;

use crate::model::{Expect, Instance, Path, TargetReport, VpcView};

/// Decides a target's verdict: labels its addresses first when the EC2 API described the
/// VPC, and adds what looks wrong there. The agent judges after its checks; the collector
/// judges again the reports whose agent could not reach the EC2 API.
pub fn judge(
    t: &mut TargetReport,
    expect: Option<Expect>,
    vpc: Option<&VpcView>,
    instance: Option<&Instance>,
) {
    if let Some(v) = vpc {
        class::enrich(&mut t.addresses, v);
    }
    tcp_only(&mut t.addresses);
    let label = t.scheme.to_string().to_ascii_uppercase();
    t.verdict = decide::verdict(&t.dns, &t.addresses, expect, &label, vpc);
    if let Some(v) = vpc {
        t.verdict.diagnoses = diagnose::diagnose(t, v, instance);
    }
    if let Some(mut p) = vpc
        .zip(instance)
        .and_then(|(v, i)| predict::predict(t, v, i))
    {
        let (reachable, path) = (t.verdict.reachable, t.verdict.path);
        p.says = predict::says(&p, reachable, path);
        let agrees = p.reachable == reachable && (!reachable || p.path == path);
        // A cause is named only where the configuration shows it and the packets agree, and
        // when no diagnosis of the tutorial's patterns (with its own fix) explains it already.
        let cause = p
            .because
            .iter()
            .find(|f| !f.allows)
            .and_then(|f| f.fix.clone());
        if let Some(d) = cause.filter(|_| agrees && !reachable) {
            if !t.verdict.diagnoses.iter().any(diagnose::explains_failure) {
                t.verdict.diagnoses.push(d);
            }
        }
        t.verdict.agrees = Some(agrees);
        t.verdict.predicted = Some(p);
    }
    if expect == Some(Expect::Auto) {
        expect_auto(&mut t.verdict);
    }
}

/// Interface endpoints carry TCP only: an ENI that answered no ping is stated as what it is,
/// not reported as a failed stage.
fn tcp_only(addresses: &mut [crate::model::AddressReport]) {
    use crate::model::{AddressClass, Status};
    for a in addresses {
        if a.class == AddressClass::EndpointEni && a.icmp.received == 0 && a.icmp.sent > 0 {
            a.icmp.status = Status::Skipped;
            a.icmp.error = None;
            a.icmp.hint = Some(
                "interface endpoints carry TCP only: their ENIs never answer ping (a fact, not a fault)"
                    .into(),
            );
        }
    }
}

/// `--expect auto`: the prediction is the expectation. Without one (no EC2 API, or no
/// firewalls) the target must be reachable, and the reason says why that was asked.
fn expect_auto(v: &mut crate::model::Verdict) {
    if let (Some(p), Some(agrees)) = (&v.predicted, v.agrees) {
        v.pass = agrees;
        if !agrees {
            v.reason = format!(
                "the configuration predicts {}, the packets found {}: {}",
                p.path, v.path, v.reason
            );
        }
    } else {
        v.pass = v.reachable;
        if !v.pass {
            v.reason = format!(
                "expected reachable (auto, with no prediction from the configuration), got {}: {}",
                v.path, v.reason
            );
        }
    }
}

/// A verdict changed when its path moved: the one rule for what the agent logs under
/// `--every` and what the collector lists as a change.
#[must_use]
pub fn moved(before: Path, now: Path) -> Option<(Path, Path)> {
    (before != now).then_some((before, now))
}
