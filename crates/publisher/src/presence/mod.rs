//! Presence, online status and the event stream, as they are kept in Redis: what backends read
//! ([`Publisher::online`], [`Publisher::presence`], [`Publisher::nodes`]) and, in
//! [`NodePresence`], what gateway nodes write.
//!
//! Names: online status, node liveness and the stream `<prefix>roomcast:events` share the
//! stream's name as hash tag ([`PresenceKeys`]); a room's presence sits beside the room's other
//! keys (`{<channel>}:presence`, `{<channel>}:presence:users`).
//!
//! # Layout
//! - `mod.rs`: names and reads; `node.rs`: a node's writes, heartbeat and sweeps;
//!   `stream.rs`: reading the event stream with a consumer group; `scripts.rs`: the Lua scripts.

mod node;
mod scripts;
mod stream;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roomcast_proto::RoomName;

pub use node::{Heartbeat, NodePresence, PresenceSettings, RoomChange, Sweep, UserChange};
pub use stream::StreamEvent;

use crate::{Error, Publisher, layout};

/// Most users one [`Publisher::online`] call may ask about.
pub const MAX_ONLINE_USERS: usize = 1000;

/// The names of online status, node liveness and the event stream under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceKeys {
    tag: String,
    stream: String,
}

impl PresenceKeys {
    /// The names under `prefix` (the channel prefix, `""` or e.g. `"rc:"`).
    pub fn new(prefix: &str) -> Self {
        Self { tag: format!("{{{prefix}roomcast:events}}"), stream: format!("{prefix}roomcast:events") }
    }

    /// The event stream backends read (`<prefix>roomcast:events`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.tag)
    }

    pub(crate) fn claims(&self) -> String {
        format!("{}:claims", self.tag)
    }

    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.tag)
    }

    pub(crate) fn node_users(&self, node: &str) -> String {
        format!("{}:node:{node}:users", self.tag)
    }

    pub(crate) fn node_rooms(&self, node: &str) -> String {
        format!("{}:node:{node}:rooms", self.tag)
    }

    pub(crate) fn conns(&self, user: &str) -> String {
        format!("{}:conns:{user}", self.tag)
    }

    pub(crate) fn online(&self, user: &str) -> String {
        format!("{}:online:{user}", self.tag)
    }

    pub(crate) fn pending(&self) -> String {
        format!("{}:pending", self.tag)
    }

    /// The key a webhook relay holds while it relays (one node at a time).
    pub fn relay_lease(&self) -> String {
        format!("{}:relay", self.tag)
    }
}

/// Where a user stands in the online state that events report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// At least one connection, on some node.
    Online,
    /// No connection, within the grace period: `user_offline` follows unless one comes back.
    Leaving,
    /// No connection (`user_offline` was reported), or never seen.
    Offline,
}

/// One user's online status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineStatus {
    /// The user.
    pub user: String,
    /// Connections now, on every node.
    pub connections: u64,
    /// The state events report (a user with no connection stays `Leaving` for the grace
    /// period).
    pub state: UserState,
    /// When the last connection went (Unix ms), for a user without connections.
    pub last_seen_ms: Option<u64>,
}

/// A node that sent a heartbeat within the ttl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node id.
    pub node: String,
    /// Its last heartbeat (Unix ms).
    pub heartbeat_ms: u64,
    /// What it said of itself (connections, rooms, version, ...).
    pub fields: BTreeMap<String, String>,
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Publisher {
    /// The online status of up to [`MAX_ONLINE_USERS`] users, in the order asked, in one round
    /// trip.
    pub async fn online<S: AsRef<str>>(&self, users: &[S]) -> Result<Vec<OnlineStatus>, Error> {
        if users.len() > MAX_ONLINE_USERS {
            return Err(Error::InvalidArgument(format!("at most {MAX_ONLINE_USERS} users per call")));
        }
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let keys = PresenceKeys::new(self.prefix());
        let mut pipe = redis::pipe();
        for user in users {
            pipe.cmd("HVALS").arg(keys.conns(user.as_ref()));
            pipe.cmd("HMGET").arg(keys.online(user.as_ref())).arg("state").arg("last_seen");
        }
        let replies: Vec<redis::Value> = self.pipeline(&pipe).await?;
        let mut out = Vec::with_capacity(users.len());
        for (user, pair) in users.iter().zip(replies.chunks(2)) {
            let counts: Vec<u64> = redis::from_redis_value(pair[0].clone()).map_err(|e| Error::Reply(e.to_string()))?;
            let (state, last): (Option<String>, Option<u64>) =
                redis::from_redis_value(pair[1].clone()).map_err(|e| Error::Reply(e.to_string()))?;
            let connections = counts.iter().sum();
            let state = match state.as_deref() {
                Some("online") => UserState::Online,
                Some("leaving") => UserState::Leaving,
                _ => UserState::Offline,
            };
            let last_seen_ms = if connections > 0 { None } else { last };
            out.push(OnlineStatus { user: user.as_ref().to_owned(), connections, state, last_seen_ms });
        }
        Ok(out)
    }

    /// The users present in `room` (a room with presence on) and their connections on every
    /// node.
    pub async fn presence(&self, room: &str) -> Result<BTreeMap<String, u64>, Error> {
        let room = RoomName::parse(room)?;
        let key = layout::presence_key(&layout::channel(self.prefix(), room.as_str()));
        let entries: Vec<(String, u64)> = self.query(redis::cmd("HGETALL").arg(key)).await?;
        let mut users = BTreeMap::new();
        for (field, count) in entries {
            let user = field.split_once(' ').map_or(field.as_str(), |(user, _)| user);
            *users.entry(user.to_owned()).or_insert(0) += count;
        }
        Ok(users)
    }

    /// The nodes whose heartbeat is younger than `ttl`, with what they said of themselves.
    pub async fn nodes(&self, ttl: Duration) -> Result<Vec<NodeInfo>, Error> {
        let keys = PresenceKeys::new(self.prefix());
        let since = now_ms().saturating_sub(ttl.as_millis() as u64);
        let alive: Vec<(String, u64)> =
            self.query(redis::cmd("ZRANGEBYSCORE").arg(keys.nodes()).arg(since).arg("+inf").arg("WITHSCORES")).await?;
        if alive.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (node, _) in &alive {
            pipe.cmd("HGETALL").arg(keys.node(node));
        }
        let fields: Vec<BTreeMap<String, String>> = self.pipeline(&pipe).await?;
        Ok(alive
            .into_iter()
            .zip(fields)
            .map(|((node, heartbeat_ms), fields)| NodeInfo { node, heartbeat_ms, fields })
            .collect())
    }
}
