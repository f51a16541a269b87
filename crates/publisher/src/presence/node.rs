//! [`NodePresence`]: what a gateway node writes of presence and online status, its heartbeat,
//! and the sweeps that clean up after dead nodes and settle users whose grace period is over.
//!
//! Every call is idempotent in its effect on Redis, so a node retries a failed one as it is.
//! A node killed without a word is noticed by the others once its heartbeat is older than the
//! ttl: one of them claims it (atomically), takes its connections out of every user's count
//! and every room's presence (publishing the `leave`s), and forgets it.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use roomcast_proto::RoomName;
use roomcast_proto::envelope::{self, Envelope, envelope::Body};

use super::{PresenceKeys, now_ms, scripts};
use crate::{Error, Publisher, Retention, layout};

/// How a node's presence behaves; every node of a deployment uses the same values.
#[derive(Debug, Clone, Copy)]
pub struct PresenceSettings {
    /// A node whose heartbeat is older than this is taken for dead.
    pub ttl: Duration,
    /// How long a user with no connection left stays online before `user_offline`.
    pub grace: Duration,
    /// Whether transitions are written to the event stream.
    pub write_events: bool,
    /// Approximate length the stream is trimmed to.
    pub stream_len: u64,
}

/// What a user's count did to their online state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChange {
    /// Nothing that is reported.
    None,
    /// The user came online (`user_online`).
    Online,
    /// The user's last connection went: `user_offline` follows after the grace period.
    Leaving,
}

/// What a user's count in a room did to the room's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomChange {
    /// Nothing.
    None,
    /// The user's first connection anywhere entered the room.
    Joined,
    /// The user's last connection anywhere left the room.
    Left,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The node was known.
    Known,
    /// The node was not in the node set (its first heartbeat, or it was taken for dead and
    /// cleaned up): everything it holds must be written again.
    New,
    /// Another node is cleaning up after this one, taken for dead.
    Claimed,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Users that went offline (their `user_offline` is in the stream).
    pub offline: Vec<String>,
    /// Dead nodes cleaned up.
    pub reaped: Vec<String>,
    /// For each room a dead node was in, the users who left it.
    pub left: Vec<(RoomName, Vec<String>)>,
}

/// Most users settled, or dead nodes claimed, per sweep.
const SWEEP_BATCH: usize = 500;

/// A gateway node's side of presence in Redis.
#[derive(Debug, Clone)]
pub struct NodePresence {
    publisher: Publisher,
    keys: PresenceKeys,
    node: Arc<str>,
    settings: PresenceSettings,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    user: Script,
    settle: Script,
    room: Script,
    room_gone: Script,
    heartbeat: Script,
    claim: Script,
    forget: Script,
}

/// How long a user's state (and last-seen time) is kept after its last change.
const STATE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

impl NodePresence {
    /// Node `node`'s presence through `publisher` (whose prefix names the keys).
    pub fn new(publisher: Publisher, node: &str, settings: PresenceSettings) -> Self {
        let keys = PresenceKeys::new(publisher.prefix());
        let scripts = Scripts {
            user: Script::new(scripts::USER),
            settle: Script::new(scripts::SETTLE),
            room: Script::new(scripts::ROOM),
            room_gone: Script::new(scripts::ROOM_NODE_GONE),
            heartbeat: Script::new(scripts::HEARTBEAT),
            claim: Script::new(scripts::CLAIM),
            forget: Script::new(scripts::FORGET),
        };
        Self { publisher, keys, node: Arc::from(node), settings, scripts: Arc::new(scripts) }
    }

    /// The names in use.
    pub fn keys(&self) -> &PresenceKeys {
        &self.keys
    }

    /// The publisher it writes through.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Clears what an earlier process with this node's id left (killed and restarted within
    /// the ttl, its counts are still there); call before the first heartbeat.
    pub async fn reset(&self, frames_for: impl Fn(&RoomName) -> bool) -> Result<Sweep, Error> {
        let mut sweep = Sweep::default();
        let node = self.node.to_string();
        self.reap(&node, &frames_for, &mut sweep).await?;
        Ok(sweep)
    }

    /// Sets this node's number of connections of `user` (0: none left).
    pub async fn set_user(&self, user: &str, count: u64) -> Result<UserChange, Error> {
        let k = &self.keys;
        let mut call = self.scripts.user.key(k.conns(user));
        call.key(k.online(user)).key(k.node_users(&self.node)).key(k.pending()).key(k.stream());
        call.arg(user)
            .arg(&*self.node)
            .arg(count)
            .arg(now_ms())
            .arg(Retention::millis(self.settings.grace))
            .arg(u8::from(self.settings.write_events))
            .arg(self.settings.stream_len)
            .arg(Retention::millis(STATE_TTL));
        Ok(match self.publisher.invoke::<u8>(&call).await? {
            1 => UserChange::Online,
            2 => UserChange::Leaving,
            _ => UserChange::None,
        })
    }

    /// Sets this node's number of connections of `user` in `room` (0: none left); with
    /// `frames`, a change goes out on the room's channel as a `join` or `leave`. `node_in_room`
    /// says whether this node still has anyone in the room (so that a dead node's cleanup
    /// knows where to look).
    pub async fn set_room(
        &self,
        room: &RoomName,
        user: &str,
        count: u64,
        frames: bool,
        node_in_room: bool,
    ) -> Result<RoomChange, Error> {
        let node_rooms = self.keys.node_rooms(&self.node);
        if count > 0 {
            // Before the entry exists, so that a cleanup after this node's death finds it.
            self.publisher.query::<()>(redis::cmd("SADD").arg(&node_rooms).arg(room.as_str())).await?;
        }
        let channel = layout::channel(self.publisher.prefix(), room.as_str());
        let envelope = |joined: bool| {
            if !frames {
                return Vec::new();
            }
            self.publisher.envelope(room, Body::Presence(envelope::Presence { user: user.to_owned(), joined }))
        };
        let mut call = self.scripts.room.key(layout::presence_key(&channel));
        call.key(layout::presence_users_key(&channel));
        call.arg(user)
            .arg(&*self.node)
            .arg(count)
            .arg(self.publisher.publish_command())
            .arg(&channel)
            .arg(envelope(true))
            .arg(envelope(false));
        let change = match self.publisher.invoke::<u8>(&call).await? {
            1 => RoomChange::Joined,
            2 => RoomChange::Left,
            _ => RoomChange::None,
        };
        if !node_in_room {
            self.publisher.query::<()>(redis::cmd("SREM").arg(&node_rooms).arg(room.as_str())).await?;
        }
        Ok(change)
    }

    /// Says this node is alive, with `fields` describing it (connections, rooms, version...).
    pub async fn heartbeat(&self, fields: &[(&str, String)]) -> Result<Heartbeat, Error> {
        let k = &self.keys;
        let mut call = self.scripts.heartbeat.key(k.nodes());
        call.key(k.claims()).key(k.node(&self.node));
        call.arg(&*self.node).arg(now_ms()).arg(Retention::millis(self.settings.ttl * 3));
        for (field, value) in fields {
            call.arg(*field).arg(value);
        }
        Ok(match self.publisher.invoke::<u8>(&call).await? {
            1 => Heartbeat::New,
            2 => Heartbeat::Claimed,
            _ => Heartbeat::Known,
        })
    }

    /// Says this node is going away: it is forgotten at once (a drained node has closed its
    /// connections, whose counts are already written).
    pub async fn leave(&self) -> Result<(), Error> {
        self.forget(&self.node).await
    }

    /// Cleans up after dead nodes (claimed by this one) and settles the users whose grace
    /// period is over. With `frames_for`, the `leave` of a dead node's user goes out on the
    /// rooms it says yes to.
    pub async fn sweep(&self, frames_for: impl Fn(&RoomName) -> bool) -> Result<Sweep, Error> {
        let mut sweep = Sweep::default();
        let now = now_ms();
        let k = &self.keys;
        let stale = now.saturating_sub(self.settings.ttl.as_millis() as u64);
        let dead: Vec<String> = self
            .publisher
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(k.nodes())
                    .arg("-inf")
                    .arg(format!("({stale}"))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SWEEP_BATCH),
            )
            .await?;
        for node in dead {
            let mut claim = self.scripts.claim.key(k.nodes());
            claim.key(k.claims()).arg(&node).arg(now).arg(self.settings.ttl.as_millis() as u64).arg(&*self.node);
            if self.publisher.invoke::<u8>(&claim).await? == 1 {
                tracing::info!(node, "a node stopped sending heartbeats; cleaning up its presence");
                self.reap(&node, &frames_for, &mut sweep).await?;
                sweep.reaped.push(node);
            }
        }
        let due: Vec<String> = self
            .publisher
            .query(
                redis::cmd("ZRANGEBYSCORE").arg(k.pending()).arg("-inf").arg(now).arg("LIMIT").arg(0).arg(SWEEP_BATCH),
            )
            .await?;
        for user in due {
            let mut settle = self.scripts.settle.key(k.conns(&user));
            settle.key(k.online(&user)).key(k.pending()).key(k.stream());
            settle
                .arg(&user)
                .arg(now)
                .arg(u8::from(self.settings.write_events))
                .arg(self.settings.stream_len)
                .arg(Retention::millis(STATE_TTL));
            if self.publisher.invoke::<u8>(&settle).await? == 1 {
                sweep.offline.push(user);
            }
        }
        Ok(sweep)
    }

    /// Takes dead `node`'s connections out of every user's count and every room's presence.
    async fn reap(&self, node: &str, frames_for: &impl Fn(&RoomName) -> bool, sweep: &mut Sweep) -> Result<(), Error> {
        let k = &self.keys;
        let users: Vec<String> = self.publisher.query(redis::cmd("SMEMBERS").arg(k.node_users(node))).await?;
        let dead = NodePresence { node: Arc::from(node), ..self.clone() };
        for user in &users {
            dead.set_user(user, 0).await?;
        }
        let rooms: Vec<String> = self.publisher.query(redis::cmd("SMEMBERS").arg(k.node_rooms(node))).await?;
        for room in rooms.iter().filter_map(|r| RoomName::parse(r).ok()) {
            let channel = layout::channel(self.publisher.prefix(), room.as_str());
            let base = if frames_for(&room) {
                let envelope = Envelope {
                    room: room.to_string(),
                    origin: self.node.to_string(),
                    offset: 0,
                    epoch: String::new(),
                    body: None,
                };
                prost::Message::encode_to_vec(&envelope)
            } else {
                Vec::new()
            };
            let mut call = self.scripts.room_gone.key(layout::presence_key(&channel));
            call.key(layout::presence_users_key(&channel));
            call.arg(node).arg(self.publisher.publish_command()).arg(&channel).arg(base);
            let left: Vec<String> = self.publisher.invoke(&call).await?;
            if !left.is_empty() {
                sweep.left.push((room, left));
            }
        }
        self.forget(node).await
    }

    async fn forget(&self, node: &str) -> Result<(), Error> {
        let k = &self.keys;
        let mut call = self.scripts.forget.key(k.nodes());
        call.key(k.claims()).key(k.node(node)).key(k.node_users(node)).key(k.node_rooms(node)).arg(node);
        self.publisher.invoke::<u8>(&call).await.map(drop)
    }

    /// Appends `events` (JSON objects with a `type`) to the stream, in one round trip.
    pub async fn write_events(&self, events: &[(String, String)]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (kind, event) in events {
            pipe.cmd("XADD")
                .arg(self.keys.stream())
                .arg("MAXLEN")
                .arg("~")
                .arg(self.settings.stream_len)
                .arg("*")
                .arg("type")
                .arg(kind)
                .arg("event")
                .arg(event)
                .ignore();
        }
        self.publisher.pipeline::<()>(&pipe).await
    }
}
