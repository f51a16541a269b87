//! [`Broker`]: where events are ordered and how they reach every node holding the room.
//!
//! Two brokers sit behind this one type, and connections and the API only ever call it: the
//! [`EmbeddedBroker`] serves one node from memory, the [`RedisBroker`] shares rooms between
//! nodes through one Redis or a Redis Cluster. Both hand what reaches this node to
//! [`Fanout`], their one way into the room registry.
//!
//! # Layout
//! - `mod.rs`: the operations, their inputs and outcomes.
//! - `error.rs`: [`BrokerError`] and its kinds.
//! - `embedded.rs`, `history.rs`: the single-node broker and its per-room memory.
//! - `redis.rs`: the Redis broker; `subscriber/`: its room subscriptions; `repair.rs`: gap repair;
//!   `startup.rs`: which setting a failed connection at start-up names.

mod embedded;
mod error;
mod history;
mod redis;
mod repair;
mod startup;
mod subscriber;

use std::sync::Arc;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use serde_json::value::RawValue;

pub use embedded::EmbeddedBroker;
pub use error::{BrokerError, Cause, causes};
pub use history::RoomHistory;
pub use redis::RedisBroker;

use crate::config::{BrokerConfig, Config, ConfigError};
use crate::event::RoomEvent;
use crate::fanout::Fanout;
use crate::rooms::{ConnId, JoinPosition, Member};

/// Where a published event landed: the same answer whichever broker (or the crate) published.
pub use roomcast_publisher::Published;

/// Where a subscribing member's position comes from.
#[derive(Debug, Clone, Copy)]
pub enum Since<'a> {
    /// A `subscribe` without `since`: the reply names the room's current position.
    Now,
    /// A `subscribe` with `since`: the events after it are recovered when history still has
    /// them all.
    After(&'a Position),
}

/// What a `subscribe` replies, computed under the room's lock before any later event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReply {
    /// The room's position; events after it follow the reply.
    pub position: Position,
    /// With `since`: whether every event after it follows (`false`: the client must reload).
    pub recovered: Option<bool>,
}

/// What a join must check before it adds the connection.
#[derive(Debug, Clone)]
pub enum Access {
    /// Already authorized (own `user:`/`org:` room, or a valid subscription token).
    Granted,
    /// Only if this user is in the room's member set (checked atomically with the position).
    Member(Arc<str>),
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The connection is in the room.
    Joined,
    /// [`Access::Member`] and the user is not in the member set.
    NotMember,
    /// The connection lost the room before the join finished: its user was removed from the
    /// member set after the check (it got `left` `removed`), or the connection is closing.
    Left,
}

/// An event to publish.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    /// Room to publish to.
    pub room: &'a RoomName,
    /// Event name.
    pub event: &'a str,
    /// Event data, valid JSON.
    pub data: &'a RawValue,
    /// Message id; the broker makes one when `None`.
    pub id: Option<&'a str>,
    /// Keep the event from this user's connections.
    pub exclude_user: Option<&'a str>,
}

/// A page of a room's history, as [`Broker::history_page`] read it.
#[derive(Debug)]
pub struct HistoryPage {
    /// The room's position: its last offset and its epoch (empty when it has none yet).
    pub position: Position,
    /// The events, oldest first.
    pub events: Vec<Arc<RoomEvent>>,
}

/// A join between its two steps ([`Broker::start_join`], [`Broker::finish_join`]), for a
/// reply that must be queued in between (`connected`, a Socket.IO CONNECT): the room holds its
/// events for the member, which will start at `position`, after `recovered` events.
#[derive(Debug)]
pub struct PendingJoin {
    /// The room being joined.
    pub room: RoomName,
    /// The room's position when it was read; sent to the client in `connected`.
    pub position: Position,
    /// With `since`: whether every event after it follows (`false`: the client must reload).
    pub recovered: Option<bool>,
    events: Vec<Arc<RoomEvent>>,
    conn: ConnId,
    /// Keeps the node subscribed to the room's channel until the join is finished.
    _lease: Option<subscriber::JoinLease>,
}

impl PendingJoin {
    /// Where the client stands before the events this join delivers: its `since` when they
    /// are recovered, else the room's position.
    pub fn start(&self) -> Position {
        match self.recovered {
            Some(true) => Position {
                offset: self.position.offset.saturating_sub(self.events.len() as u64),
                epoch: self.position.epoch.clone(),
            },
            _ => self.position.clone(),
        }
    }
}

/// What starting a join found.
#[derive(Debug)]
pub enum Started {
    /// The join waits for [`Broker::finish_join`].
    Pending(PendingJoin),
    /// [`Access::Member`] and the user is not in the member set: nothing was joined.
    NotMember,
}

/// The node's broker.
#[derive(Debug)]
pub enum Broker {
    /// In-process, single node.
    Embedded(EmbeddedBroker),
    /// Redis or a Redis Cluster, shared by every node.
    Redis(RedisBroker),
}

impl Broker {
    /// The broker `config` selects; a Redis that cannot be reached names its setting.
    pub async fn connect(config: &Config, fanout: Fanout) -> Result<Self, ConfigError> {
        if config.broker == BrokerConfig::Embedded {
            return Ok(Broker::Embedded(EmbeddedBroker::new(fanout, config.retention)));
        }
        RedisBroker::connect(config, fanout).await.map(Broker::Redis).map_err(|e| startup::refusal(config, &e))
    }

    /// The shared Redis, in Redis mode.
    pub fn publisher(&self) -> Option<&roomcast_publisher::Publisher> {
        match self {
            Broker::Embedded(_) => None,
            Broker::Redis(b) => Some(b.publisher()),
        }
    }

    /// `embedded`, `redis` or `redis-cluster`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "embedded",
            Broker::Redis(b) if b.is_cluster() => "redis-cluster",
            Broker::Redis(_) => "redis",
        }
    }

    /// Publishes an event to every member of its room, on every node.
    pub async fn publish(&self, p: Publish<'_>) -> Result<Published, BrokerError> {
        match self {
            Broker::Embedded(b) => Ok(b.publish(p)),
            Broker::Redis(b) => b.publish(p).await,
        }
    }

    /// Publishes one event into each of `rooms` (each once), with one message id (`template`'s,
    /// or one made here), each room giving it its own offset; `template`'s room is not used.
    /// The rooms are not one atomic step: after a failure midway, retry with the returned
    /// error's advice and the same id, and rooms that have the event deliver nothing again.
    pub async fn broadcast(&self, rooms: &[RoomName], template: Publish<'_>) -> Result<Vec<Published>, BrokerError> {
        match self {
            Broker::Embedded(b) => {
                let made;
                let id = match template.id {
                    Some(id) => id,
                    None => {
                        made = roomcast_publisher::new_message_id();
                        &made
                    }
                };
                Ok(rooms.iter().map(|room| b.publish(Publish { room, id: Some(id), ..template })).collect())
            }
            Broker::Redis(b) => b.broadcast(rooms, template).await,
        }
    }

    /// The room's position and up to `limit` kept events, oldest first: the latest without
    /// `since`, the first ones after it with it (none when `since` is in another epoch).
    /// Nothing is written.
    pub async fn history_page(
        &self,
        room: &RoomName,
        since: Option<&Position>,
        limit: usize,
    ) -> Result<HistoryPage, BrokerError> {
        match self {
            Broker::Embedded(b) => Ok(b.history_page(room, since, limit)),
            Broker::Redis(b) => b.history_page(room, since, limit).await,
        }
    }

    /// Adds `member` to `room` if `access` allows (a `subscribe`). `on_joined` gets the reply
    /// under the room's lock, and the recovered events, then live ones, are queued after
    /// whatever it queues.
    pub async fn join(
        &self,
        room: &RoomName,
        member: &Arc<Member>,
        access: Access,
        since: Since<'_>,
        on_joined: impl FnOnce(&JoinReply),
    ) -> Result<JoinOutcome, BrokerError> {
        match self {
            Broker::Embedded(b) => Ok(b.join(room, member, access, since, on_joined)),
            Broker::Redis(b) => b.join(room, member, access, since, on_joined).await,
        }
    }

    /// First step of a join whose reply goes out between its steps (the automatic joins at
    /// connect, a Socket.IO session's recovery): from now on the room's events are held for
    /// `member`, and the returned join names where it will start (with `since`: the events it
    /// missed, when history still has them). Sent between the two steps, the reply precedes
    /// every event of the room and misses none published after it.
    pub async fn start_join(
        &self,
        room: &RoomName,
        member: &Arc<Member>,
        access: Access,
        since: Option<&Position>,
    ) -> Result<Started, BrokerError> {
        match self {
            Broker::Embedded(b) => b.start_join(room, member, access, since),
            Broker::Redis(b) => b.start_join(room, member, access, since).await,
        }
    }

    /// Second step: the member gets the recovered events, then the held ones after them.
    pub fn finish_join(&self, join: PendingJoin) {
        let fanout = match self {
            Broker::Embedded(b) => b.fanout(),
            Broker::Redis(b) => b.fanout(),
        };
        let at = JoinPosition { offset: join.position.offset, epoch: &join.position.epoch, recovered: &join.events };
        fanout.finish_join(&join.room, join.conn, at, || ());
    }

    /// Gives up a join started with [`Self::start_join`]: a new member leaves the room, one that
    /// was in it goes on from its own position.
    pub fn abort_join(&self, join: PendingJoin) {
        let fanout = match self {
            Broker::Embedded(b) => b.fanout(),
            Broker::Redis(b) => b.fanout(),
        };
        fanout.abort_join(&join.room, join.conn);
    }

    /// Relays an ephemeral event from `from_user` to the room's other members.
    pub async fn emit(
        &self,
        room: &RoomName,
        event: &str,
        data: &RawValue,
        from_user: &str,
    ) -> Result<(), BrokerError> {
        match self {
            Broker::Embedded(b) => {
                b.emit(room, event, data, from_user);
                Ok(())
            }
            Broker::Redis(b) => b.emit(room, event, data, from_user).await,
        }
    }

    /// Changes a room's member set; removed members' subscriptions end with `left`.
    /// Returns how many were really added and removed.
    pub async fn update_members(
        &self,
        room: &RoomName,
        add: &[String],
        remove: &[String],
    ) -> Result<(u64, u64), BrokerError> {
        match self {
            Broker::Embedded(b) => Ok(b.update_members(room, add, remove)),
            Broker::Redis(b) => b.update_members(room, add, remove).await,
        }
    }

    /// Closes every connection of `user` with `code`; returns how many this node closed.
    pub async fn disconnect_user(&self, user: &str, code: u16) -> Result<u64, BrokerError> {
        match self {
            Broker::Embedded(b) => Ok(b.disconnect_user(user, code)),
            Broker::Redis(b) => b.disconnect_user(user, code).await,
        }
    }

    /// Whether the broker can take publishes and deliver events now.
    pub fn is_ready(&self) -> bool {
        match self {
            Broker::Embedded(_) => true,
            Broker::Redis(b) => b.is_ready(),
        }
    }
}
