//! `POST /api/broadcast` (one event into many rooms) and `POST /api/history` (a page of a room's
//! history): the API's batch write and its read of what the gateway holds.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use roomcast_proto::api::{BroadcastEntry, BroadcastResponse, HistoryResponse};
use serde_json::value::RawValue;

use super::{ApiError, checks, read_body};
use crate::broker::Publish;
use crate::node::Node;
use crate::wire;

/// `POST /api/broadcast`: every room is checked first (a bad one is a 400 and nothing is
/// published); then the event goes into each room with one message id, getting each room's next
/// offset. A 503 may leave some rooms with the event: retry with the same id.
pub(super) async fn broadcast(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BroadcastResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::Broadcast { rooms, body: req } = checks::broadcast(&bytes, node.config.max_json_depth)?;
    let data: &RawValue = req.data.as_deref().unwrap_or(RawValue::NULL);
    let template = Publish {
        room: &rooms[0],
        event: &req.event,
        data,
        id: req.id.as_deref(),
        exclude_user: req.exclude_user.as_deref(),
    };
    let published = node.broker.broadcast(&rooms, template).await?;
    for _ in &published {
        node.metrics.event_published();
    }
    let id = published.first().map(|p| p.id.clone()).unwrap_or_default();
    let rooms = rooms
        .iter()
        .zip(published)
        .map(|(room, p)| BroadcastEntry { room: room.to_string(), offset: p.offset, epoch: p.epoch })
        .collect();
    Ok(Json(BroadcastResponse { id, rooms }))
}

/// `POST /api/history`: the room's position and a page of its kept events, each as the `event`
/// frame clients get, without writing anything.
pub(super) async fn history(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HistoryResponse>, ApiError> {
    let bytes = read_body(&node, &headers, body).await?;
    let checks::History { room, since, limit } = checks::history(&bytes, node.config.max_json_depth)?;
    let page = node.broker.history_page(&room, since.as_ref(), limit).await?;
    let position = page.position;
    let last = page.events.last().map(|e| e.offset);
    let recovered = since.as_ref().map(|since| {
        since.epoch == position.epoch
            && since.offset <= position.offset
            && page
                .events
                .first()
                .map_or(since.offset == position.offset, |e| e.offset.checked_sub(1) == Some(since.offset))
    });
    let more = last.is_some_and(|last| last < position.offset);
    let mut events = Vec::with_capacity(page.events.len());
    for event in &page.events {
        let json = String::from_utf8_lossy(wire::payload(&event.frame)).into_owned();
        // The frame is JSON this node encoded; one that is not would be a bug, and is skipped.
        if let Ok(raw) = RawValue::from_string(json) {
            events.push(raw);
        }
    }
    Ok(Json(HistoryResponse { offset: position.offset, epoch: position.epoch, recovered, more, events }))
}
