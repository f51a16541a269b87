//! [`Broker`]: where events are ordered and how they reach every node holding the room.
//!
//! The embedded broker serves one node from memory. Every operation a connection or the API
//! needs goes through this one type, so the Redis broker of a multi-node deployment slots in
//! beside it without touching callers.

mod embedded;
mod members;
mod redis;
mod subscriber;

use std::sync::Arc;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use serde_json::value::RawValue;

pub use embedded::EmbeddedBroker;
pub use members::{MEMBER_CACHE_TTL, MemberCache};
pub use redis::RedisBroker;
pub use subscriber::{PROBE_INTERVAL, Subscriber};

use crate::config::{BrokerConfig, Config, ConfigError};
use crate::connection::handle::ConnectionHandle;
use crate::fanout::Fanout;

/// Why a broker operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached; the operation may be retried.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Where a published event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's offset in the room.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: String,
    /// The message id (given or made).
    pub id: String,
}

/// What a join must check before it adds the connection.
#[derive(Debug, Clone)]
pub enum Access {
    /// Already authorized (own `user:`/`org:` room, or a valid subscription token).
    Granted,
    /// Only if this user is in the room's member set.
    Member(Arc<str>),
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The connection is in the room (its membership is recorded on its handle).
    Joined,
    /// [`Access::Member`] and the user is not in the member set.
    NotMember,
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

/// The node's broker.
#[derive(Debug)]
pub enum Broker {
    /// In-process, single node.
    Embedded(EmbeddedBroker),
    /// Redis or a Redis Cluster, shared by every node.
    Redis(RedisBroker),
}

impl Broker {
    /// The embedded broker delivering through `fanout`.
    pub fn embedded(fanout: Fanout) -> Self {
        Broker::Embedded(EmbeddedBroker::new(fanout))
    }

    /// The broker `config` selects; a Redis that cannot be reached names its setting.
    pub async fn connect(config: &Config, fanout: Fanout) -> Result<Self, ConfigError> {
        let setting = match &config.broker {
            BrokerConfig::Embedded => return Ok(Self::embedded(fanout)),
            BrokerConfig::Redis(_) => "ROOMCAST_REDIS_URL",
            BrokerConfig::Cluster(_) => "ROOMCAST_REDIS_CLUSTER",
        };
        RedisBroker::connect(config, fanout)
            .await
            .map(Broker::Redis)
            .map_err(|e| ConfigError { setting: setting.to_owned(), message: format!("cannot connect: {e}") })
    }

    /// `embedded`, `redis` or `redis-cluster`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "embedded",
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

    /// Adds `conn` to `room` if `access` allows, running `on_joined` with the room's position
    /// before any later event of the room reaches the connection.
    pub async fn join(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        access: Access,
        on_joined: impl FnOnce(&Position),
    ) -> Result<JoinOutcome, BrokerError> {
        match self {
            Broker::Embedded(b) => Ok(b.join(room, conn, access, on_joined)),
            Broker::Redis(b) => b.join(room, conn, access, on_joined).await,
        }
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

/// A message id for a publish that came without one: 128 random bits, hex.
pub fn new_message_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
