//! `POST /api/members` (a room's member set) and `POST /api/disconnect` (a user's
//! connections): who may be in a room, and who is connected.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use roomcast_proto::api::{DisconnectResponse, MembersResponse};

use super::{ApiError, checks, read_body};
use crate::node::Node;

/// `POST /api/members`: adds and removes users of a room's member set; the removed users'
/// subscriptions end with `left` `removed`.
pub(super) async fn members(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<MembersResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::Members { room, body: req } = checks::members(&bytes, node.config.max_json_depth)?;
    let (added, removed) = node.broker.update_members(&room, &req.add, &req.remove).await?;
    Ok(Json(MembersResponse { added, removed }))
}

/// `POST /api/disconnect`: closes every connection of a user, on every node; counts this
/// node's.
pub(super) async fn disconnect(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DisconnectResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::Disconnect { user, code } = checks::disconnect(&bytes, node.config.max_json_depth)?;
    let closed = node.broker.disconnect_user(&user, code).await?;
    Ok(Json(DisconnectResponse { closed }))
}
