//! The HTTP stage: one GET over the connection the earlier stages opened, its body read up to
//! a bound and, when asked, searched for the expected text.

use super::engine::Ctx;
use crate::model::{CheckError, HttpReport, Kind, Phase, Status, millis};
use crate::target::Target;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;

/// The body is read up to this size: enough for any check page, bounded for a hostile server.
const BODY_LIMIT: usize = 1 << 20;

/// Sends the request over `stream`, filling `out`.
pub(super) async fn request<R, P, S>(
    ctx: &Ctx<R, P>,
    target: &Target,
    stream: S,
    out: &mut HttpReport,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let t0 = Instant::now();
    let outcome = timeout(
        ctx.timeout,
        exchange(target, stream, ctx.expect_body.as_deref(), out),
    )
    .await;
    out.ms = Some(millis(t0.elapsed()));
    let limit = humantime::format_duration(ctx.timeout);
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err((kind, message))) => Some(CheckError::new(Phase::Http, kind, message)),
        Err(_) => Some(CheckError::new(
            Phase::Http,
            Kind::Timeout,
            match out.code {
                Some(code) => format!("HTTP {code} came, but the body did not end within {limit}"),
                None => format!("no HTTP response within {limit}"),
            },
        )),
    };
    out.status = if failure.is_some() {
        Status::Fail
    } else {
        Status::Ok
    };
    out.error = failure;
}

async fn exchange<S>(
    target: &Target,
    stream: S,
    expect_body: Option<&str>,
    out: &mut HttpReport,
) -> Result<(), (Kind, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| map_error(&e))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let _abort = AbortOnDrop(driver);
    let default_port = if target.scheme.uses_tls() { 443 } else { 80 };
    let host = match target.ip_literal() {
        Some(IpAddr::V6(_)) => format!("[{}]", target.host),
        _ => target.host.clone(),
    };
    let host = if target.port == default_port {
        host
    } else {
        format!("{host}:{}", target.port)
    };
    let request = Request::get(target.path.as_str())
        .header(
            HOST,
            HeaderValue::from_str(&host).map_err(|e| (Kind::Protocol, e.to_string()))?,
        )
        .header(USER_AGENT, concat!("probe/", env!("CARGO_PKG_VERSION")))
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| (Kind::Protocol, e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| map_error(&e))?;
    out.code = Some(response.status().as_u16());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    out.server = header("server");
    out.request_id = header("x-amz-request-id");
    let mut body = response.into_body();
    let mut kept: Vec<u8> = Vec::new();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| map_error(&e))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            out.bytes = Some(bytes);
            if expect_body.is_some() && kept.len() < BODY_LIMIT {
                kept.extend_from_slice(&data[..data.len().min(BODY_LIMIT - kept.len())]);
            }
            if bytes >= BODY_LIMIT as u64 {
                break;
            }
        }
    }
    out.bytes = Some(bytes);
    if let Some(want) = expect_body {
        if !String::from_utf8_lossy(&kept).contains(want) {
            return Err((
                Kind::BodyMismatch,
                format!("the body ({bytes} bytes) does not contain {want:?}"),
            ));
        }
    }
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn map_error(e: &hyper::Error) -> (Kind, String) {
    let kind = if e.is_parse() || e.is_parse_status() {
        Kind::Protocol
    } else if e.is_timeout() {
        Kind::Timeout
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        Kind::Reset
    } else {
        std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map_or(Kind::Io, Kind::from_io)
    };
    (kind, e.to_string())
}
