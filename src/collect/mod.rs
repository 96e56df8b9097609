//! `probe collect`: the operator's collector. Agents post signed reports; the collector
//! stores them durably and shows the whole VPC at a glance.

pub mod dashboard;
pub mod limit;
pub mod listen;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod store;

use crate::auth::Token;
use crate::error::{Error, exit};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `probe collect`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7878")]
    pub listen: String,

    /// File holding the shared token agents sign reports with (required beyond loopback).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Directory of the durable report log.
    #[arg(long, value_name = "DIR", default_value = "probe-data")]
    pub data: PathBuf,

    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Also forward every stored report to this collector (a relay), signed with the same
    /// --token-file; the relay then serves its executable at /v1/probe.
    #[arg(long, value_name = "URL", requires = "token_file")]
    pub forward: Option<String>,

    /// Extra trusted CA certificates for --forward over HTTPS, PEM (repeatable).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,

    /// Reports per second one source may post (bursts of twice that); 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub rate_limit: u32,
}

/// Runs the collector until interrupted.
///
/// # Errors
/// Usage errors (address, token) and environment errors (data directory, port in use).
pub async fn execute(args: &Args) -> Result<u8, Error> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        Error::Usage(format!(
            "--listen {:?}: give ADDR:PORT, as 127.0.0.1:7878 or 0.0.0.0:7878",
            args.listen
        ))
    })?;
    let token = args
        .token_file
        .as_deref()
        .map(Token::load)
        .transpose()
        .map_err(Error::Usage)?;
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "refusing to listen on {addr} without --token-file: anyone could post reports; give a token file, or listen on 127.0.0.1"
        )));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(listen::tls(cert, key).map_err(Error::Usage)?),
        _ => None,
    };
    let relay = match (&args.forward, &args.token_file) {
        (Some(url), Some(token_file)) => {
            let trust = crate::net::tls::Trust::new(&args.ca_files).map_err(Error::Usage)?;
            Some(Arc::new(
                relay::Relay::new(url, token_file, &args.data, trust.client_config())
                    .map_err(Error::Usage)?,
            ))
        }
        _ => None,
    };
    let store = store::Store::open(&args.data).map_err(Error::Environment)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Environment(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Environment(e.to_string()))?;
    eprintln!(
        "probe collect: listening on {}://{local}, storing in {}{}",
        if tls.is_some() { "https" } else { "http" },
        store.path().display(),
        if token.is_some() {
            ""
        } else {
            " (no token: loopback only)"
        }
    );
    let app = Arc::new(server::App {
        store,
        token,
        limit: (args.rate_limit > 0).then(|| limit::RateLimit::new(args.rate_limit)),
        relay: relay.clone(),
    });
    if let Some(relay) = relay {
        tokio::spawn(relay.run());
    }
    listen::serve(listener, tls, server::router(app)).await;
    Ok(exit::PASS)
}
