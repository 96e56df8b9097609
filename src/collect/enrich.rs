//! The collector labels the reports of agents that could not reach the EC2 API (a private
//! subnet with no ec2 endpoint, an instance without a role) with its own credentials: the
//! agent's own discovery, then the same judgement, so a verdict reads the same whichever
//! side had the API. An instance's Name tag, and its security groups when the agent did not
//! send them (an agent older than the prediction), come from DescribeInstances. Answers are
//! cached per VPC and subnet, and per instance.

use super::cache::Cache;
use super::entry::Entry;
use crate::context::ec2::{self, Ec2Error, InstanceInfo, SdkEc2};
use crate::model::{Instance, SourceStatus, VpcView};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Time the EC2 API has to describe a VPC before the report is stored as the agent sent it.
const LIMIT: Duration = Duration::from_secs(3);

type Key = (String, String, String);

/// Why the collector's EC2 API could not tell what a report lacks.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Lookup {
    /// The report names no region.
    #[error("no region in the report to look up")]
    NoRegion,
    /// The report names no VPC and subnet.
    #[error("no VPC and subnet in the report to look up")]
    NoPlace,
    /// The API answered with an error.
    #[error("EC2 API: {0}")]
    Ec2(#[source] Ec2Error),
    /// The API did not answer in time.
    #[error("EC2 API did not answer within {}", humantime::format_duration(LIMIT))]
    Timeout,
    /// DescribeInstances does not list the instance.
    #[error("DescribeInstances does not know {0}")]
    Unknown(String),
}

/// Labels reports with this machine's EC2 API.
pub struct Enricher {
    /// Cleared when this machine turns out to have no credentials.
    on: AtomicBool,
    clients: Cache<String, Result<Arc<SdkEc2>, Ec2Error>>,
    views: Cache<Key, Result<Arc<VpcView>, Lookup>>,
    instances: Cache<String, Option<InstanceInfo>>,
}

impl Enricher {
    /// Reuses what the EC2 API said of a subnet (or the failure to ask) for `max_age`.
    #[must_use]
    pub fn new(max_age: Duration) -> Self {
        Self {
            on: AtomicBool::new(true),
            clients: Cache::new(Duration::from_secs(3600)),
            views: Cache::new(max_age),
            instances: Cache::new(Duration::from_secs(600)),
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
    /// `agent.context.collector_ec2`; fills in the instance's Name tag when it is missing, and
    /// its security groups when the report is labelled without them.
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
        let regroup = relabel && known.security_groups.is_empty();
        // Only reports that need the EC2 API pay for this copy, not every post.
        let mut instance = known.clone();
        let region = instance.region.clone().or_else(|| r.agent.region.clone());
        let client = match &region {
            Some(region) => Box::pin(self.client(region)).await.map_err(Lookup::Ec2),
            None => Err(Lookup::NoRegion),
        };
        let (view, described) = match &client {
            Ok(client) => {
                tokio::join!(
                    Box::pin(self.view(client, region.as_deref(), &instance, relabel)),
                    Box::pin(self.describe(client, &instance, rename || regroup))
                )
            }
            Err(why) => (relabel.then(|| Err(why.clone())), None),
        };
        let name = described
            .as_ref()
            .and_then(|d| d.name.clone())
            .filter(|_| rename);
        let groups = described
            .map(|d| d.security_groups)
            .filter(|g| regroup && !g.is_empty());
        if name.is_none() && groups.is_none() && view.is_none() {
            return;
        }
        if let Some(groups) = &groups {
            instance.security_groups.clone_from(groups);
        }
        let report = &mut entry.report;
        if let Some(i) = report.agent.instance.as_mut() {
            if let Some(name) = name {
                i.name = Some(name);
            }
            if let Some(groups) = groups {
                i.security_groups = groups;
            }
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
                Err(why) => SourceStatus::Unavailable(why.to_string()),
            };
            report.agent.context.collector_ec2 = Some(status);
        }
        entry.sync();
    }

    /// The instance as DescribeInstances lists it now, or why it cannot be found; `None` when
    /// this machine has no EC2 API to ask (no credentials, or it did not answer).
    pub async fn instance_now(
        &self,
        region: &str,
        id: &str,
    ) -> Option<Result<InstanceInfo, Lookup>> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        let client = Box::pin(self.client(region)).await.ok()?;
        let ids = [id.to_string()];
        match tokio::time::timeout(LIMIT, Box::pin(client.instances(&ids, None))).await {
            Ok(Ok(found)) => Some(
                found
                    .into_iter()
                    .next()
                    .ok_or_else(|| Lookup::Unknown(id.to_string())),
            ),
            Ok(Err(e)) if e.to_string().contains("InvalidInstanceID") => {
                Some(Err(Lookup::Unknown(id.to_string())))
            }
            _ => None,
        }
    }

    /// The instance as DescribeInstances listed it within the cache's age (10 minutes), for
    /// checking a signed report; `None` when this machine has no EC2 API or it did not know.
    pub async fn instance_cached(&self, region: &str, id: &str) -> Option<InstanceInfo> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        let client = Box::pin(self.client(region)).await.ok()?;
        let instance = Instance {
            instance_id: Some(id.to_string()),
            ..Instance::default()
        };
        Box::pin(self.describe(&client, &instance, true)).await
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
    ) -> Option<Result<Arc<VpcView>, Lookup>> {
        if !wanted {
            return None;
        }
        let (Some(region), Some(vpc), Some(subnet)) =
            (region, &instance.vpc_id, &instance.subnet_id)
        else {
            return Some(Err(Lookup::NoPlace));
        };
        let key = (region.to_string(), vpc.clone(), subnet.clone());
        let found = self
            .views
            .get(&key, async {
                // The SDK's futures are large: keep them on the heap.
                match tokio::time::timeout(LIMIT, Box::pin(client.discover(vpc, subnet))).await {
                    Ok(Ok(view)) => Ok(Arc::new(view)),
                    Ok(Err(why)) => Err(Lookup::Ec2(why)),
                    Err(_) => Err(Lookup::Timeout),
                }
            })
            .await;
        Some(found)
    }

    /// The instance as DescribeInstances lists it, when `wanted` (the agent's metadata did
    /// not give its Name tag, or the report lacks its security groups).
    async fn describe(
        &self,
        client: &SdkEc2,
        instance: &Instance,
        wanted: bool,
    ) -> Option<InstanceInfo> {
        if !wanted {
            return None;
        }
        let id = instance.instance_id.clone()?;
        self.instances
            .get(&id, async {
                let ids = [id.clone()];
                let found =
                    tokio::time::timeout(LIMIT, Box::pin(client.instances(&ids, None))).await;
                found.ok()?.ok()?.into_iter().next()
            })
            .await
    }
}
