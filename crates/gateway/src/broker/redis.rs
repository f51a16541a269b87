//! [`RedisBroker`]: events travel through Redis, so any number of nodes act as one gateway.
//!
//! Publishing, the member registry, history and controls go through the publisher crate (one
//! code path for backends and nodes); delivery comes back through the node's [`Subscriber`].
//! A join subscribes first, then starts the member's join (events are held for it from then
//! on), then reads the room's position, the history after `since` and the membership in one
//! atomic script, and finally queues the `ok`, the recovered events and the held ones past
//! them, under the room's lock: no gap, no duplicate, in offset order.

use std::sync::Arc;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use roomcast_publisher::{Event, Publisher, Target};
use serde_json::value::RawValue;

use super::repair::GapRepair;
use super::subscriber::Subscriber;
use super::{
    Access, BrokerError, HistoryPage, JoinOutcome, JoinReply, PendingJoin, Publish, Published, Since, Started,
};
use crate::config::{BrokerConfig, Config};
use crate::fanout::Fanout;
use crate::rooms::{JoinPosition, Member};

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
            BrokerConfig::Sentinel { sentinels, master } => {
                Target::Sentinel { sentinels: sentinels.clone(), master: master.clone() }
            }
            BrokerConfig::Embedded => return Err(BrokerError::unavailable("no Redis configured")),
        };
        let publisher = Publisher::connect_with_options(target, &config.redis, &config.redis_prefix, &config.node_id)
            .await?
            .with_retention(config.retention);
        let repair = GapRepair::start(publisher.clone(), fanout.clone());
        let subscriber = Subscriber::connect(config, fanout.clone(), repair, publisher.master_switches()).await?;
        Ok(Self { publisher, subscriber, fanout })
    }

    /// The publisher nodes share with backends.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Whether this is a Redis Cluster (sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        self.publisher.publish_command() == "SPUBLISH"
    }

    /// Where this broker delivers.
    pub(super) fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    pub(super) async fn publish(&self, p: Publish<'_>) -> Result<Published, BrokerError> {
        let mut event = Event::from_raw(p.room.as_str(), p.event, p.data);
        if let Some(id) = p.id {
            event = event.id(id);
        }
        if let Some(user) = p.exclude_user {
            event = event.exclude_user(user);
        }
        Ok(self.publisher.publish(event).await?)
    }

    pub(super) async fn broadcast(&self, rooms: &[RoomName], p: Publish<'_>) -> Result<Vec<Published>, BrokerError> {
        // The publisher parses the rooms again (they arrive as strings): cheap beside the Redis calls.
        let names: Vec<&str> = rooms.iter().map(RoomName::as_str).collect();
        let mut event = Event::from_raw(p.room.as_str(), p.event, p.data);
        if let Some(id) = p.id {
            event = event.id(id);
        }
        if let Some(user) = p.exclude_user {
            event = event.exclude_user(user);
        }
        Ok(self.publisher.broadcast(&names, event).await?)
    }

    pub(super) async fn history_page(
        &self,
        room: &RoomName,
        since: Option<&Position>,
        limit: usize,
    ) -> Result<HistoryPage, BrokerError> {
        let since = since.map(|p| (p.offset, p.epoch.as_str()));
        let history = self.publisher.history_page(room, since, limit).await?;
        let events = self.fanout.room_events(room, &history.events);
        Ok(HistoryPage { position: Position { offset: history.offset, epoch: history.epoch }, events })
    }

    pub(super) async fn join(
        &self,
        room: &RoomName,
        member: &Arc<Member>,
        access: Access,
        since: Since<'_>,
        on_joined: impl FnOnce(&JoinReply),
    ) -> Result<JoinOutcome, BrokerError> {
        let _lease = self.subscriber.begin_join(room).await?;
        // From here on the room's events are held for the member, so whatever the read below
        // does not return reaches it afterwards.
        if self.fanout.start_join(room, member).is_err() {
            return Ok(JoinOutcome::Left);
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
                // Only a new member is checked against the member set.
                self.fanout.leave(room, member.id);
                return Ok(JoinOutcome::NotMember);
            }
            Err(e) => {
                // A join that cannot learn its position does not stay half done: a new member
                // leaves, one already in the room keeps its own position.
                self.fanout.abort_join(room, member.id);
                return Err(e.into());
            }
        };
        let recovered = match since {
            Since::After(p) => Some(history.continues_from(p.offset, &p.epoch)),
            Since::Now => None,
        };
        let events = if recovered == Some(true) { self.fanout.room_events(room, &history.events) } else { Vec::new() };
        let reply =
            JoinReply { position: Position { offset: history.offset, epoch: history.epoch.clone() }, recovered };
        let at = JoinPosition { offset: history.offset, epoch: &history.epoch, recovered: &events };
        match self.fanout.finish_join(room, member.id, at, || on_joined(&reply)) {
            Some(()) => Ok(JoinOutcome::Joined),
            // Removed while the read was in flight: the subscribe still gets its one reply.
            None => Ok(JoinOutcome::Left),
        }
    }

    pub(super) async fn start_join(
        &self,
        room: &RoomName,
        member: &Arc<Member>,
        access: Access,
        since: Option<&Position>,
    ) -> Result<Started, BrokerError> {
        let lease = self.subscriber.begin_join(room).await?;
        let start = self.fanout.start_join(room, member).map_err(BrokerError::unavailable)?;
        let pending = |position, recovered, events| {
            Started::Pending(PendingJoin {
                room: room.clone(),
                position,
                recovered,
                events,
                conn: member.id,
                _lease: Some(lease),
            })
        };
        // Where this node's delivery stands, or else the room's position read now: either way
        // every event after it is held from here on. Read after the start and before the reply,
        // so nothing published once the client has the reply is behind it.
        if let (Access::Granted, None, Some(c)) = (&access, since, &start.cursor) {
            return Ok(pending(Position { offset: c.offset, epoch: c.epoch.to_string() }, None, Vec::new()));
        }
        let from = since.map(|p| (p.offset, p.epoch.as_str()));
        let read = match &access {
            Access::Granted => self.publisher.history(room, from).await.map(Some),
            Access::Member(user) => self.publisher.history_if_member(room, from, user).await,
        };
        let history = match read {
            Ok(Some(history)) => history,
            Ok(None) => {
                self.fanout.leave(room, member.id);
                return Ok(Started::NotMember);
            }
            Err(e) => {
                self.fanout.abort_join(room, member.id);
                return Err(e.into());
            }
        };
        let recovered = since.map(|p| history.continues_from(p.offset, &p.epoch));
        let events = if recovered == Some(true) { self.fanout.room_events(room, &history.events) } else { Vec::new() };
        Ok(pending(Position { offset: history.offset, epoch: history.epoch }, recovered, events))
    }

    pub(super) async fn emit(
        &self,
        room: &RoomName,
        event: &str,
        data: &RawValue,
        from: &str,
    ) -> Result<(), BrokerError> {
        Ok(self.publisher.emit(room, event, data.get().as_bytes(), from).await?)
    }

    pub(super) async fn update_members(
        &self,
        room: &RoomName,
        add: &[String],
        remove: &[String],
    ) -> Result<(u64, u64), BrokerError> {
        Ok(self.publisher.update_members(room.as_str(), add, remove).await?)
    }

    pub(super) async fn disconnect_user(&self, user: &str, code: u16) -> Result<u64, BrokerError> {
        let local = RoomName::user(user).map_or(0, |room| self.fanout.member_count(&room));
        self.publisher.disconnect_user(user, code).await?;
        Ok(local as u64)
    }

    pub(super) fn is_ready(&self) -> bool {
        self.subscriber.is_ready()
    }
}
