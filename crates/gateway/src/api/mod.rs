//! The backend API: `POST /api/publish`, `/api/broadcast`, `/api/history`, `/api/members`,
//! `/api/disconnect`, `/api/presence`, `/api/online` and `GET /api/info`.
//!
//! Every request needs `Authorization: Bearer <api key>` (401 otherwise, and always while no
//! key is configured). A body that is not what the endpoint expects gets 400 with
//! `{"error":"bad_request","message":...}` naming the problem, before anything is changed; a
//! body over `max_api_body` gets 413, one that does not arrive within `body_read_timeout` 408; a
//! broker that cannot be reached gets 503 (retry with the same message id), any other broker
//! failure 500. Every 5xx is logged once, with its cause.
//!
//! # Layout
//! - `mod.rs`: the routes, the API key, reading the body.
//! - `checks.rs`: what each endpoint accepts, as pure functions of the body's bytes.
//! - `error.rs`: [`ApiError`], the failed request's status and body.
//! - One file per concern, each a handler that reads the body, checks it and calls the broker:
//!   `publish.rs` (`/api/publish`), `broadcast.rs` (`/api/broadcast`, `/api/history`), `members.rs` (`/api/members`, `/api/disconnect`),
//!   `presence.rs` (`/api/presence`, `/api/online`, `/api/info`).

mod broadcast;
pub mod checks;
mod error;
mod members;
pub mod presence;
mod publish;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};

pub use error::ApiError;

use crate::node::Node;

/// The API's routes.
pub fn routes() -> axum::Router<Arc<Node>> {
    axum::Router::new()
        .route("/api/publish", post(publish::publish))
        .route("/api/broadcast", post(broadcast::broadcast))
        .route("/api/history", post(broadcast::history))
        .route("/api/members", post(members::members))
        .route("/api/disconnect", post(members::disconnect))
        .route("/api/presence", post(presence::presence))
        .route("/api/online", post(presence::online))
        .route("/api/info", axum::routing::get(presence::info))
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
