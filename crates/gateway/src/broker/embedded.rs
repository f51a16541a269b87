//! [`EmbeddedBroker`]: the in-process broker of a single node.
//!
//! Each room's offset, history and member set live in one shard, and a publish assigns the
//! offset, records the event and fans it out while holding that shard's lock. A join reads the
//! position (and recovers history) and adds the connection under the same lock, so a
//! subscriber's `ok` names exactly the last offset it will not receive live, and a removed
//! member can never be joined after its removal was applied.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use roomcast_publisher::{Retention, new_epoch, new_message_id};
use serde_json::value::RawValue;

use super::history::RoomHistory;
use super::{
    Access, BrokerError, HistoryPage, JoinOutcome, JoinReply, PendingJoin, Publish, Published, Since, Started,
};
use crate::event::{PublishedEvent, RoomEvent};
use crate::fanout::Fanout;
use crate::rooms::{JoinPosition, Member};

const SHARDS: usize = 64;

#[derive(Debug, Default)]
struct RoomState {
    offset: u64,
    members: HashSet<Arc<str>>,
    history: RoomHistory,
}

/// The single-node broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    fanout: Fanout,
    /// Random per process: offsets restart at 0 with every start, and the new epoch tells
    /// clients that positions from before the restart mean nothing.
    epoch: String,
    retention: Retention,
    // std mutexes: held for map updates and non-blocking fan-out only, never across `.await`.
    shards: Box<[Mutex<HashMap<RoomName, RoomState>>]>,
    hasher: RandomState,
}

impl EmbeddedBroker {
    /// A broker delivering through `fanout`, keeping what `retention` says, with a fresh epoch.
    pub fn new(fanout: Fanout, retention: Retention) -> Self {
        Self {
            fanout,
            epoch: new_epoch(),
            retention,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Where this broker delivers.
    pub(super) fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    fn shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, RoomState>> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Assigns the next offset, records the event and delivers it to the local members; an id
    /// seen within the dedup window returns its first offset and delivers nothing.
    pub(super) fn publish(&self, p: Publish<'_>) -> Published {
        let received = Instant::now();
        let id = p.id.map_or_else(new_message_id, str::to_owned);
        let mut shard = self.shard(p.room);
        let state = shard.entry(p.room.clone()).or_default();
        if let Some(id) = p.id
            && let Some(offset) = state.history.published(id, &self.retention, received)
        {
            return Published { offset, epoch: self.epoch.clone(), id: id.to_owned(), duplicate: true };
        }
        state.offset += 1;
        let offset = state.offset;
        let published = PublishedEvent {
            event: p.event,
            data: p.data,
            id: &id,
            offset,
            epoch: &self.epoch,
            exclude_user: p.exclude_user,
        };
        let event = RoomEvent::new(p.room, &published, received);
        state.history.record(Arc::clone(&event), p.id, &self.retention, received);
        // Delivery under the lock keeps fan-out order equal to offset order.
        let delivered = self.fanout.deliver(p.room, &event);
        drop(shard);
        self.fanout.finish_delivery(p.room, delivered);
        Published { offset, epoch: self.epoch.clone(), id, duplicate: false }
    }

    pub(super) fn join(
        &self,
        room: &RoomName,
        member: &Arc<Member>,
        access: Access,
        since: Since<'_>,
        on_joined: impl FnOnce(&JoinReply),
    ) -> JoinOutcome {
        let now = Instant::now();
        let mut shard = self.shard(room);
        if let Access::Member(user) = &access
            && !shard.get(room).is_some_and(|s| s.members.contains(user))
        {
            return JoinOutcome::NotMember;
        }
        let offset = shard.get(room).map_or(0, |s| s.offset);
        let from = match since {
            Since::After(position) => Some(position),
            Since::Now => None,
        };
        let (recovered, events) = self.recover(&mut shard, room, offset, from, now);
        let reply = JoinReply { position: Position { offset, epoch: self.epoch.clone() }, recovered };
        // Both steps under the broker's lock: no publish can come between the position read and
        // the member's start, and a member removal applied after this finds the member.
        if self.fanout.start_join(room, member).is_err() {
            return JoinOutcome::Left;
        }
        let at = JoinPosition { offset, epoch: &self.epoch, recovered: &events };
        let joined = self.fanout.finish_join(room, member.id, at, || on_joined(&reply));
        drop(shard);
        if joined.is_some() { JoinOutcome::Joined } else { JoinOutcome::Left }
    }

    /// Starts a join whose reply goes out before it finishes: the room's position (and the
    /// history after `since`) read, and events held for the member from the same moment, under
    /// the room's lock so that the two agree.
    pub(super) fn start_join(
        &self,
        room: &RoomName,
        member: &Arc<Member>,
        access: Access,
        since: Option<&Position>,
    ) -> Result<Started, BrokerError> {
        let now = Instant::now();
        let mut shard = self.shard(room);
        if let Access::Member(user) = &access
            && !shard.get(room).is_some_and(|s| s.members.contains(user))
        {
            return Ok(Started::NotMember);
        }
        let offset = shard.get(room).map_or(0, |s| s.offset);
        let (recovered, events) = self.recover(&mut shard, room, offset, since, now);
        self.fanout.start_join(room, member).map_err(BrokerError::unavailable)?;
        drop(shard);
        let position = Position { offset, epoch: self.epoch.clone() };
        Ok(Started::Pending(PendingJoin {
            room: room.clone(),
            position,
            recovered,
            events,
            conn: member.id,
            _lease: None,
        }))
    }

    /// Whether the history after `since` is all kept, and those events (with `since` only).
    fn recover(
        &self,
        shard: &mut HashMap<RoomName, RoomState>,
        room: &RoomName,
        offset: u64,
        since: Option<&Position>,
        now: Instant,
    ) -> (Option<bool>, Vec<Arc<RoomEvent>>) {
        match since {
            Some(since) if since.epoch == self.epoch => {
                let kept = if since.offset == offset {
                    Some(Vec::new())
                } else {
                    shard.get_mut(room).and_then(|s| s.history.after(since.offset, offset, &self.retention, now))
                };
                (Some(kept.is_some()), kept.unwrap_or_default())
            }
            Some(_) => (Some(false), Vec::new()),
            None => (None, Vec::new()),
        }
    }

    pub(super) fn history_page(&self, room: &RoomName, since: Option<&Position>, limit: usize) -> HistoryPage {
        let now = Instant::now();
        let mut shard = self.shard(room);
        // A room that never had an event has no epoch yet, as in Redis (where a read writes none).
        let position = match shard.get(room) {
            Some(state) if state.offset > 0 => Position { offset: state.offset, epoch: self.epoch.clone() },
            _ => Position { offset: 0, epoch: String::new() },
        };
        let events = match (shard.get_mut(room), since) {
            (None, _) => Vec::new(),
            (Some(_), Some(since)) if since.epoch != self.epoch => Vec::new(),
            (Some(state), since) => state.history.page(since.map(|s| s.offset), limit, &self.retention, now),
        };
        HistoryPage { position, events }
    }

    pub(super) fn emit(&self, room: &RoomName, event: &str, data: &RawValue, from_user: &str) {
        self.fanout.emit(room, event, data, from_user, Instant::now());
    }

    pub(super) fn update_members(&self, room: &RoomName, add: &[String], remove: &[String]) -> (u64, u64) {
        let mut shard = self.shard(room);
        let state = shard.entry(room.clone()).or_default();
        let added = add.iter().filter(|u| state.members.insert(Arc::from(u.as_str()))).count();
        let removed = remove.iter().filter(|u| state.members.remove(u.as_str())).count();
        if state.offset == 0 && state.members.is_empty() && state.history.is_empty() {
            shard.remove(room);
        }
        // Every listed user's subscriptions end, also one joined by subscription token: removal
        // says the user is out of the dialog. Under the lock, so no event published after the
        // removal reaches them.
        self.fanout.remove_members(room, remove);
        drop(shard);
        (added as u64, removed as u64)
    }

    pub(super) fn disconnect_user(&self, user: &str, code: u16) -> u64 {
        self.fanout.disconnect_user(user, code) as u64
    }
}
