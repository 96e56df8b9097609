//! The TLS stage: a handshake with SNI and certificate verification, keeping the server's
//! certificate also when verification fails.

use super::engine::Ctx;
use crate::model::{CertInfo, CheckError, Kind, Phase, Status, TlsReport, millis};
use crate::net::tls::{self, Certificate};
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Runs the handshake for `host` over `tcp`, filling `out`; the stream when it succeeded.
pub(super) async fn handshake<R, P>(
    ctx: &Ctx<R, P>,
    host: &str,
    tcp: TcpStream,
    http: bool,
    out: &mut TlsReport,
) -> Option<tls::Stream> {
    let t0 = Instant::now();
    let outcome = timeout(ctx.timeout, tls::handshake(&ctx.trust, host, tcp, http)).await;
    out.ms = Some(millis(t0.elapsed()));
    let error = match outcome {
        Ok(h) => {
            out.cert = h.cert.map(cert_info);
            out.version = h.version;
            match h.result {
                Ok(stream) => {
                    out.status = Status::Ok;
                    return Some(stream);
                }
                Err((kind, message)) => CheckError::new(Phase::Tls, kind, message),
            }
        }
        Err(_) => CheckError::new(
            Phase::Tls,
            Kind::Timeout,
            format!(
                "the TLS handshake did not finish within {}",
                humantime::format_duration(ctx.timeout)
            ),
        ),
    };
    out.status = Status::Fail;
    out.error = Some(error);
    None
}

fn cert_info(c: Certificate) -> CertInfo {
    CertInfo {
        subject: c.subject,
        names: c.names,
        issuer: c.issuer,
        not_before: c.not_before,
        not_after: c.not_after,
    }
}
