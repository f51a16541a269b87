//! `POST /api/presence` (who is in a room), `POST /api/online` (whether users are connected
//! anywhere) and `GET /api/info` (the nodes alive): what a backend reads of presence.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use roomcast_proto::api::{
    InfoResponse, NodeEntry, OnlineRequest, OnlineResponse, PresenceRequest, PresenceResponse, PresentUser, UserOnline,
};
use roomcast_proto::{RoomName, check_user_id};
use roomcast_publisher::presence::{MAX_ONLINE_USERS, UserState};

use super::checks::parse;
use super::{ApiError, authorize, read_body};
use crate::broker::BrokerError;
use crate::node::Node;

/// Reads and checks a `/api/presence` body: a room that keeps presence.
pub fn presence_body(bytes: &[u8], node: &Node) -> Result<RoomName, ApiError> {
    let req: PresenceRequest = parse(bytes, node.config.max_json_depth)?;
    let room = RoomName::parse(&req.room).map_err(|e| ApiError::bad_request(format!("room: {e}")))?;
    if !node.presence.keeps(&room) {
        let why = if node.presence.enabled() { "see presence_rooms" } else { "presence=false" };
        return Err(ApiError::bad_request(format!("room: presence is not kept for {room} ({why})")));
    }
    Ok(room)
}

/// Reads and checks a `/api/online` body: 1 to 1000 user ids, each valid.
pub fn online_body(bytes: &[u8], max_depth: usize) -> Result<Vec<String>, ApiError> {
    let req: OnlineRequest = parse(bytes, max_depth)?;
    if req.users.is_empty() {
        return Err(ApiError::bad_request("users: is empty"));
    }
    if req.users.len() > MAX_ONLINE_USERS {
        return Err(ApiError::bad_request(format!(
            "users: {} users, the limit is {MAX_ONLINE_USERS} per call",
            req.users.len()
        )));
    }
    for (i, user) in req.users.iter().enumerate() {
        check_user_id(user).map_err(|e| ApiError::bad_request(format!("users[{i}]: {e}")))?;
    }
    Ok(req.users)
}

/// `POST /api/presence`.
pub(super) async fn presence(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PresenceResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let room = presence_body(&bytes, &node)?;
    let users = node.presence.room(&room).await.map_err(BrokerError::from)?;
    let users = users.into_iter().map(|(user, connections)| (user, PresentUser { connections })).collect();
    Ok(Json(PresenceResponse { room: room.to_string(), users }))
}

/// `POST /api/online`.
pub(super) async fn online(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OnlineResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let users = online_body(&bytes, node.config.max_json_depth)?;
    if !node.presence.enabled() {
        return Err(ApiError::bad_request("online status is off on this node (presence=false)"));
    }
    let statuses = node.presence.online(&users).await.map_err(BrokerError::from)?;
    let users: BTreeMap<String, UserOnline> = statuses
        .into_iter()
        .map(|s| {
            let status = match s.state {
                UserState::Online => "online",
                UserState::Leaving => "leaving",
                UserState::Offline => "offline",
            };
            let entry = UserOnline {
                online: s.connections > 0,
                status: status.to_owned(),
                connections: s.connections,
                last_seen: s.last_seen_ms,
            };
            (s.user, entry)
        })
        .collect();
    Ok(Json(OnlineResponse { users }))
}

/// `GET /api/info`.
pub(super) async fn info(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<Json<InfoResponse>, ApiError> {
    authorize(&node, &headers)?;
    let nodes = node.presence.nodes().await.map_err(BrokerError::from)?;
    let field = |fields: &BTreeMap<String, String>, name: &str| fields.get(name).cloned().unwrap_or_default();
    let nodes = nodes
        .into_iter()
        .map(|n| NodeEntry {
            connections: field(&n.fields, "connections").parse().unwrap_or(0),
            rooms: field(&n.fields, "rooms").parse().unwrap_or(0),
            version: field(&n.fields, "version"),
            node: n.node,
            heartbeat_ms: n.heartbeat_ms,
        })
        .collect();
    Ok(Json(InfoResponse {
        node: node.config.node_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        broker: node.broker.kind().to_owned(),
        nodes,
    }))
}
