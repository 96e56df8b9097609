//! The gate in front of every authenticated route (today `POST /v1/reports`): what the
//! headers say is checked before the body is read; the body is read within a size and a
//! time; the proofs are verified over it (the token's HMAC, an enrolled key's signature, or
//! both, as `--require` says); and only then does the source's rate limit count it. The
//! handler behind it gets the body, read and authenticated, and what proved it.

use super::enrol::Proven;
use super::listen::Peer;
use super::server::{App, error, refusal};
use crate::auth::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER, Token};
use crate::identity::wire::{KEY_HEADER, KEY_SIGNATURE_HEADER};
use crate::model::AuthMethod;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
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
    let check_token = match precheck(&app, headers) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
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
    if let (Some(token), true) = (&app.token, check_token) {
        if let Err(e) = token.verify(
            h(TIMESTAMP_HEADER),
            h(SIGNATURE_HEADER),
            &bytes,
            auth::now(),
        ) {
            return error(StatusCode::UNAUTHORIZED, e.to_string());
        }
    }
    if let (Some(ids), Some(key_id)) = (&app.identities, h(KEY_HEADER)) {
        if ids.may_know(key_id) {
            ids.catch_up().await;
        }
    }
    let proven = match prove(&app, headers, &bytes, check_token, peer) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
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
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(proven);
    next.run(request).await
}

fn too_large(e: &axum::Error) -> bool {
    crate::error::causes(e).any(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>)
}

/// What the headers alone say: whether the token's proof is to be checked, or the refusal.
fn precheck(app: &App, headers: &HeaderMap) -> Result<bool, Box<Response>> {
    let h = |name: &str| header(headers, name);
    let keyed = h(KEY_HEADER).is_some() || h(KEY_SIGNATURE_HEADER).is_some();
    let tokened = h(TIMESTAMP_HEADER).is_some() || h(SIGNATURE_HEADER).is_some();
    // A token's proof is checked when the collector has a token and the request is not
    // proven by a key instead (a proof that is there is always checked).
    let check_token =
        app.token.is_some() && (tokened || !keyed || app.require_both || app.identities.is_none());
    if check_token {
        if let Err(e) = Token::precheck(h(TIMESTAMP_HEADER), h(SIGNATURE_HEADER), auth::now()) {
            return Err(Box::new(error(StatusCode::UNAUTHORIZED, e.to_string())));
        }
    }
    if keyed && app.identities.is_none() {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "this collector accepts no instance identities: give it --allow-account, or sign reports with --token-file",
        )));
    }
    if !keyed && app.identities.is_some() && (app.require_both || app.token.is_none()) {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            format!(
                "missing {KEY_HEADER} header: sign the report with the agent's enrolled key (probe check --identity aws)"
            ),
        )));
    }
    Ok(check_token)
}

/// What proved the body: the token (already checked), and an enrolled key's signature when
/// the request carries one.
fn prove(
    app: &App,
    headers: &HeaderMap,
    bytes: &[u8],
    check_token: bool,
    peer: Option<std::net::SocketAddr>,
) -> Result<Proven, Box<Response>> {
    let h = |name: &str| header(headers, name);
    let keyed = h(KEY_HEADER).is_some() || h(KEY_SIGNATURE_HEADER).is_some();
    let mut proven = Proven {
        method: if check_token {
            AuthMethod::Token
        } else {
            AuthMethod::None
        },
        key: None,
        signature: None,
    };
    let (Some(ids), true) = (&app.identities, keyed) else {
        return Ok(proven);
    };
    let (key_id, signature) = (
        h(KEY_HEADER).unwrap_or_default(),
        h(KEY_SIGNATURE_HEADER).unwrap_or_default(),
    );
    match ids.verify_report(key_id, signature, bytes) {
        Ok(key) => {
            proven.method = if check_token {
                AuthMethod::TokenAndAwsIdentity
            } else {
                AuthMethod::AwsIdentity
            };
            proven.signature = Some(crate::deliver::Proof {
                key_id: key.2.clone(),
                signature: signature.to_string(),
            });
            proven.key = Some(key);
            Ok(proven)
        }
        Err(why) => {
            ids.refused("a report", peer, &why);
            Err(Box::new(refusal(StatusCode::UNAUTHORIZED, &why)))
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
