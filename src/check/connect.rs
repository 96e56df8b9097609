//! The connection stages for one address: TCP connect, TLS handshake, HTTP request, over one
//! connection so each stage's time and failure are its own.

use super::engine::Ctx;
use crate::error::{CheckError, Kind, Phase};
use crate::net::dns::Resolve;
use crate::net::ping::Ping;
use crate::net::tls;
use crate::report::{self, HttpReport, StageReport, Status, TlsReport};
use crate::target::Target;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at};

/// The body is read up to this size: enough for any check page, bounded for a hostile server.
const BODY_LIMIT: usize = 1 << 20;

/// The connection stages' results.
pub(super) struct Conn {
    pub tcp: StageReport,
    pub tls: TlsReport,
    pub http: HttpReport,
    /// The stage in progress, to blame when the deadline cuts it short.
    current: Option<Phase>,
}

impl Conn {
    /// Every stage that applies completed.
    pub fn completed(&self) -> bool {
        report::completed(&self.tcp, &self.tls, &self.http)
    }
}

pub(super) async fn run<R: Resolve, P: Ping>(ctx: &Ctx<R, P>, target: &Target, ip: IpAddr) -> Conn {
    let skipped_unless = |applies: bool| {
        if applies {
            Status::NotRun
        } else {
            Status::Skipped
        }
    };
    let mut conn = Conn {
        tcp: StageReport::default(),
        tls: TlsReport {
            status: skipped_unless(target.scheme.uses_tls()),
            ..TlsReport::default()
        },
        http: HttpReport {
            status: skipped_unless(target.scheme.uses_http()),
            ..HttpReport::default()
        },
        current: None,
    };
    if timeout_at(ctx.deadline, stages(ctx, target, ip, &mut conn))
        .await
        .is_err()
    {
        let error = |phase| {
            Some(CheckError::new(
                phase,
                Kind::Deadline,
                "the run's deadline passed during this stage",
            ))
        };
        match conn.current {
            Some(Phase::Tcp) => {
                (conn.tcp.status, conn.tcp.error) = (Status::Fail, error(Phase::Tcp));
            }
            Some(Phase::Tls) => {
                (conn.tls.status, conn.tls.error) = (Status::Fail, error(Phase::Tls));
            }
            Some(Phase::Http) => {
                (conn.http.status, conn.http.error) = (Status::Fail, error(Phase::Http));
            }
            _ => {}
        }
    }
    conn
}

async fn stages<R: Resolve, P: Ping>(
    ctx: &Ctx<R, P>,
    target: &Target,
    ip: IpAddr,
    conn: &mut Conn,
) {
    let limit = humantime::format_duration(ctx.timeout);
    conn.current = Some(Phase::Tcp);
    let t0 = Instant::now();
    let outcome = timeout(
        ctx.timeout,
        TcpStream::connect(SocketAddr::new(ip, target.port)),
    )
    .await;
    conn.tcp.ms = Some(report::millis(t0.elapsed()));
    let tcp = match outcome {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            conn.tcp.status = Status::Fail;
            conn.tcp.error = Some(CheckError::new(
                Phase::Tcp,
                Kind::from_io(&e),
                e.to_string(),
            ));
            return;
        }
        Err(_) => {
            conn.tcp.status = Status::Fail;
            conn.tcp.error = Some(CheckError::new(
                Phase::Tcp,
                Kind::Timeout,
                format!(
                    "no answer to the connection request within {limit}: packets are dropped on the way"
                ),
            ));
            return;
        }
    };
    conn.tcp.status = Status::Ok;
    let _ = tcp.set_nodelay(true);

    if !target.scheme.uses_tls() {
        if target.scheme.uses_http() {
            http(ctx, target, tcp, conn).await;
        }
        return;
    }
    conn.current = Some(Phase::Tls);
    let t0 = Instant::now();
    let outcome = timeout(
        ctx.timeout,
        tls::handshake(&ctx.trust, &target.host, tcp, target.scheme.uses_http()),
    )
    .await;
    conn.tls.ms = Some(report::millis(t0.elapsed()));
    let stream = if let Ok(h) = outcome {
        conn.tls.cert = h.cert;
        conn.tls.version = h.version;
        match h.result {
            Ok(s) => s,
            Err((kind, message)) => {
                conn.tls.status = Status::Fail;
                conn.tls.error = Some(CheckError::new(Phase::Tls, kind, message));
                return;
            }
        }
    } else {
        conn.tls.status = Status::Fail;
        conn.tls.error = Some(CheckError::new(
            Phase::Tls,
            Kind::Timeout,
            format!("the TLS handshake did not finish within {limit}"),
        ));
        return;
    };
    conn.tls.status = Status::Ok;
    if target.scheme.uses_http() {
        http(ctx, target, stream, conn).await;
    }
}

async fn http<R, P, S>(ctx: &Ctx<R, P>, target: &Target, stream: S, conn: &mut Conn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    conn.current = Some(Phase::Http);
    let t0 = Instant::now();
    let outcome = timeout(
        ctx.timeout,
        request(target, stream, ctx.expect_body.as_deref(), &mut conn.http),
    )
    .await;
    conn.http.ms = Some(report::millis(t0.elapsed()));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err((kind, message))) => Some(CheckError::new(Phase::Http, kind, message)),
        Err(_) => Some(CheckError::new(
            Phase::Http,
            Kind::Timeout,
            match conn.http.code {
                Some(code) => format!(
                    "HTTP {code} came, but the body did not end within {}",
                    humantime::format_duration(ctx.timeout)
                ),
                None => format!(
                    "no HTTP response within {}",
                    humantime::format_duration(ctx.timeout)
                ),
            },
        )),
    };
    conn.http.status = if failure.is_some() {
        Status::Fail
    } else {
        Status::Ok
    };
    conn.http.error = failure;
}

async fn request<S>(
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
