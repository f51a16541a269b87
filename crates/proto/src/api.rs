//! JSON bodies of the backend API (`POST /api/publish`, `/api/broadcast`, `/api/history`,
//! `/api/members`, `/api/disconnect`, `/api/presence`, `/api/online`, `GET /api/info`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::frames::Position;

/// Body of `POST /api/publish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Room to publish to.
    pub room: String,
    /// Event name, e.g. `message:new`.
    pub event: String,
    /// Event data (any JSON); `null` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Message id clients use to drop duplicates; the gateway makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Keep the event from this user's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_user: Option<String>,
}

/// Reply to a publish: where the event landed in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    /// The event's offset in the room.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: String,
    /// The message id (the one given, or the one the gateway made).
    pub id: String,
}

/// Body of `POST /api/members`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersRequest {
    /// Room whose member set changes.
    pub room: String,
    /// Users to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Users to remove; their live subscriptions end with `left`.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Reply to `POST /api/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResponse {
    /// How many users were added that were not members before.
    pub added: u64,
    /// How many users were removed that were members before.
    pub removed: u64,
}

/// Body of `POST /api/disconnect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// User whose connections close.
    pub user: String,
    /// Close code: 1000 or 4000-4999; 4003 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// Reply to `POST /api/disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisconnectResponse {
    /// Connections closed on the node that answered.
    pub closed: u64,
}

/// Body of every API error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine-readable code: `bad_request`, `unauthorized`, `unavailable`, `internal`.
    pub error: String,
    /// What was wrong, naming the field.
    pub message: String,
}

/// Body of `POST /api/presence`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// A room with presence (see `presence_rooms`).
    pub room: String,
}

/// One user present in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentUser {
    /// The user's connections in the room, on every node.
    pub connections: u64,
}

/// Reply to `POST /api/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceResponse {
    /// The room.
    pub room: String,
    /// The users present, by id.
    pub users: std::collections::BTreeMap<String, PresentUser>,
}

/// Body of `POST /api/online`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineRequest {
    /// Users to ask about: 1 to 1000.
    pub users: Vec<String>,
}

/// One user's online status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOnline {
    /// Whether the user has a connection now, on any node.
    pub online: bool,
    /// `online`, `leaving` (no connection, within the offline grace: `user_offline` follows
    /// unless one comes back) or `offline`: the state events report.
    pub status: String,
    /// Connections now, on every node.
    pub connections: u64,
    /// When the last connection went (Unix ms), for a user without connections seen before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
}

/// Reply to `POST /api/online`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineResponse {
    /// Each user asked about, by id.
    pub users: std::collections::BTreeMap<String, UserOnline>,
}

/// One live node, in `GET /api/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node id.
    pub node: String,
    /// Its last heartbeat (Unix ms).
    pub heartbeat_ms: u64,
    /// Its open connections at that heartbeat.
    pub connections: u64,
    /// Rooms with a member on it at that heartbeat.
    pub rooms: u64,
    /// Its roomcast version.
    pub version: String,
}

/// Reply to `GET /api/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoResponse {
    /// The node that answered.
    pub node: String,
    /// Its version.
    pub version: String,
    /// `embedded`, `redis` or `redis-cluster`.
    pub broker: String,
    /// Every node alive (heartbeat within `presence_ttl`).
    pub nodes: Vec<NodeEntry>,
}

/// Body of `POST /api/broadcast`: one event into many rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// Rooms to publish to (1 to 1000, each once).
    pub rooms: Vec<String>,
    /// Event name, e.g. `unread:updated`.
    pub event: String,
    /// Event data (any JSON); `null` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Message id, the same in every room; with it a retried broadcast is delivered once per room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Keep the event from this user's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_user: Option<String>,
}

/// Where a broadcast event landed in one of its rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastEntry {
    /// The room.
    pub room: String,
    /// The event's offset in this room.
    pub offset: u64,
    /// This room's epoch.
    pub epoch: String,
}

/// Reply to `POST /api/broadcast`: each room's offset, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastResponse {
    /// The message id, the same in every room.
    pub id: String,
    /// One entry per room, in the order of the request.
    pub rooms: Vec<BroadcastEntry>,
}

/// Body of `POST /api/history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// The room.
    pub room: String,
    /// Only events after this position; without it, the room's latest events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Position>,
    /// Most events to return, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Reply to `POST /api/history`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The room's last offset (0 before its first event).
    pub offset: u64,
    /// The room's epoch (empty while the room has none).
    pub epoch: String,
    /// With `since`: whether the events start right after it, in its epoch, with nothing
    /// missing before them (false: history no longer reaches back there, or the epoch changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// Whether kept events follow the last one returned (ask again with it as `since`).
    pub more: bool,
    /// The events, oldest first, each the `event` frame clients get.
    pub events: Vec<Box<RawValue>>,
}
