//! The model: what probe reports and what it knows of the VPC, as plain serde data, and the
//! vocabulary both share. It depends on nothing else of probe's; every other layer reads it.

mod code;
mod console;
mod failure;
mod firewall;
mod path;
mod policy;
mod prediction;
pub mod region;
mod report;
mod route;
mod scheme;
mod status;
mod vpc;

pub use code::Code;
pub use console::{ConsoleLine, MARKER as CONSOLE_MARKER};
pub use failure::{CheckError, Kind, Phase};
pub use firewall::{AclEntry, NetworkAcl, Ports, PrefixList, Protocol, SecurityGroup, SgRule};
pub use path::{AddressClass, Expect, Path, UnknownExpectation};
pub use policy::{Policy, Statement};
pub use prediction::{Fact, FactKind, Prediction};
pub use report::*;
pub use route::{
    GatewayRoute, Matched, NatGateway, Peering, Route, RouteMatch, RouteState, RouteTable,
    RouteTarget,
};
pub use scheme::Scheme;
pub use status::SourceStatus;
pub use vpc::{Endpoint, EndpointKind, EndpointState, Eni, Interface, IpType, VpcView};
