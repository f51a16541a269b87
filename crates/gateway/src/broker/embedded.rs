//! [`EmbeddedBroker`]: the in-process broker of a single node.
//!
//! Each room's offset and member set live in one shard, and a publish assigns the offset and
//! fans the event out while holding that shard's lock. A join reads the position and adds the
//! connection under the same lock, so a subscriber's `ok` names exactly the last offset it will
//! not receive, and a removed member can never be joined after its removal was applied.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use serde_json::value::RawValue;

use super::{Access, JoinOutcome, Publish, Published, new_message_id};
use crate::connection::handle::ConnectionHandle;
use crate::fanout::{EventDelivery, Fanout};

const SHARDS: usize = 64;

#[derive(Debug, Default)]
struct RoomState {
    offset: u64,
    members: HashSet<Arc<str>>,
}

/// The single-node broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    fanout: Fanout,
    /// Random per process: offsets restart at 0 with every start, and the new epoch tells
    /// clients that positions from before the restart mean nothing.
    epoch: String,
    // std mutexes: held for map updates and non-blocking fan-out only, never across `.await`.
    shards: Box<[Mutex<HashMap<RoomName, RoomState>>]>,
    hasher: RandomState,
}

impl EmbeddedBroker {
    /// A broker delivering through `fanout`, with a fresh epoch.
    pub fn new(fanout: Fanout) -> Self {
        Self {
            fanout,
            epoch: format!("{:016x}", rand::random::<u64>()),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, RoomState>> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Assigns the next offset and delivers to the local members.
    pub(super) fn publish(&self, p: Publish<'_>) -> Published {
        let received = Instant::now();
        let id = p.id.map_or_else(new_message_id, str::to_owned);
        let mut shard = self.shard(p.room);
        let state = shard.entry(p.room.clone()).or_default();
        state.offset += 1;
        let offset = state.offset;
        // Delivery under the lock keeps fan-out order equal to offset order.
        self.fanout.event(
            p.room,
            EventDelivery {
                event: p.event,
                data: p.data,
                id: &id,
                offset,
                epoch: &self.epoch,
                exclude_user: p.exclude_user,
            },
            received,
        );
        drop(shard);
        Published { offset, epoch: self.epoch.clone(), id }
    }

    pub(super) fn join(
        &self,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        access: Access,
        on_joined: impl FnOnce(&Position),
    ) -> JoinOutcome {
        let shard = self.shard(room);
        let state = shard.get(room);
        if let Access::Member(user) = &access
            && !state.is_some_and(|s| s.members.contains(user))
        {
            return JoinOutcome::NotMember;
        }
        let position = Position { offset: state.map_or(0, |s| s.offset), epoch: self.epoch.clone() };
        let (membership, ()) = self.fanout.registry().join(room, conn, |_| (position.offset, on_joined(&position)));
        if let Some(membership) = membership {
            // Recorded before the room's lock is released, so a member removal applied right
            // after this join finds the membership to end.
            conn.add_membership(membership);
        }
        drop(shard);
        JoinOutcome::Joined
    }

    pub(super) fn emit(&self, room: &RoomName, event: &str, data: &RawValue, from_user: &str) {
        self.fanout.emit(room, event, data, from_user, Instant::now());
    }

    pub(super) fn update_members(&self, room: &RoomName, add: &[String], remove: &[String]) -> (u64, u64) {
        let mut shard = self.shard(room);
        let state = shard.entry(room.clone()).or_default();
        let added = add.iter().filter(|u| state.members.insert(Arc::from(u.as_str()))).count();
        let removed = remove.iter().filter(|u| state.members.remove(u.as_str())).count();
        if state.offset == 0 && state.members.is_empty() {
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
