//! Accepting connections: plain HTTP or TLS (`--tls-cert`/`--tls-key`), each request
//! carrying its peer's address for the per-source rate limit.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
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

/// A TLS acceptor from PEM files.
///
/// # Errors
/// A one-line message naming the file and the problem.
pub fn tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("--tls-cert and --tls-key do not make a pair: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` until Ctrl-C.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, router: Router) {
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
            _ = tokio::signal::ctrl_c() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (router, tls) = (router.clone(), tls.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    router.clone().call(request)
                });
            let http = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
                    _ => return,
                },
                None => http.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}
