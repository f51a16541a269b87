//! `POST /api/publish`: one event into one room.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use roomcast_proto::api::PublishResponse;
use serde_json::value::RawValue;

use super::{ApiError, checks, read_body};
use crate::broker::Publish;
use crate::node::Node;

/// `POST /api/publish`: the event gets the room's next offset (or, for an id seen within the
/// dedup window, the first one's) and reaches the room's members on every node.
pub(super) async fn publish(
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
