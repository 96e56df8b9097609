//! The gate in front of every authenticated route (today `POST /v1/reports`): what the
//! headers say is checked before the body is read; the body is read within a size and a
//! time; the signature is verified over it; and only then does the source's rate limit
//! count it. The handler behind it gets the body, read and authenticated.

use super::listen::Peer;
use super::server::{App, error};
use crate::auth::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER, Token};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// Largest report accepted.
pub const BODY_LIMIT: usize = 1 << 20;
/// Time a body has to arrive: at least about 100 KB/s for the largest one.
pub const BODY_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Lets a signed request within the limits through to the route, its body read.
pub async fn gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let peer = parts.extensions.get::<Peer>().map(|p| p.0);
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // What the headers alone say first: an unsigned or stale request is refused before a
    // byte of its body is read.
    if app.token.is_some() {
        if let Err(e) = Token::precheck(h(TIMESTAMP_HEADER), h(SIGNATURE_HEADER), auth::now()) {
            return error(StatusCode::UNAUTHORIZED, e.to_string());
        }
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > BODY_LIMIT {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a report is at most {BODY_LIMIT} bytes"),
            );
        }
    }
    let bytes = match tokio::time::timeout(BODY_TIME, to_bytes(body, BODY_LIMIT)).await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {} s", BODY_TIME.as_secs()),
            );
        }
        Ok(Ok(b)) => b,
        Ok(Err(e)) if too_large(&e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a report is at most {BODY_LIMIT} bytes"),
            );
        }
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            );
        }
    };
    if let Some(token) = &app.token {
        if let Err(e) = token.verify(
            h(TIMESTAMP_HEADER),
            h(SIGNATURE_HEADER),
            &bytes,
            auth::now(),
        ) {
            return error(StatusCode::UNAUTHORIZED, e.to_string());
        }
    }
    // Counted once signed: unsigned junk cannot spend a source's allowance.
    if let (Some(limit), Some(addr)) = (&app.limit, peer) {
        if !limit.allow(addr.ip()) {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} is sending more reports than --rate-limit allows: slow down",
                    addr.ip()
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return response;
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(e: &axum::Error) -> bool {
    crate::error::causes(e).any(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>)
}
