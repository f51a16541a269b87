//! The publish API: `POST /api/publish`, `/api/members` and `/api/disconnect`.
//!
//! Every request needs `Authorization: Bearer <api key>` (401 otherwise, and always while no
//! key is configured). A body that is not what the endpoint expects gets 400 with
//! `{"error":"bad_request","message":...}` naming the problem, before anything is changed; a
//! body over `max_api_body` gets 413; a broker that cannot be reached gets 503 (retry with the
//! same message id), any other broker failure 500. Every 5xx is logged once, with its cause.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use roomcast_proto::api::{
    ApiErrorBody, DisconnectRequest, DisconnectResponse, MembersRequest, MembersResponse, PublishRequest,
    PublishResponse,
};
use roomcast_proto::{RoomKind, RoomName};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::broker::{BrokerError, Publish, causes};
use crate::node::Node;

/// Longest event name, message id or user id accepted, in bytes.
const MAX_NAME_LEN: usize = 256;

/// The API's routes.
pub fn routes() -> axum::Router<Arc<Node>> {
    axum::Router::new()
        .route("/api/publish", post(publish))
        .route("/api/members", post(members))
        .route("/api/disconnect", post(disconnect))
}

/// A failed API request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "bad_request", message: message.into() }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        let (status, error) = match e {
            BrokerError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            BrokerError::Refused(_) | BrokerError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = causes(&e);
        tracing::warn!(status = status.as_u16(), error = %message, "API request failed");
        Self { status, error, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ApiErrorBody { error: self.error.to_owned(), message: self.message })).into_response()
    }
}

async fn publish(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PublishResponse>, ApiError> {
    let req: PublishRequest = read_body(&node, &headers, body).await?;
    let room = parse_room(&req.room)?;
    check_name("event", &req.event)?;
    if let Some(id) = &req.id {
        check_name("id", id)?;
    }
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
    let req: MembersRequest = read_body(&node, &headers, body).await?;
    let room = parse_room(&req.room)?;
    if room.kind() != RoomKind::Members {
        return Err(ApiError::bad_request(format!(
            "room: {room} is joined through its token's sub or org; member sets apply to other rooms such as dialog:<id>"
        )));
    }
    for user in req.add.iter().chain(&req.remove) {
        check_name("user", user)?;
    }
    let (added, removed) = node.broker.update_members(&room, &req.add, &req.remove).await?;
    Ok(Json(MembersResponse { added, removed }))
}

async fn disconnect(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DisconnectResponse>, ApiError> {
    let req: DisconnectRequest = read_body(&node, &headers, body).await?;
    check_name("user", &req.user)?;
    let code = req.code.unwrap_or(4003);
    if !(code == 1000 || (4000..=4999).contains(&code)) {
        return Err(ApiError::bad_request(format!("code: {code} is not 1000 or 4000-4999")));
    }
    let closed = node.broker.disconnect_user(&req.user, code).await?;
    Ok(Json(DisconnectResponse { closed }))
}

/// Checks the API key, then reads and parses the body.
async fn read_body<T: DeserializeOwned>(node: &Node, headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    authorize(node, headers)?;
    let limit = node.config.max_api_body;
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                error: "too_large",
                message: format!("body is over max_api_body ({limit} bytes)"),
            });
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!("body could not be read: {e}")));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("body: {e}")))
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

fn parse_room(room: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(room).map_err(|e| ApiError::bad_request(format!("room: {e}")))
}

fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: is empty")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!("{field}: is {} bytes, the limit is {MAX_NAME_LEN}", value.len())));
    }
    Ok(())
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
