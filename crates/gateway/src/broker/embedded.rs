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
use roomcast_publisher::Retention;
use serde_json::value::RawValue;

use super::history::RoomHistory;
use super::{Access, JoinOutcome, JoinReply, Publish, Published, Since, new_message_id};
use crate::connection::handle::ConnectionHandle;
use crate::fanout::{EventDelivery, Fanout};
use crate::rooms::{CatchUp, EventRef, HeldEvent};

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
            epoch: format!("{:016x}", rand::random::<u64>()),
            retention,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
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
        let delivery = EventDelivery {
            event: p.event,
            data: p.data,
            id: &id,
            offset,
            epoch: &self.epoch,
            exclude_user: p.exclude_user,
        };
        let event = Arc::new(HeldEvent {
            offset,
            epoch: Arc::from(self.epoch.as_str()),
            frame: self.fanout.frame(p.room, &delivery),
            exclude_user: p.exclude_user.map(Arc::from),
            received,
        });
        state.history.record(Arc::clone(&event), p.id, &self.retention, received);
        // Delivery under the lock keeps fan-out order equal to offset order.
        let e = EventRef { offset, epoch: &self.epoch, frame: &event.frame, exclude_user: p.exclude_user, received };
        let delivered = self.fanout.registry().broadcast_event(p.room, e);
        drop(shard);
        self.fanout.settle(p.room, delivered);
        Published { offset, epoch: self.epoch.clone(), id, duplicate: false }
    }

    pub(super) fn join(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
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
        let position = Position { offset, epoch: self.epoch.clone() };
        let (recovered, events) = match since {
            Since::After(since) if since.epoch == self.epoch => {
                let kept = if since.offset == offset {
                    Some(Vec::new())
                } else {
                    shard.get_mut(room).and_then(|s| s.history.after(since.offset, offset, &self.retention, now))
                };
                (Some(kept.is_some()), kept.unwrap_or_default())
            }
            Since::After(_) => (Some(false), Vec::new()),
            Since::Now => (None, Vec::new()),
        };
        let reply = JoinReply { position, recovered };
        let user = Arc::clone(&conn.user);
        let (membership, ()) = self.fanout.registry().join_at(room, conn, offset, &self.epoch, || {
            on_joined(&reply);
            for e in events.iter().filter(|e| e.exclude_user.as_deref() != Some(&*user)) {
                conn.send(e.frame.clone(), now);
            }
            crate::metrics::events_recovered("since", events.len());
        });
        if let Some(membership) = membership {
            // Recorded before the room's lock is released, so a member removal applied right
            // after this join finds the membership to end.
            conn.add_membership(membership);
        }
        drop(shard);
        JoinOutcome::Joined
    }

    /// Holds `room`'s events for `conn` from the current offset on (under the room's lock, so
    /// the offset and the hold agree).
    pub(super) fn hold(&self, room: &RoomName, conn: &Arc<ConnectionHandle>) -> Position {
        let shard = self.shard(room);
        let offset = shard.get(room).map_or(0, |s| s.offset);
        if let Some(membership) = self.fanout.registry().begin_catch_up(room, conn) {
            conn.add_membership(membership);
        }
        drop(shard);
        Position { offset, epoch: self.epoch.clone() }
    }

    /// Makes a held member live from `known`, delivering what was held after it.
    pub(super) fn release_hold(&self, room: &RoomName, conn: &Arc<ConnectionHandle>, known: Option<Position>) {
        let position = known.unwrap_or_else(|| Position { offset: 0, epoch: self.epoch.clone() });
        let catch_up = CatchUp { offset: position.offset, epoch: &position.epoch, recovered: &[] };
        if let Some(((), delivery)) = self.fanout.registry().finish_catch_up(room, conn, catch_up, || ()) {
            self.fanout.settle(room, delivery);
        }
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
