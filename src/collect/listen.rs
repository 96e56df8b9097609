//! Accepting connections: plain HTTP or TLS (`--tls-cert`/`--tls-key`), each request
//! carrying its peer's address for the per-source rate limit. Every connection has
//! deadlines (TLS handshake, headers, an idle keep-alive) and a place under two caps, one per
//! source address and one in total below the open-file limit, so no client can hold what
//! the others need.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// The address a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Time a client has to finish the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Time a client has to send a request's headers; also how long a connection may sit idle
/// before its first request or between two.
pub const HEADERS: Duration = Duration::from_secs(10);
/// Connections one source address may hold at once.
pub const PER_SOURCE: usize = 32;
/// File descriptors kept free beyond the connections (the database, the queue, the EC2 client).
const SPARE_FILES: u64 = 128;

/// The connections open now, in total and per source.
pub struct Gate {
    open: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
    total: usize,
    per_source: usize,
}

/// A connection's place under the caps; given back when dropped.
pub struct Ticket {
    gate: Arc<Gate>,
    ip: std::net::IpAddr,
}

impl Gate {
    /// Caps of `total` connections, `per_source` from one address.
    #[must_use]
    pub fn new(total: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            open: std::sync::Mutex::default(),
            total,
            per_source,
        })
    }

    /// Caps for this process: the open-file limit raised to its hard maximum where allowed,
    /// the total kept below it.
    #[must_use]
    pub fn for_this_process() -> Arc<Self> {
        let files = crate::limits::raise_open_files();
        let total =
            usize::try_from(files.saturating_sub(SPARE_FILES).max(16)).unwrap_or(usize::MAX);
        Self::new(total, PER_SOURCE.min(total))
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    #[must_use]
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<Ticket> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per) = &mut *open;
        let mine = per.entry(ip).or_insert(0);
        if *total >= self.total || *mine >= self.per_source {
            return None;
        }
        *total += 1;
        *mine += 1;
        Some(Ticket {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .gate
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

/// Why the collector's certificate and key cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate file cannot be read as PEM.
    #[error("--tls-cert {}: {source}", path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("--tls-cert {}: no PEM certificate in it", path.display())]
    NoCert {
        /// The file.
        path: PathBuf,
    },
    /// The key file cannot be read as a PEM private key.
    #[error("--tls-key {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refuses the pair (or its protocol versions).
    #[error("--tls-cert and --tls-key do not make a pair: {0}")]
    Pair(#[source] rustls::Error),
}

/// A TLS acceptor from PEM files.
///
/// # Errors
/// What is wrong, naming the file.
pub fn tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad_cert = |source| TlsSetupError::Cert {
        path: cert.to_path_buf(),
        source,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(bad_cert)?
        .collect::<Result<_, _>>()
        .map_err(bad_cert)?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCert {
            path: cert.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsSetupError::Pair)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(TlsSetupError::Pair)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How long a stop waits at most for the connections in flight to finish their requests.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener`, admitting connections through `gate`, until `stop`
/// resolves; then stops accepting, lets every connection finish the request it is in (an
/// idle keep-alive connection is closed at once), and returns when they have, or after
/// [`DRAIN`]: true when every connection finished in time.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    gate: Arc<Gate>,
    stop: impl std::future::Future<Output = ()>,
) -> bool {
    let mut turned_away = 0u64;
    let mut said = std::time::Instant::now();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            // Closed at once; said at most every 10 s, so a flood cannot flood the log too.
            turned_away += 1;
            if said.elapsed() > Duration::from_secs(10) {
                tracing::warn!(
                    "{turned_away} connection(s) turned away: over {PER_SOURCE} from one address or {} in all",
                    gate.total
                );
                turned_away = 0;
                said = std::time::Instant::now();
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (router, tls) = (router.clone(), tls.clone());
        // Taken before the handshake, so a stop waits for a connection that is starting too.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ticket = ticket;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    router.clone().call(request)
                });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADERS);
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(stream), service))
                            .await
                    }
                    _ => return,
                },
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!("stopping: no new connections; {open} open, finishing their requests");
    let finished = tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_ok();
    if !finished {
        tracing::warn!(
            "stopping: connections still open after {} s are cut (what they were sent is not acknowledged)",
            DRAIN.as_secs()
        );
    }
    finished
}
