//! The collector labels the reports of agents that could not reach the EC2 API (a private
//! subnet with no ec2 endpoint, an instance without a role) with its own credentials: the
//! agent's own discovery, then the same judgement, so a verdict reads the same whichever
//! side had the API. Answers are cached per VPC and subnet, and per instance for names.

use super::cache::Cache;
use super::entry::Entry;
use crate::context::ec2::{self, Ec2Error, SdkEc2};
use crate::model::{Instance, SourceStatus, VpcView};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Time the EC2 API has to describe a VPC before the report is stored as the agent sent it.
const LIMIT: Duration = Duration::from_secs(3);

type Key = (String, String, String);

/// Labels reports with this machine's EC2 API.
pub struct Enricher {
    /// Cleared when this machine turns out to have no credentials.
    on: AtomicBool,
    clients: Cache<String, Result<Arc<SdkEc2>, Ec2Error>>,
    views: Cache<Key, Result<Arc<VpcView>, String>>,
    names: Cache<String, Option<String>>,
}

impl Enricher {
    /// Reuses what the EC2 API said of a subnet (or the failure to ask) for `max_age`.
    #[must_use]
    pub fn new(max_age: Duration) -> Self {
        Self {
            on: AtomicBool::new(true),
            clients: Cache::new(Duration::from_secs(3600)),
            views: Cache::new(max_age),
            names: Cache::new(Duration::from_secs(600)),
        }
    }

    /// Looks for credentials once; without any, labelling stops and the terminal says why.
    pub async fn check_credentials(&self) {
        match ec2::credentials(LIMIT).await {
            Ok(()) => eprintln!(
                "probe collect: AWS credentials found: reports whose agent had no EC2 API are labelled with this machine's"
            ),
            Err(why) => {
                self.on.store(false, Ordering::Relaxed);
                eprintln!(
                    "probe collect: {why}: reports are stored as their agents labelled them (give this machine credentials, or pass --ec2 off to silence this)"
                );
            }
        }
    }

    /// Labels `entry` when its agent had no EC2 API, and says how it went in
    /// `agent.context.collector_ec2`; fills in the instance's Name tag when it is missing.
    pub async fn label(&self, entry: &mut Entry) {
        let r = &entry.report;
        let Some(known) = &r.agent.instance else {
            return;
        };
        let relabel = !r.agent.context.ec2.is_ok() && r.agent.context.collector_ec2.is_none();
        let rename = known.name.is_none() && known.instance_id.is_some();
        if !self.on.load(Ordering::Relaxed) || r.via.is_some() || !(relabel || rename) {
            return;
        }
        // Only reports that need the EC2 API pay for this copy, not every post.
        let instance = known.clone();
        let region = instance.region.clone().or_else(|| r.agent.region.clone());
        let client = match &region {
            Some(region) => Box::pin(self.client(region))
                .await
                .map_err(|e| e.to_string()),
            None => Err("no region in the report to look up".into()),
        };
        let (view, name) = match &client {
            Ok(client) => {
                tokio::join!(
                    Box::pin(self.view(client, region.as_deref(), &instance, relabel)),
                    Box::pin(self.name(client, &instance, rename))
                )
            }
            Err(why) => (relabel.then(|| Err(why.clone())), None),
        };
        if name.is_none() && view.is_none() {
            return;
        }
        let report = &mut entry.report;
        if let (Some(name), Some(i)) = (name, report.agent.instance.as_mut()) {
            i.name = Some(name);
        }
        if let Some(view) = view {
            let status = match view {
                Ok(view) => {
                    for t in &mut report.targets {
                        let expect = t.verdict.expected;
                        crate::verdict::judge(t, expect, Some(&view), Some(&instance));
                    }
                    report.pass = report.targets.iter().all(|t| t.verdict.pass);
                    SourceStatus::Ok
                }
                Err(why) => SourceStatus::Unavailable(why),
            };
            report.agent.context.collector_ec2 = Some(status);
        }
        entry.sync();
    }

    async fn client(&self, region: &str) -> Result<Arc<SdkEc2>, Ec2Error> {
        self.clients
            .get(&region.to_string(), async {
                Box::pin(SdkEc2::load(region, LIMIT)).await.map(Arc::new)
            })
            .await
    }

    /// The VPC around the instance's subnet, when `wanted`.
    async fn view(
        &self,
        client: &SdkEc2,
        region: Option<&str>,
        instance: &Instance,
        wanted: bool,
    ) -> Option<Result<Arc<VpcView>, String>> {
        if !wanted {
            return None;
        }
        let (Some(region), Some(vpc), Some(subnet)) =
            (region, &instance.vpc_id, &instance.subnet_id)
        else {
            return Some(Err("no VPC and subnet in the report to look up".into()));
        };
        let key = (region.to_string(), vpc.clone(), subnet.clone());
        let found = self
            .views
            .get(&key, async {
                // The SDK's futures are large: keep them on the heap.
                match tokio::time::timeout(LIMIT, Box::pin(client.discover(vpc, subnet))).await {
                    Ok(Ok(view)) => Ok(Arc::new(view)),
                    Ok(Err(why)) => Err(format!("EC2 API: {why}")),
                    Err(_) => Err(format!(
                        "EC2 API did not answer within {}",
                        humantime::format_duration(LIMIT)
                    )),
                }
            })
            .await;
        Some(found)
    }

    /// The Name tag, when `wanted` (the agent's metadata did not give it).
    async fn name(&self, client: &SdkEc2, instance: &Instance, wanted: bool) -> Option<String> {
        if !wanted {
            return None;
        }
        let id = instance.instance_id.clone()?;
        self.names
            .get(&id, async {
                let ids = [id.clone()];
                let found =
                    tokio::time::timeout(LIMIT, Box::pin(client.instances(&ids, None))).await;
                found.ok()?.ok()?.into_iter().next()?.name
            })
            .await
    }
}
