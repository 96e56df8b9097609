//! Where the agent stands: the instance metadata (region, VPC, subnet, CIDRs) and the EC2
//! API (route table, endpoints). `probe context` prints it; `probe check` uses it.

pub mod command;
pub mod ec2;
pub mod imds;

use crate::model::{Instance, SourceStatus, VpcView};
use std::time::Duration;

/// How to use the EC2 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ec2Mode {
    /// Use it when credentials exist and it answers within --ec2-timeout.
    Auto,
    /// Never call it.
    Off,
    /// Fail (exit 3) when it cannot be read.
    Required,
}

/// Options about the context, shared by `check` and `context`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Do not read the instance metadata (also: AWS_EC2_METADATA_DISABLED=true).
    #[arg(long)]
    pub no_imds: bool,

    /// Read routes and endpoints from the EC2 API (honours AWS_ENDPOINT_URL_EC2).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Ec2Mode::Auto)]
    pub ec2: Ec2Mode,

    /// Time the EC2 API has to answer.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::values::duration)]
    pub ec2_timeout: Duration,
}

/// The validated context options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the metadata service is, or `None` when it is off.
    pub imds: Option<String>,
    /// EC2 API mode.
    pub ec2: Ec2Mode,
    /// EC2 API time limit.
    pub ec2_timeout: Duration,
}

impl Options {
    /// Validates the options; `env` reads environment variables.
    ///
    /// # Errors
    /// [`BadEndpoint`] when the environment names a metadata service that is no URL.
    pub fn settings(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, BadEndpoint> {
        let disabled =
            env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let imds = (!self.no_imds && !disabled).then(|| {
            env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| imds::DEFAULT_ENDPOINT.into())
        });
        if let Some(endpoint) = &imds {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return Err(BadEndpoint(endpoint.clone()));
            }
        }
        Ok(Settings {
            imds,
            ec2: self.ec2,
            ec2_timeout: self.ec2_timeout,
        })
    }
}

/// An `AWS_EC2_METADATA_SERVICE_ENDPOINT` that is no http(s) URL.
#[derive(Debug, thiserror::Error)]
#[error("AWS_EC2_METADATA_SERVICE_ENDPOINT {0:?} is not an http:// URL: fix it or unset it")]
pub struct BadEndpoint(pub String);

/// What the instance metadata gave, with its status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The instance, when the metadata answered.
    pub instance: Option<Instance>,
    /// `ok`, `off`, or why not.
    pub status: SourceStatus,
}

/// Reads the instance metadata, when it is on.
pub async fn metadata(settings: &Settings) -> Metadata {
    let Some(endpoint) = &settings.imds else {
        return Metadata {
            instance: None,
            status: SourceStatus::Off,
        };
    };
    let result = match imds::HttpImds::new(endpoint) {
        Ok(client) => client.instance().await,
        Err(e) => Err(e),
    }
    .map_err(|e| e.to_string());
    match result {
        Ok(instance) => Metadata {
            instance: Some(instance),
            status: SourceStatus::Ok,
        },
        Err(why) => {
            tracing::info!("instance metadata: {why}");
            Metadata {
                instance: None,
                status: SourceStatus::Unavailable(why),
            }
        }
    }
}

/// What the EC2 API gave, with its status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The VPC around the agent's subnet.
    pub view: Option<VpcView>,
    /// `ok`, `off`, or why not.
    pub status: SourceStatus,
}

impl Discovery {
    /// Nothing was asked.
    #[must_use]
    pub fn off() -> Self {
        Self {
            view: None,
            status: SourceStatus::Off,
        }
    }

    fn unavailable(why: String) -> Self {
        Self {
            view: None,
            status: SourceStatus::Unavailable(why),
        }
    }
}

/// Reads the VPC from the EC2 API, within the settings' time limit.
pub async fn discover(
    settings: &Settings,
    region: Option<&str>,
    instance: Option<&Instance>,
) -> Discovery {
    if settings.ec2 == Ec2Mode::Off {
        return Discovery::off();
    }
    let ids = instance.and_then(|i| Some((i.vpc_id.clone()?, i.subnet_id.clone()?)));
    let (Some(region), Some((vpc, subnet))) = (region, ids) else {
        return Discovery::unavailable(
            "no VPC and subnet to look up: the instance metadata did not give them".into(),
        );
    };
    let limit = settings.ec2_timeout;
    // The SDK's futures are large: keep them on the heap, off every caller's stack frame.
    let work = Box::pin(async {
        let client = ec2::SdkEc2::load(region, limit).await?;
        Box::pin(client.discover(&vpc, &subnet)).await
    });
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(view)) => Discovery {
            view: Some(view),
            status: SourceStatus::Ok,
        },
        Ok(Err(why)) => Discovery::unavailable(format!("EC2 API: {why}")),
        Err(_) => Discovery::unavailable(format!(
            "EC2 API did not answer within {} (no route to the EC2 endpoint? add an ec2 interface endpoint, or pass --ec2 off)",
            humantime::format_duration(limit)
        )),
    }
}
