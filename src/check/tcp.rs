//! The TCP stage: connect within the stage timeout.

use super::engine::Ctx;
use crate::model::{CheckError, Kind, Phase, StageReport, Status, millis};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Connects to `ip:port`, filling `out`; the stream when it connected.
pub(super) async fn connect<R, P>(
    ctx: &Ctx<R, P>,
    ip: IpAddr,
    port: u16,
    out: &mut StageReport,
) -> Option<TcpStream> {
    let t0 = Instant::now();
    let outcome = timeout(ctx.timeout, TcpStream::connect(SocketAddr::new(ip, port))).await;
    out.ms = Some(millis(t0.elapsed()));
    let error = match outcome {
        Ok(Ok(stream)) => {
            out.status = Status::Ok;
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
        Ok(Err(e)) => CheckError::new(Phase::Tcp, Kind::from_io(&e), e.to_string()),
        Err(_) => CheckError::new(
            Phase::Tcp,
            Kind::Timeout,
            format!(
                "no answer to the connection request within {}: packets are dropped on the way",
                humantime::format_duration(ctx.timeout)
            ),
        ),
    };
    out.status = Status::Fail;
    out.error = Some(error);
    None
}
