//! What the VPC's configuration predicts for a target, before any packet: the route, the
//! security groups, the network ACLs and the endpoint, each as a fact that allows or blocks.

use super::{Diagnosis, Path};
use serde::{Deserialize, Serialize};

/// The configuration's prediction for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// The configuration lets the traffic through, by at least one address.
    pub reachable: bool,
    /// The path it predicts (`unreachable` when it blocks every address).
    pub path: Path,
    /// The facts that decide it: for a reachable target, the ones its path crosses; for a
    /// blocked one, those of the first address up to the rule that blocks it.
    pub because: Vec<Fact>,
    /// One line: what the configuration says next to what the packets did.
    pub says: String,
}

/// One fact of the configuration on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// What kind of configuration.
    pub kind: FactKind,
    /// Its id: `rtb-...`, `sg-...`, `acl-...`, `vpce-...`, or `vpc-...` for the VPC's DNS.
    pub id: String,
    /// It lets the traffic through.
    pub allows: bool,
    /// What it says, as one line: "acl-0abc rule 90: deny tcp 443 to 52.219.60.0/24 (egress)".
    pub says: String,
    /// For a fact that blocks: the change that would let the traffic through, as the
    /// diagnosis it becomes when the packets were blocked too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<Diagnosis>,
}

/// The kinds of configuration a prediction reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FactKind {
    /// What the name should resolve to: an endpoint's ENIs (its own name, or its service's
    /// under Private DNS and the VPC's DNS attributes), outside the VPC, or nothing.
    Dns,
    /// The route table entry that matches the address.
    Route,
    /// A security group, on the instance (egress) or on the endpoint's interfaces (ingress).
    SecurityGroup,
    /// A subnet's network ACL, one direction.
    NetworkAcl,
    /// The state of the endpoint the address belongs to.
    Endpoint,
}
