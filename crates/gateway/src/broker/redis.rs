//! [`RedisBroker`]: events travel through Redis, so any number of nodes act as one gateway.
//!
//! Publishing, the member registry and controls go through the publisher crate (one code path
//! for backends and nodes); delivery comes back through the node's [`Subscriber`]. A join
//! subscribes first, then reads the room's position, then adds the member under the room's
//! registry lock with that position as its floor: every event after the `ok` arrives through
//! the subscription, and copies of earlier ones still in flight are not delivered to it.

use std::sync::Arc;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use roomcast_publisher::{Event, Publisher, Target};
use serde_json::value::RawValue;

use super::members::MemberCache;
use super::subscriber::Subscriber;
use super::{Access, BrokerError, JoinOutcome, Publish, Published};
use crate::config::{BrokerConfig, Config};
use crate::connection::handle::ConnectionHandle;
use crate::fanout::Fanout;

/// The Redis (or Redis Cluster) broker.
#[derive(Debug)]
pub struct RedisBroker {
    publisher: Publisher,
    subscriber: Arc<Subscriber>,
    members: Arc<MemberCache>,
    fanout: Fanout,
}

impl RedisBroker {
    /// Connects the publisher and the subscriber.
    pub async fn connect(config: &Config, fanout: Fanout) -> Result<Self, BrokerError> {
        let target = match &config.broker {
            BrokerConfig::Redis(url) => Target::Redis(url.clone()),
            BrokerConfig::Cluster(seeds) => Target::Cluster(seeds.clone()),
            BrokerConfig::Embedded => return Err(BrokerError::Unavailable("no Redis configured".into())),
        };
        let publisher =
            Publisher::connect_with(target, &config.redis_prefix, &config.node_id).await.map_err(from_publisher)?;
        let members = Arc::new(MemberCache::default());
        let subscriber = Subscriber::connect(
            config.broker.clone(),
            config.redis_prefix.clone(),
            fanout.clone(),
            Arc::clone(&members),
            config.unsubscribe_delay,
        )
        .await?;
        Ok(Self { publisher, subscriber, members, fanout })
    }

    pub(super) async fn publish(&self, p: Publish<'_>) -> Result<Published, BrokerError> {
        let mut event = Event::from_raw(p.room.as_str(), p.event, p.data);
        if let Some(id) = p.id {
            event = event.id(id);
        }
        if let Some(user) = p.exclude_user {
            event = event.exclude_user(user);
        }
        let published = self.publisher.publish(event).await.map_err(from_publisher)?;
        Ok(Published { offset: published.offset, epoch: published.epoch, id: published.id })
    }

    pub(super) async fn join(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        access: Access,
        on_joined: impl FnOnce(&Position),
    ) -> Result<JoinOutcome, BrokerError> {
        if let Access::Member(user) = &access
            && !self.is_member(room, user).await?
        {
            return Ok(JoinOutcome::NotMember);
        }
        self.subscriber.acquire(room).await?;
        let joined = async {
            let (offset, epoch) = self.publisher.position(room).await.map_err(from_publisher)?;
            let (membership, ()) = self.fanout.registry().join(room, conn, |cursor| {
                // Events up to the node's cursor were delivered before this join, and events up
                // to Redis's offset were published before it: the member is past both.
                let offset = match cursor.epoch.as_deref() {
                    Some(seen) if seen == epoch => offset.max(cursor.offset),
                    _ => offset,
                };
                on_joined(&Position { offset, epoch: epoch.clone() });
                (offset, ())
            });
            if let Some(membership) = membership {
                conn.add_membership(membership);
            }
            Ok(JoinOutcome::Joined)
        }
        .await;
        self.subscriber.settle(room).await;
        joined
    }

    async fn is_member(&self, room: &RoomName, user: &str) -> Result<bool, BrokerError> {
        if self.members.is_member(room.as_str(), user) {
            return Ok(true);
        }
        let member = self.publisher.is_member(room, user).await.map_err(from_publisher)?;
        if member {
            self.members.confirm(room.as_str(), user);
        }
        Ok(member)
    }

    pub(super) async fn emit(
        &self,
        room: &RoomName,
        event: &str,
        data: &RawValue,
        from: &str,
    ) -> Result<(), BrokerError> {
        self.publisher.emit(room, event, data.get().as_bytes(), from).await.map_err(from_publisher)
    }

    pub(super) async fn update_members(
        &self,
        room: &RoomName,
        add: &[String],
        remove: &[String],
    ) -> Result<(u64, u64), BrokerError> {
        self.publisher.update_members(room.as_str(), add, remove).await.map_err(from_publisher)
    }

    pub(super) async fn disconnect_user(&self, user: &str, code: u16) -> Result<u64, BrokerError> {
        let local = RoomName::user(user).map_or(0, |room| self.fanout.registry().member_count(&room));
        self.publisher.disconnect_user(user, code).await.map_err(from_publisher)?;
        Ok(local as u64)
    }

    pub(super) fn is_ready(&self) -> bool {
        self.subscriber.is_ready()
    }

    /// The node's subscriber (for gap repair and tests).
    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.subscriber
    }
}

fn from_publisher(e: roomcast_publisher::Error) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}
