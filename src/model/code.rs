//! The stable names of the configuration findings a verdict explains itself with. They are
//! part of the report's contract (`diagnoses[].code`, `predicted.facts[].fix.code`): a newer
//! agent's name this version does not know is kept as it came.

use std::fmt;

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $text:literal,)*) => {
        /// A finding's stable name, as `private-dns-disabled`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $name,)*
            /// A name this version does not know (a newer agent's).
            Other(String),
        }

        impl Code {
            /// Every name this version knows.
            pub const KNOWN: &'static [Code] = &[$(Code::$name,)*];

            /// The kebab-case name used in JSON and tables.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$name => $text,)*
                    Self::Other(s) => s,
                }
            }

            /// The code a name stands for.
            #[must_use]
            pub fn from_name(name: &str) -> Self {
                match name {
                    $($text => Self::$name,)*
                    other => Self::Other(other.to_string()),
                }
            }
        }
    };
}

codes! {
    /// The name resolves to the endpoint, but to public addresses from this VPC.
    PrivateDnsUnused = "private-dns-unused",
    /// The interface endpoint's private DNS is off.
    PrivateDnsDisabled = "private-dns-disabled",
    /// The gateway endpoint is not in the subnet's route table.
    NoGatewayRoute = "no-gateway-route",
    /// A gateway endpoint reached from another VPC (they do not carry traffic across).
    GatewayEndpointNotTransitive = "gateway-endpoint-not-transitive",
    /// The endpoint's policy denies the request.
    EndpointPolicyDenies = "endpoint-policy-denies",
    /// IPv6 answers go around an IPv4-only endpoint.
    Ipv6BypassesEndpoint = "ipv6-bypasses-endpoint",
    /// The endpoint waits for the service's owner to accept it.
    EndpointPendingAcceptance = "endpoint-pending-acceptance",
    /// The endpoint has no interface in the instance's zone.
    EndpointNoEniInZone = "endpoint-no-eni-in-zone",
    /// The endpoint is not available.
    EndpointNotAvailable = "endpoint-not-available",
    /// No outbound security group rule allows it.
    SecurityGroupEgress = "security-group-egress",
    /// No inbound security group rule allows it.
    SecurityGroupIngress = "security-group-ingress",
    /// A network ACL denies it.
    NetworkAclDenies = "network-acl-denies",
    /// No route covers the address.
    NoRoute = "no-route",
    /// The route's target is gone.
    RouteBlackhole = "route-blackhole",
    /// An internet gateway route from an instance without a public address.
    NoPublicAddress = "no-public-address",
    /// The NAT gateway is not available.
    NatGatewayNotAvailable = "nat-gateway-not-available",
    /// A private NAT gateway, which does not reach the internet.
    NatGatewayPrivate = "nat-gateway-private",
    /// The NAT gateway's subnet has no route to the internet.
    NatGatewayNoInternet = "nat-gateway-no-internet",
    /// The peering connection is not active.
    PeeringNotActive = "peering-not-active",
    /// Peering connections do not carry traffic on to a third network.
    PeeringNotTransitive = "peering-not-transitive",
    /// An IPv6 address from an instance that has none.
    NoIpv6Address = "no-ipv6-address",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_an_unknown_one_is_kept() {
        for code in Code::KNOWN {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), *code);
        }
        let newer: Code = serde_json::from_str("\"a-newer-finding\"").unwrap();
        assert_eq!(newer, Code::Other("a-newer-finding".into()));
        assert_eq!(
            serde_json::to_string(&newer).unwrap(),
            "\"a-newer-finding\""
        );
    }
}
