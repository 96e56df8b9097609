//! Instance identities at the collector: the nonce, the enrolment (AWS's signature over the
//! document, the account, region and VPC allowed, the key's proof over the nonce, the
//! registry's rules, and DescribeInstances when this machine has the EC2 API), and each
//! report's signature by an enrolled key. Every refusal is logged with its reason, counted
//! by reason for /metrics, and stores nothing.

use super::identities::{Conflict, REREAD, Registry, RegistryError};
use super::nonce::Nonces;
use crate::identity::trust::Unverified;
use crate::identity::wire::{self, Challenge, Enrolled, Enrolment};
use crate::identity::{Document, Trust, key};
use crate::model::{AuthMethod, Authenticated, Report};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a collector accepts of instance identities.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Accounts whose instances may enrol (at least one).
    pub accounts: Vec<String>,
    /// Regions they may be in; empty for any.
    pub regions: Vec<String>,
    /// VPCs their reports may come from; empty for any.
    pub vpcs: Vec<String>,
}

/// Why an enrolment or a signed report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an enrolment at all.
    #[error("not an enrolment: {0}")]
    Malformed(String),
    /// The nonce is not one this collector gave, or it was used or expired.
    #[error("unknown, used or expired nonce: ask GET /v1/enrol for a fresh one")]
    Nonce,
    /// AWS's signature or the document does not hold.
    #[error("{0}")]
    Document(Unverified),
    /// The account is not allowed.
    #[error("account {0} is not in --allow-account")]
    Account(String),
    /// The region is not allowed.
    #[error("region {0} is not in --allow-region")]
    Region(String),
    /// The key did not sign the nonce.
    #[error(
        "the proof does not verify with the public key sent: the agent must sign the nonce with its key"
    )]
    Proof,
    /// By the registry's rules.
    #[error("{0}")]
    Conflict(Conflict),
    /// DescribeInstances disagrees.
    #[error("EC2 API: {0}")]
    Ec2(String),
    /// The key id is not enrolled (or was forgotten).
    #[error("unknown key {0}: enrol it first (GET then POST /v1/enrol)")]
    UnknownKey(String),
    /// The key's signature over the body does not verify.
    #[error("the report's signature does not verify with key {0}")]
    Signature(String),
    /// The report speaks for another instance than its key.
    #[error("the report names instance {report}, but its key is enrolled for {key}")]
    Instance {
        /// The key's instance.
        key: String,
        /// The report's.
        report: String,
    },
    /// The report's VPC is not allowed.
    #[error("VPC {0} is not in --allow-vpc")]
    Vpc(String),
}

impl Refusal {
    /// The reason's name, as /metrics labels it and the agent reads it.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Nonce => "nonce",
            Self::Document(Unverified::Signature(_) | Unverified::Encoding) => "aws-signature",
            Self::Document(Unverified::Region(_)) => "no-certificate",
            Self::Document(Unverified::Document(_)) => "document",
            Self::Account(_) => "account",
            Self::Region(_) => "region",
            Self::Proof => "proof",
            Self::Conflict(Conflict::Older { .. }) => "older-enrolment",
            Self::Conflict(Conflict::SecondKey { .. }) => "second-key",
            Self::Conflict(Conflict::KeyInUse { .. }) => "key-in-use",
            Self::Ec2(_) => "ec2",
            Self::UnknownKey(_) => "unknown-key",
            Self::Signature(_) => "report-signature",
            Self::Instance { .. } => "instance-mismatch",
            Self::Vpc(_) => "vpc",
        }
    }
}

/// A report's proof, found by the gate, checked against the report by the handler.
#[derive(Debug, Clone)]
pub struct Proven {
    /// How.
    pub method: AuthMethod,
    /// The key's instance, account and id, when signed by a key.
    pub key: Option<(String, String, String)>,
    /// The agent's signature, as a relay forwards it.
    pub signature: Option<crate::deliver::Proof>,
}

impl Proven {
    /// What the stored report says of how it was authenticated.
    #[must_use]
    pub fn record(&self) -> Authenticated {
        let (instance_id, account_id, key_id) = match &self.key {
            Some((i, a, k)) => (Some(i.clone()), Some(a.clone()), Some(k.clone())),
            None => (None, None, None),
        };
        Authenticated {
            method: self.method,
            instance_id,
            account_id,
            key_id,
        }
    }
}

/// Why a relay cannot keep an enrolment its collector accepted.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The document the agent sent does not read.
    #[error(transparent)]
    Document(#[from] crate::identity::document::DocumentError),
    /// The collector's answer names another instance.
    #[error("the collector enrolled {enrolled}, the document is {document}'s")]
    OtherInstance {
        /// The collector's.
        enrolled: String,
        /// The document's.
        document: String,
    },
    /// The registry refuses it even after forgetting the older record.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The registry cannot be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The collector's side of identities.
pub struct Identities {
    trust: Trust,
    policy: Policy,
    registry: Registry,
    nonces: Nonces,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    enrolled: AtomicU64,
    /// When an unknown key last made this collector read the enrolments.
    caught_up: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// How often unknown keys may make a collector read the enrolments at once.
const CATCH_UP: std::time::Duration = std::time::Duration::from_millis(100);

impl Identities {
    /// Identities checked with `trust` and `policy`, enrolled in `registry`.
    #[must_use]
    pub fn new(trust: Trust, policy: Policy, registry: Registry) -> Self {
        Self {
            trust,
            policy,
            nonces: Nonces::new(registry.secret()),
            registry,
            refused: Mutex::default(),
            enrolled: AtomicU64::new(0),
            caught_up: tokio::sync::Mutex::new(None),
        }
    }

    /// A fresh nonce, which any collector sharing this one's database accepts once. Keeps
    /// nothing and never blocks.
    pub fn challenge(&self) -> Challenge {
        let ttl = i64::try_from(wire::NONCE_TTL.as_millis()).unwrap_or(i64::MAX);
        Challenge {
            nonce: self.nonces.make(now_ms().saturating_add(ttl)),
            expires_in: wire::NONCE_TTL.as_secs(),
        }
    }

    /// Checks an enrolment (everything but the EC2 API, which the handler asks) and returns
    /// its document and the key's id. Blocking: the nonce is spent in the database.
    ///
    /// # Errors
    /// The first check that fails; `Err(Err(..))` when the database cannot be written.
    pub fn check(
        &self,
        e: &Enrolment,
    ) -> Result<(Document, String), Result<Refusal, RegistryError>> {
        // The nonce first: a refused enrolment has spent it all the same. Only a nonce these
        // collectors made reaches the database.
        let Some(expires) = self.nonces.open(&e.nonce, now_ms()) else {
            return Err(Ok(Refusal::Nonce));
        };
        if !self.registry.spend(&e.nonce, expires).map_err(Err)? {
            return Err(Ok(Refusal::Nonce));
        }
        self.vouch(e).map_err(Ok)
    }

    /// The checks of an enrolment after its nonce: AWS's signature, the policy, the proof.
    fn vouch(&self, e: &Enrolment) -> Result<(Document, String), Refusal> {
        use base64::Engine as _;
        let doc = self
            .trust
            .verify(e.document.as_bytes(), &e.signature)
            .map_err(Refusal::Document)?;
        if !self.policy.accounts.contains(&doc.account_id) {
            return Err(Refusal::Account(doc.account_id));
        }
        if !self.policy.regions.is_empty() && !self.policy.regions.contains(&doc.region) {
            return Err(Refusal::Region(doc.region));
        }
        let public = base64::engine::general_purpose::STANDARD
            .decode(e.public_key.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| Refusal::Malformed("public_key is not a base64 ed25519 key".into()))?;
        if !key::verify(
            &public,
            &wire::enrol_message(&e.nonce, &e.document),
            &e.proof,
        ) {
            return Err(Refusal::Proof);
        }
        Ok((doc, key::key_id(&public)))
    }

    /// Records an enrolment [`Self::check`] passed. Blocking (the registry's file).
    ///
    /// # Errors
    /// By the registry's rules, or when it cannot be written (then `Err(Err(..))`).
    pub fn record(
        &self,
        doc: &Document,
        public_key: &str,
        key_id: &str,
    ) -> Result<Enrolled, Result<Refusal, RegistryError>> {
        match self.registry.enrol(doc, public_key.trim(), key_id) {
            Ok(Ok(())) => {
                self.enrolled.fetch_add(1, Ordering::Relaxed);
                Ok(Enrolled {
                    instance_id: doc.instance_id.clone(),
                    key_id: key_id.to_string(),
                })
            }
            Ok(Err(conflict)) => Err(Ok(Refusal::Conflict(conflict))),
            Err(e) => Err(Err(e)),
        }
    }

    /// Keeps, on a relay, an enrolment its collector accepted: the relay then checks the
    /// reports signed with that key before it acknowledges them. The collector is the
    /// authority, so an older record of the instance gives way. Blocking.
    ///
    /// # Errors
    /// When the document cannot be read or the registry written.
    pub fn remember(&self, e: &Enrolment, enrolled: &Enrolled) -> Result<(), KeepError> {
        let doc = Document::parse(e.document.as_bytes())?;
        if doc.instance_id != enrolled.instance_id {
            return Err(KeepError::OtherInstance {
                enrolled: enrolled.instance_id.clone(),
                document: doc.instance_id,
            });
        }
        let key = e.public_key.trim();
        if self.registry.enrol(&doc, key, &enrolled.key_id)?.is_ok() {
            return Ok(());
        }
        self.registry.forget(&doc.instance_id)?;
        Ok(self.registry.enrol(&doc, key, &enrolled.key_id)??)
    }

    /// The key behind a report's headers, if its signature over `body` verifies. From memory:
    /// never blocks.
    ///
    /// # Errors
    /// An unknown key or a signature that does not verify.
    pub fn verify_report(
        &self,
        key_id: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(String, String, String), Refusal> {
        let shown = if well_formed(key_id) {
            key_id.to_string()
        } else {
            return Err(Refusal::UnknownKey("(malformed)".into()));
        };
        let (instance, public, record) = self
            .registry
            .lookup(key_id)
            .ok_or_else(|| Refusal::UnknownKey(shown.clone()))?;
        if !key::verify(&public, &wire::report_message(body), signature) {
            return Err(Refusal::Signature(shown));
        }
        Ok((instance, record.account_id, shown))
    }

    /// Whether `report` may be stored under `proven`: it speaks for the key's instance, from
    /// an allowed VPC.
    ///
    /// # Errors
    /// Why not.
    pub fn admit(&self, proven: &Proven, report: &Report) -> Result<(), Refusal> {
        let Some((instance, _, _)) = &proven.key else {
            return Ok(());
        };
        let claimed = report.agent.instance.as_ref();
        let named = claimed
            .and_then(|i| i.instance_id.clone())
            .unwrap_or_else(|| "none".into());
        if &named != instance {
            return Err(Refusal::Instance {
                key: instance.clone(),
                report: crate::terminal::safe(&named).into_owned(),
            });
        }
        if !self.policy.vpcs.is_empty() {
            let vpc = claimed.and_then(|i| i.vpc_id.clone()).unwrap_or_default();
            if !self.policy.vpcs.contains(&vpc) {
                return Err(Refusal::Vpc(crate::terminal::safe(&vpc).into_owned()));
            }
        }
        Ok(())
    }

    /// Whether what DescribeInstances says of the key's instance agrees with the report: it
    /// is running, in the subnet the report names, with the security groups it names.
    ///
    /// # Errors
    /// What disagrees.
    pub fn agrees(
        info: &crate::context::ec2::InstanceInfo,
        report: &Report,
    ) -> Result<(), Refusal> {
        if info.state != "running" {
            return Err(Refusal::Ec2(format!(
                "{} is {}, not running",
                info.id, info.state
            )));
        }
        let Some(claimed) = report.agent.instance.as_ref() else {
            return Ok(());
        };
        if let (Some(theirs), Some(ours)) = (&claimed.subnet_id, &info.subnet_id) {
            if theirs != ours {
                return Err(Refusal::Ec2(format!(
                    "the report says subnet {}, DescribeInstances says {ours}",
                    crate::terminal::safe(theirs)
                )));
            }
        }
        let mut theirs = claimed.security_groups.clone();
        let mut ours = info.security_groups.clone();
        theirs.sort();
        ours.sort();
        if !theirs.is_empty() && !ours.is_empty() && theirs != ours {
            return Err(Refusal::Ec2(format!(
                "the report says security groups {}, DescribeInstances says {}",
                crate::terminal::safe(&theirs.join(",")),
                ours.join(",")
            )));
        }
        Ok(())
    }

    /// Counts and logs a refusal.
    pub fn refused(&self, what: &str, from: Option<std::net::SocketAddr>, why: &Refusal) {
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(why.code())
            .or_insert(0) += 1;
        let from = from.map(|a| a.ip().to_string()).unwrap_or_default();
        tracing::warn!("refused {what} from {from}: {why} ({})", why.code());
    }

    /// The counters, as Prometheus text.
    #[must_use]
    pub fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from(
            "# HELP probe_identity_enrolments_total Enrolments accepted since start.\n# TYPE probe_identity_enrolments_total counter\n",
        );
        let _ = writeln!(
            out,
            "probe_identity_enrolments_total {}",
            self.enrolled.load(Ordering::Relaxed)
        );
        out.push_str("# HELP probe_identity_refusals_total Enrolments and signed reports refused since start, by reason.\n# TYPE probe_identity_refusals_total counter\n");
        for (code, n) in self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "probe_identity_refusals_total{{reason=\"{code}\"}} {n}"
            );
        }
        out
    }

    /// The registry, for the EC2 check's region lookups and for `forget`.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether `key_id` could be enrolled and is not, as last read: a key another collector
    /// may have enrolled a moment ago.
    #[must_use]
    pub fn may_know(&self, key_id: &str) -> bool {
        well_formed(key_id) && !self.registry.knows(key_id)
    }

    /// Reads at once the enrolments changed since the last reading, for a report whose key
    /// is not known here: another collector on the shared database may have enrolled it a
    /// moment ago. One reading at a time, and none within [`CATCH_UP`] of the last, so keys
    /// nobody enrolled cost at most ten readings a second. Off the async threads; a reading
    /// that fails is [`Identities::watch`]'s to report.
    pub async fn catch_up(self: &std::sync::Arc<Self>) {
        if !self.registry.shared() {
            return;
        }
        let mut last = self.caught_up.lock().await;
        if last.is_some_and(|t| t.elapsed() < CATCH_UP) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let ids = self.clone();
        let _ = tokio::task::spawn_blocking(move || ids.registry.refresh()).await;
    }

    /// Reads, every second until dropped, the enrolments changed by `forget` or by another
    /// collector on the same database, off the async threads.
    pub async fn watch(self: std::sync::Arc<Self>) {
        let mut every = tokio::time::interval(REREAD);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            every.tick().await;
            let ids = self.clone();
            let read = tokio::task::spawn_blocking(move || ids.registry.refresh()).await;
            match read {
                Ok(Ok(())) => {
                    if failing {
                        failing = false;
                        tracing::warn!("the enrolled keys are read again");
                    }
                }
                Ok(Err(e)) => {
                    if !failing {
                        failing = true;
                        tracing::error!("{e}: checking reports with the keys read before");
                    }
                }
                Err(e) => tracing::error!("reading the enrolled keys stopped: {e}"),
            }
        }
    }
}

/// A key id as agents make them: 32 hex digits.
fn well_formed(key_id: &str) -> bool {
    key_id.len() == 32 && key_id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn now_ms() -> i64 {
    super::db::millis_of(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ec2::InstanceInfo;

    #[test]
    fn a_report_disagreeing_with_describe_instances_is_refused() {
        let mut report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report.json")).unwrap();
        report.agent.instance = Some(crate::model::Instance {
            instance_id: Some("i-1".into()),
            subnet_id: Some("subnet-a".into()),
            security_groups: vec!["sg-2".into(), "sg-1".into()],
            ..crate::model::Instance::default()
        });
        let info = InstanceInfo {
            id: "i-1".into(),
            name: None,
            subnet_id: Some("subnet-a".into()),
            state: "running".into(),
            security_groups: vec!["sg-1".into(), "sg-2".into()],
        };
        assert_eq!(Identities::agrees(&info, &report), Ok(()));
        let stopped = InstanceInfo {
            state: "stopped".into(),
            ..info.clone()
        };
        assert!(
            Identities::agrees(&stopped, &report)
                .unwrap_err()
                .to_string()
                .contains("not running")
        );
        let moved = InstanceInfo {
            subnet_id: Some("subnet-b".into()),
            ..info.clone()
        };
        assert!(
            Identities::agrees(&moved, &report)
                .unwrap_err()
                .to_string()
                .contains("subnet")
        );
        let regrouped = InstanceInfo {
            security_groups: vec!["sg-1".into()],
            ..info
        };
        let e = Identities::agrees(&regrouped, &report).unwrap_err();
        assert_eq!(e.code(), "ec2");
        assert!(e.to_string().contains("security groups"));
    }
}
