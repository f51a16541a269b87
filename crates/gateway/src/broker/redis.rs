//! [`RedisBroker`]: events travel through Redis, so any number of nodes act as one gateway.
//!
//! Publishing, the member registry, history and controls go through the publisher crate (one
//! code path for backends and nodes); delivery comes back through the node's [`Subscriber`].
//! A join subscribes first, then enters the member in the room as catching up (events are
//! held for it from then on), then reads the room's position, the history after `since` and
//! the membership in one atomic script, and finally queues the `ok`, the recovered events and
//! the held ones past them, under the room's lock: no gap, no duplicate, in offset order.

use std::sync::Arc;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use roomcast_publisher::{Event, Publisher, Target};
use serde_json::value::RawValue;

use super::repair::GapRepair;
use super::subscriber::Subscriber;
use super::{Access, BrokerError, JoinOutcome, JoinReply, Publish, Published, Since};
use crate::config::{BrokerConfig, Config};
use crate::connection::handle::ConnectionHandle;
use crate::fanout::Fanout;
use crate::rooms::CatchUp;

/// The Redis (or Redis Cluster) broker.
#[derive(Debug)]
pub struct RedisBroker {
    publisher: Publisher,
    subscriber: Arc<Subscriber>,
    fanout: Fanout,
}

impl RedisBroker {
    /// Connects the publisher and the subscriber, and starts gap repair.
    pub async fn connect(config: &Config, fanout: Fanout) -> Result<Self, BrokerError> {
        let target = match &config.broker {
            BrokerConfig::Redis(url) => Target::Redis(url.clone()),
            BrokerConfig::Cluster(seeds) => Target::Cluster(seeds.clone()),
            BrokerConfig::Embedded => return Err(BrokerError::Unavailable("no Redis configured".into())),
        };
        let publisher = Publisher::connect_with(target, &config.redis_prefix, &config.node_id)
            .await
            .map_err(from_publisher)?
            .with_retention(super::retention(config));
        let repair = GapRepair::start(publisher.clone(), fanout.clone());
        let subscriber = Subscriber::connect(
            config.broker.clone(),
            config.redis_prefix.clone(),
            fanout.clone(),
            repair,
            config.unsubscribe_delay,
        )
        .await?;
        Ok(Self { publisher, subscriber, fanout })
    }

    /// Whether this is a Redis Cluster (sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        self.publisher.publish_command() == "SPUBLISH"
    }

    pub(super) async fn publish(&self, p: Publish<'_>) -> Result<Published, BrokerError> {
        let mut event = Event::from_raw(p.room.as_str(), p.event, p.data);
        if let Some(id) = p.id {
            event = event.id(id);
        }
        if let Some(user) = p.exclude_user {
            event = event.exclude_user(user);
        }
        self.publisher.publish(event).await.map_err(from_publisher)
    }

    pub(super) async fn join(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        access: Access,
        since: Since<'_>,
        on_joined: impl FnOnce(&JoinReply),
    ) -> Result<JoinOutcome, BrokerError> {
        self.subscriber.acquire(room).await?;
        let joined = self.catch_up(room, conn, access, since, on_joined).await;
        self.subscriber.settle(room).await;
        joined
    }

    async fn catch_up(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        access: Access,
        since: Since<'_>,
        on_joined: impl FnOnce(&JoinReply),
    ) -> Result<JoinOutcome, BrokerError> {
        let registry = self.fanout.registry();
        // From here on the room's events are held for the connection, so whatever the read
        // below does not return reaches it afterwards.
        if let Some(membership) = registry.begin_catch_up(room, conn) {
            conn.add_membership(membership);
        }
        let position = match since {
            Since::After(p) => Some((p.offset, p.epoch.as_str())),
            Since::Now => None,
        };
        let read = match &access {
            Access::Granted => self.publisher.history(room, position).await.map(Some),
            Access::Member(user) => self.publisher.history_if_member(room, position, user).await,
        };
        let history = match read {
            Ok(Some(history)) => history,
            Ok(None) => {
                conn.leave(room);
                return Ok(JoinOutcome::NotMember);
            }
            Err(e) => {
                // A join that cannot learn its position does not stay half done: a new member
                // leaves, one already in the room keeps its own position.
                match registry.abort_catch_up(room, conn) {
                    Some(delivery) => {
                        self.fanout.settle(room, delivery);
                    }
                    None => {
                        conn.leave(room);
                    }
                }
                return Err(from_publisher(e));
            }
        };
        let recovered = match since {
            Since::After(p) => Some(history.continues_from(p.offset, &p.epoch)),
            Since::Now => None,
        };
        let events = if recovered == Some(true) { self.fanout.held_events(room, &history.events) } else { Vec::new() };
        let reply =
            JoinReply { position: Position { offset: history.offset, epoch: history.epoch.clone() }, recovered };
        let catch_up = CatchUp { offset: history.offset, epoch: &history.epoch, recovered: &events };
        match registry.finish_catch_up(room, conn, catch_up, || on_joined(&reply)) {
            Some(((), delivery)) => {
                crate::metrics::events_recovered("since", events.len());
                self.fanout.settle(room, delivery);
                Ok(JoinOutcome::Joined)
            }
            // Removed while the read was in flight: the subscribe still gets its one reply.
            None => Ok(JoinOutcome::Left),
        }
    }

    pub(super) async fn hold(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
    ) -> Result<Option<Position>, BrokerError> {
        self.subscriber.acquire(room).await?;
        let (membership, cursor) = self.fanout.registry().hold(room, conn);
        if let Some(membership) = membership {
            conn.add_membership(membership);
        }
        // Where this node's delivery stands, or else the room's position read now: either way
        // every event after it is held from here on. Read after the hold and before
        // `connected`, so nothing published once the client has `connected` is behind it.
        let position = match cursor {
            Some(c) => Ok(Position { offset: c.offset, epoch: c.epoch.to_string() }),
            None => self
                .publisher
                .position(room)
                .await
                .map(|(offset, epoch)| Position { offset, epoch })
                .map_err(from_publisher),
        };
        if position.is_err() {
            conn.leave(room);
            self.subscriber.settle(room).await;
        }
        position.map(Some)
    }

    pub(super) async fn release_hold(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        known: Option<Position>,
    ) -> Result<(), BrokerError> {
        if let Some(position) = known {
            let catch_up = CatchUp { offset: position.offset, epoch: &position.epoch, recovered: &[] };
            if let Some(((), delivery)) = self.fanout.registry().finish_catch_up(room, conn, catch_up, || ()) {
                self.fanout.settle(room, delivery);
            }
        }
        self.subscriber.settle(room).await;
        Ok(())
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

    /// The node's subscriber (for tests).
    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.subscriber
    }
}

fn from_publisher(e: roomcast_publisher::Error) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}
