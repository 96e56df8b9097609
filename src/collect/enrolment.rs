//! `GET /v1/enrol` (a nonce) and `POST /v1/enrol` (an enrolment): checked here on a
//! collector, passed on untouched by a relay, which then keeps what its collector accepted so
//! it can check the reports it forwards.

use super::enrol::Refusal;
use super::listen::Peer;
use super::server::{App, error, refusal};
use crate::identity::wire::{ENROL_LIMIT, Enrolled, Enrolment};
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const NOT_HERE: &str = "this collector accepts no instance identities: give it --allow-account (or sign reports with --token-file)";

/// A nonce for the next enrolment.
pub async fn challenge(State(app): State<Arc<App>>) -> Response {
    if let Some(relay) = &app.relay {
        return passed(relay.pass_enrolment(None).await);
    }
    match &app.identities {
        Some(ids) => axum::Json(ids.challenge()).into_response(),
        None => error(StatusCode::NOT_FOUND, NOT_HERE),
    }
}

/// An enrolment: checked, committed to the store's database, then acknowledged.
pub async fn enrol(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<Peer>>,
    body: Body,
) -> Response {
    let peer = peer.map(|p| p.0.0);
    let bytes =
        match tokio::time::timeout(super::server::BODY_TIME, to_bytes(body, ENROL_LIMIT)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("an enrolment is at most {ENROL_LIMIT} bytes"),
                );
            }
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the enrolment did not arrive in time",
                );
            }
        };
    let Some(ids) = app.identities.clone() else {
        return error(StatusCode::NOT_FOUND, NOT_HERE);
    };
    let enrolment: Enrolment = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            let why = Refusal::Malformed(e.to_string());
            ids.refused("an enrolment", peer, &why);
            return refusal(StatusCode::BAD_REQUEST, &why);
        }
    };
    if let Some(relay) = &app.relay {
        return relayed(relay, ids, enrolment, bytes).await;
    }
    let key = enrolment.public_key.clone();
    let checked = {
        let ids = ids.clone();
        tokio::task::spawn_blocking(move || ids.check(&enrolment)).await
    };
    let (doc, key_id) = match checked {
        Ok(Ok(found)) => found,
        Ok(Err(Ok(why))) => {
            ids.refused("an enrolment", peer, &why);
            return refusal(status_of(&why), &why);
        }
        Ok(Err(Err(why))) => return error(StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if let Some(enricher) = &app.enricher {
        if let Some(found) = Box::pin(enricher.instance_now(&doc.region, &doc.instance_id)).await {
            let why = match found {
                Ok(info) if info.state == "running" => None,
                Ok(info) => Some(format!(
                    "{} is {}, not running",
                    doc.instance_id, info.state
                )),
                Err(why) => Some(why.to_string()),
            };
            if let Some(why) = why {
                let why = Refusal::Ec2(why);
                ids.refused("an enrolment", peer, &why);
                return refusal(StatusCode::FORBIDDEN, &why);
            }
        }
    }
    let recorded = {
        let ids = ids.clone();
        let doc = doc.clone();
        tokio::task::spawn_blocking(move || ids.record(&doc, &key, &key_id)).await
    };
    match recorded {
        Ok(Ok(enrolled)) => {
            eprintln!(
                "probe collect: enrolled key {} for {} (account {}, {})",
                enrolled.key_id, enrolled.instance_id, doc.account_id, doc.region
            );
            (StatusCode::CREATED, axum::Json(enrolled)).into_response()
        }
        Ok(Err(Ok(why))) => {
            ids.refused("an enrolment", peer, &why);
            refusal(StatusCode::FORBIDDEN, &why)
        }
        Ok(Err(Err(why))) => error(StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// A relay's enrolment: passed to its collector, and kept here once the collector accepted it.
async fn relayed(
    relay: &super::relay::Relay,
    ids: Arc<super::enrol::Identities>,
    enrolment: Enrolment,
    bytes: axum::body::Bytes,
) -> Response {
    let answer = relay.pass_enrolment(Some(bytes)).await;
    if let Ok((status @ (200 | 201), body)) = &answer {
        if let Ok(enrolled) = serde_json::from_slice::<Enrolled>(body) {
            let status = *status;
            let kept =
                tokio::task::spawn_blocking(move || ids.remember(&enrolment, &enrolled)).await;
            let kept = kept.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            if let Err(why) = kept {
                tracing::error!("an enrolment the collector accepted: {why}");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "enrolled upstream (HTTP {status}), but this relay cannot keep it: its reports would be refused here; try again"
                    ),
                );
            }
        }
    }
    passed(answer)
}

fn status_of(why: &Refusal) -> StatusCode {
    match why {
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::Nonce | Refusal::Proof | Refusal::Document(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

/// The upstream's answer as this relay's.
fn passed(answer: Result<(u16, Vec<u8>), super::relay::Unreachable>) -> Response {
    match answer {
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(why) => error(StatusCode::BAD_GATEWAY, why.to_string()),
    }
}
