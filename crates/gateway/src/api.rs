//! The publish API: `POST /api/publish`, `/api/members` and `/api/disconnect`.
//!
//! Every request needs `Authorization: Bearer <api key>` (401 otherwise, and always while no
//! key is configured). A body that is not what the endpoint expects gets 400 with
//! `{"error":"bad_request","message":...}` naming the problem, before anything is changed; a
//! body over `max_api_body` gets 413, one that does not arrive within `body_read_timeout` 408; a
//! broker that cannot be reached gets 503 (retry with the same message id), any other broker
//! failure 500. Every 5xx is logged once, with its cause.
//!
//! # Layout
//! - `api.rs`: the routes, the API key, reading the body.
//! - `checks.rs`: what each endpoint accepts, as pure functions of the body's bytes.
//! - `error.rs`: [`ApiError`], the failed request's status and body.

pub mod checks;
mod error;

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use roomcast_proto::api::{DisconnectResponse, MembersResponse, PublishResponse};
use serde_json::value::RawValue;

pub use error::ApiError;

use crate::broker::Publish;
use crate::node::Node;

/// The API's routes.
pub fn routes() -> axum::Router<Arc<Node>> {
    axum::Router::new()
        .route("/api/publish", post(publish))
        .route("/api/members", post(members))
        .route("/api/disconnect", post(disconnect))
}

async fn publish(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PublishResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::Publish { room, body: req } = checks::publish(&bytes, node.config.max_json_depth)?;
    let data: &RawValue = req.data.as_deref().unwrap_or(RawValue::NULL);
    let published = node
        .broker
        .publish(Publish {
            room: &room,
            event: &req.event,
            data,
            id: req.id.as_deref(),
            exclude_user: req.exclude_user.as_deref(),
        })
        .await?;
    node.metrics.event_published();
    Ok(Json(PublishResponse { offset: published.offset, epoch: published.epoch, id: published.id }))
}

async fn members(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<MembersResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::Members { room, body: req } = checks::members(&bytes, node.config.max_json_depth)?;
    let (added, removed) = node.broker.update_members(&room, &req.add, &req.remove).await?;
    Ok(Json(MembersResponse { added, removed }))
}

async fn disconnect(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DisconnectResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::Disconnect { user, code } = checks::disconnect(&bytes, node.config.max_json_depth)?;
    let closed = node.broker.disconnect_user(&user, code).await?;
    Ok(Json(DisconnectResponse { closed }))
}

/// Checks the API key, then reads the body: at most `max_api_body` bytes, within
/// `body_read_timeout`.
async fn read_body(node: &Node, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    authorize(node, headers)?;
    let limit = node.config.max_api_body;
    let timeout = node.config.body_read_timeout;
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "too_large",
            message: format!("body is over max_api_body ({limit} bytes)"),
        }),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("body could not be read: {e}"))),
        Err(_) => Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            error: "timeout",
            message: format!("the body did not arrive within body_read_timeout ({} ms)", timeout.as_millis()),
        }),
    }
}

fn authorize(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |message: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        error: "unauthorized",
        message: message.to_owned(),
    };
    let Some(key) = &node.config.api_key else {
        return Err(unauthorized("ROOMCAST_API_KEY is not set on this node; the API is closed"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <api key>"))?;
    if !constant_time_eq(given.trim().as_bytes(), key.as_bytes()) {
        return Err(unauthorized("wrong API key"));
    }
    Ok(())
}

/// Compares without stopping at the first difference, so timing does not reveal the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn key_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
    }
}
