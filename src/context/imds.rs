//! Instance metadata, IMDSv2: a token by PUT, then GETs with it. The only file that talks
//! to the metadata service. Short timeouts: a host that is not on EC2 moves on within a
//! second, and every failure becomes one line that says what to do.

use crate::error::innermost;
use crate::model::{Instance, InstanceInterface, region};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

/// Where the metadata service answers unless `AWS_EC2_METADATA_SERVICE_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// Time for each metadata request.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// Longest answer read: metadata values are short, a hostile server is not.
const BODY_LIMIT: usize = 64 * 1024;

/// Why the metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImdsError {
    /// No answer to the token request.
    #[error(
        "no instance metadata at {endpoint} ({why}): not on EC2, or the token's hop limit (1 by default) is too low for a container: raise it with `aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2`, or pass --no-imds"
    )]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// What the connection attempt came to.
        why: String,
    },
    /// 403 to the token request: the service is turned off for this instance.
    #[error(
        "instance metadata is turned off for this instance (403): turn it on with `aws ec2 modify-instance-metadata-options --http-endpoint enabled`, or pass --no-imds"
    )]
    Disabled,
    /// 401 to a GET: the token was refused.
    #[error(
        "instance metadata refused the session token (401) for {path}: the clock or a proxy may be at fault"
    )]
    Unauthorized {
        /// The path asked for.
        path: String,
    },
    /// A required path answered 404.
    #[error("instance metadata has no {path} (404)")]
    Missing {
        /// The path asked for.
        path: String,
    },
    /// Any other HTTP status.
    #[error("instance metadata answered HTTP {status} for {path}")]
    Status {
        /// The path asked for.
        path: String,
        /// The status code.
        status: u16,
    },
    /// The answer was not what the path holds.
    #[error("instance metadata gave a malformed {path}: {detail}")]
    Garbage {
        /// The path asked for.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the metadata client: {0}")]
    Client(String),
    /// No answer to a GET within the timeout.
    #[error("instance metadata did not answer {path} within {ms} ms")]
    Timeout {
        /// The path asked for.
        path: String,
        /// The timeout.
        ms: u128,
    },
}

/// IMDSv2 over HTTP with reqwest.
pub struct HttpImds {
    client: reqwest::Client,
    endpoint: String,
}

impl HttpImds {
    /// The client for `endpoint` (no trailing slash).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(endpoint: &str) -> Result<Self, ImdsError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| ImdsError::Client(e.to_string()))?;
        Ok(Self {
            client,
            endpoint: endpoint.trim_end_matches('/').to_string(),
        })
    }

    async fn token(&self) -> Result<String, ImdsError> {
        let url = format!("{}/latest/api/token", self.endpoint);
        let response = self
            .client
            .put(&url)
            .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
            .send()
            .await
            .map_err(|e| ImdsError::Unreachable {
                endpoint: self.endpoint.clone(),
                why: if e.is_timeout() {
                    "no answer within the timeout".into()
                } else {
                    innermost(&e)
                },
            })?;
        match response.status().as_u16() {
            200 => {}
            403 => return Err(ImdsError::Disabled),
            status => {
                return Err(ImdsError::Status {
                    path: "api/token".into(),
                    status,
                });
            }
        }
        let token = body(response, "api/token").await?;
        if token.is_empty() || token.len() > 512 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ImdsError::Garbage {
                path: "api/token".into(),
                detail: "not a token".into(),
            });
        }
        Ok(token)
    }

    /// GETs `meta-data/<path>`; `Ok(None)` for 404.
    async fn get(&self, token: &str, path: &str) -> Result<Option<String>, ImdsError> {
        let url = format!("{}/latest/meta-data/{path}", self.endpoint);
        let response = self
            .client
            .get(&url)
            .header("X-aws-ec2-metadata-token", token)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ImdsError::Timeout {
                        path: path.into(),
                        ms: TIMEOUT.as_millis(),
                    }
                } else {
                    ImdsError::Garbage {
                        path: path.into(),
                        detail: innermost(&e),
                    }
                }
            })?;
        match response.status().as_u16() {
            200 => body(response, path).await.map(Some),
            404 => Ok(None),
            401 => Err(ImdsError::Unauthorized { path: path.into() }),
            status => Err(ImdsError::Status {
                path: path.into(),
                status,
            }),
        }
    }

    /// The signed instance identity document, exactly as served (AWS signs its bytes), and
    /// its base64 `signature`.
    ///
    /// # Errors
    /// The path that failed, with the fix.
    pub async fn identity(&self) -> Result<(String, String), ImdsError> {
        let token = self.token().await?;
        let (document, signature) = tokio::join!(
            self.dynamic(&token, "instance-identity/document"),
            self.dynamic(&token, "instance-identity/signature"),
        );
        Ok((document?, signature?))
    }

    /// GETs `dynamic/<path>`, its body untrimmed.
    async fn dynamic(&self, token: &str, path: &str) -> Result<String, ImdsError> {
        let url = format!("{}/latest/dynamic/{path}", self.endpoint);
        let response = self
            .client
            .get(&url)
            .header("X-aws-ec2-metadata-token", token)
            .send()
            .await
            .map_err(|e| ImdsError::Garbage {
                path: path.into(),
                detail: innermost(&e),
            })?;
        match response.status().as_u16() {
            200 => {}
            404 => return Err(ImdsError::Missing { path: path.into() }),
            401 => return Err(ImdsError::Unauthorized { path: path.into() }),
            status => {
                return Err(ImdsError::Status {
                    path: path.into(),
                    status,
                });
            }
        }
        let garbage = |detail: String| ImdsError::Garbage {
            path: path.into(),
            detail,
        };
        let bytes = response.bytes().await.map_err(|e| garbage(innermost(&e)))?;
        if bytes.len() > BODY_LIMIT {
            return Err(garbage("longer than 64 KiB".into()));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| garbage("not UTF-8 text".into()))
    }

    async fn required(&self, token: &str, path: &str) -> Result<String, ImdsError> {
        self.get(token, path)
            .await?
            .ok_or_else(|| ImdsError::Missing { path: path.into() })
    }
}

impl HttpImds {
    /// Everything probe uses from the metadata.
    ///
    /// # Errors
    /// The first path that failed, with the fix.
    pub async fn instance(&self) -> Result<Instance, ImdsError> {
        let token = self.token().await?;
        let t = token.as_str();
        let (region, az, id, local, public, mac, name) = tokio::join!(
            self.required(t, "placement/region"),
            self.required(t, "placement/availability-zone"),
            self.required(t, "instance-id"),
            self.get(t, "local-ipv4"),
            self.get(t, "public-ipv4"),
            self.required(t, "mac"),
            // 404 unless the instance allows tags in its metadata; only a label, so an odd
            // answer is no reason to fail the rest.
            self.get(t, "tags/instance/Name"),
        );
        let region = valid("placement/region", region?, region::is_valid)?;
        let mac = valid("mac", mac?, is_mac)?;
        let [
            vpc,
            subnet,
            cidrs,
            subnet_cidr,
            groups,
            cidrs6,
            subnet6,
            ipv6s,
        ] = [
            "vpc-id",
            "subnet-id",
            "vpc-ipv4-cidr-blocks",
            "subnet-ipv4-cidr-block",
            "security-group-ids",
            "vpc-ipv6-cidr-blocks",
            "subnet-ipv6-cidr-blocks",
            "ipv6s",
        ]
        .map(|leaf| format!("network/interfaces/macs/{mac}/{leaf}"));
        // The IPv6 leaves answer 404 in an IPv4-only VPC.
        let (vpc, subnet, vpc_cidrs, subnet_cidr, groups, secondary, cidrs6, subnet6, ipv6s) = tokio::join!(
            self.required(t, &vpc),
            self.required(t, &subnet),
            self.required(t, &cidrs),
            self.get(t, &subnet_cidr),
            self.get(t, &groups),
            // Its own join of five: boxed, so this one stays small.
            Box::pin(self.secondary_interfaces(t, &mac)),
            self.get(t, &cidrs6),
            self.get(t, &subnet6),
            self.get(t, &ipv6s),
        );
        let lines = |v: Option<String>| -> Vec<String> {
            v.unwrap_or_default()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        let vpc_cidrs6 = lines(cidrs6?)
            .iter()
            .map(|l| parse_net("vpc-ipv6-cidr-blocks", l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Instance {
            instance_id: Some(valid("instance-id", id?, |v| v.starts_with("i-"))?),
            name: name
                .ok()
                .flatten()
                .filter(|n| !n.is_empty() && n.len() <= 256 && !n.contains(char::is_control)),
            availability_zone: Some(valid("placement/availability-zone", az?, |v| {
                v.starts_with(&region)
            })?),
            local_ipv4: local?.map(|v| parse_ip("local-ipv4", &v)).transpose()?,
            public_ipv4: public?.map(|v| parse_ip("public-ipv4", &v)).transpose()?,
            vpc_id: Some(valid("vpc-id", vpc?, |v| v.starts_with("vpc-"))?),
            subnet_id: Some(valid("subnet-id", subnet?, |v| v.starts_with("subnet-"))?),
            vpc_cidrs: vpc_cidrs?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| parse_net("vpc-ipv4-cidr-blocks", l))
                .chain(vpc_cidrs6.into_iter().map(Ok))
                .collect::<Result<_, _>>()?,
            subnet_ipv6_cidr: lines(subnet6?)
                .first()
                .map(|l| parse_net("subnet-ipv6-cidr-blocks", l))
                .transpose()?,
            ipv6s: lines(ipv6s?)
                .iter()
                .map(|l| parse_ip("ipv6s", l))
                .collect::<Result<_, _>>()?,
            subnet_cidr: subnet_cidr?
                .map(|v| parse_net("subnet-ipv4-cidr-block", &v))
                .transpose()?,
            mac: Some(mac),
            region: Some(region),
            security_groups: group_ids(groups?)?,
            secondary_interfaces: secondary?,
        })
    }

    /// The interfaces other than `primary`, when the metadata lists more than one MAC.
    async fn secondary_interfaces(
        &self,
        t: &str,
        primary: &str,
    ) -> Result<Vec<InstanceInterface>, ImdsError> {
        let listed = self.get(t, "network/interfaces/macs/").await?;
        let macs: Vec<String> = listed
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|m| !m.is_empty() && m != primary)
            .map(|m| valid("network/interfaces/macs/", m, is_mac))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(macs.len());
        // An instance has a handful of interfaces at most; each is read with its leaves at once.
        for mac in macs {
            let [device, ips, subnet, cidr, groups] = [
                "device-number",
                "local-ipv4s",
                "subnet-id",
                "subnet-ipv4-cidr-block",
                "security-group-ids",
            ]
            .map(|leaf| format!("network/interfaces/macs/{mac}/{leaf}"));
            let (device, ips, subnet, cidr, groups) = tokio::join!(
                self.get(t, &device),
                self.get(t, &ips),
                self.get(t, &subnet),
                self.get(t, &cidr),
                self.get(t, &groups),
            );
            out.push(InstanceInterface {
                device_number: device?.and_then(|d| d.trim().parse().ok()),
                local_ipv4s: ips?
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| parse_ip("local-ipv4s", l))
                    .collect::<Result<_, _>>()?,
                subnet_id: subnet?
                    .map(|s| valid("subnet-id", s, |v| v.starts_with("subnet-")))
                    .transpose()?,
                subnet_cidr: cidr?
                    .map(|v| parse_net("subnet-ipv4-cidr-block", &v))
                    .transpose()?,
                security_groups: group_ids(groups?)?,
                mac,
            });
        }
        Ok(out)
    }
}

/// `security-group-ids`: one `sg-...` a line.
fn group_ids(listed: Option<String>) -> Result<Vec<String>, ImdsError> {
    listed
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|g| {
            valid("security-group-ids", g.to_string(), |v| {
                v.starts_with("sg-")
            })
        })
        .collect()
}

async fn body(response: reqwest::Response, path: &str) -> Result<String, ImdsError> {
    let garbage = |detail: String| ImdsError::Garbage {
        path: path.into(),
        detail,
    };
    if response
        .content_length()
        .is_some_and(|n| n > BODY_LIMIT as u64)
    {
        return Err(garbage("longer than 64 KiB".into()));
    }
    let bytes = response.bytes().await.map_err(|e| garbage(innermost(&e)))?;
    if bytes.len() > BODY_LIMIT {
        return Err(garbage("longer than 64 KiB".into()));
    }
    String::from_utf8(bytes.to_vec())
        .map(|s| s.trim().to_string())
        .map_err(|_| garbage("not UTF-8 text".into()))
}

fn valid(path: &str, value: String, ok: impl Fn(&str) -> bool) -> Result<String, ImdsError> {
    if ok(&value) && value.len() < 256 && !value.contains(char::is_whitespace) {
        Ok(value)
    } else {
        Err(ImdsError::Garbage {
            path: path.into(),
            detail: format!("unexpected value {:?}", excerpt(&value)),
        })
    }
}

fn parse_ip(path: &str, value: &str) -> Result<IpAddr, ImdsError> {
    value.trim().parse().map_err(|_| ImdsError::Garbage {
        path: path.into(),
        detail: format!("{:?} is not an IP address", excerpt(value)),
    })
}

fn parse_net(path: &str, value: &str) -> Result<IpNet, ImdsError> {
    value.trim().parse().map_err(|_| ImdsError::Garbage {
        path: path.into(),
        detail: format!("{:?} is not a CIDR block", excerpt(value)),
    })
}

fn is_mac(v: &str) -> bool {
    v.len() == 17
        && v.split(':').count() == 6
        && v.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn excerpt(s: &str) -> String {
    s.chars().take(40).collect()
}
