//! [`ChannelTable`]: which room channels the node must stay subscribed to, and the lock that
//! orders each room's (un)subscribe commands.
//!
//! A room's entry lives while a join is in progress for it (`pins`) or it is subscribed. The
//! table's own locks (std mutexes, sharded by room) are held only to read or change an entry,
//! never across a Redis call; the per-room [`ChannelLock`] is what a Redis round trip holds, so
//! a join waits only on its own room's commands, never on another room's.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use roomcast_proto::RoomName;

const SHARDS: usize = 64;

/// The generation of the subscriber connection a room is subscribed on, if any; the lock is
/// held across that room's subscribe and unsubscribe calls.
pub(super) type ChannelLock = tokio::sync::Mutex<Option<u64>>;

#[derive(Debug, Default)]
struct Entry {
    /// Joins in progress: the channel must stay subscribed until they are in the registry.
    pins: usize,
    lock: Arc<ChannelLock>,
}

/// The node's room channels.
#[derive(Debug)]
pub(super) struct ChannelTable {
    shards: Box<[Mutex<HashMap<RoomName, Entry>>]>,
    hasher: RandomState,
}

impl ChannelTable {
    pub(super) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }

    fn shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, Entry>> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a join in progress for `room` and returns the room's lock.
    pub(super) fn pin(&self, room: &RoomName) -> Arc<ChannelLock> {
        let mut shard = self.shard(room);
        let entry = shard.entry(room.clone()).or_default();
        entry.pins += 1;
        Arc::clone(&entry.lock)
    }

    /// Ends a join recorded with [`Self::pin`].
    pub(super) fn unpin(&self, room: &RoomName) {
        if let Some(entry) = self.shard(room).get_mut(room) {
            entry.pins = entry.pins.saturating_sub(1);
        }
    }

    /// The room's lock, if it has an entry.
    pub(super) fn lock(&self, room: &RoomName) -> Option<Arc<ChannelLock>> {
        self.shard(room).get(room).map(|e| Arc::clone(&e.lock))
    }

    /// Whether a join is in progress for `room`.
    pub(super) fn is_pinned(&self, room: &RoomName) -> bool {
        self.shard(room).get(room).is_some_and(|e| e.pins > 0)
    }

    /// Whether `lock` is still the lock of `room`'s entry (it was not removed meanwhile).
    pub(super) fn holds(&self, room: &RoomName, lock: &Arc<ChannelLock>) -> bool {
        self.shard(room).get(room).is_some_and(|e| Arc::ptr_eq(&e.lock, lock))
    }

    /// Removes `room`'s entry if it is `lock`'s and no join is in progress; the caller holds
    /// `lock` and has just unsubscribed.
    pub(super) fn remove_if_unpinned(&self, room: &RoomName, lock: &Arc<ChannelLock>) {
        let mut shard = self.shard(room);
        if shard.get(room).is_some_and(|e| e.pins == 0 && Arc::ptr_eq(&e.lock, lock)) {
            shard.remove(room);
        }
    }

    /// Every room with an entry: the channels a new subscriber connection must subscribe.
    pub(super) fn rooms(&self) -> Vec<RoomName> {
        let mut rooms = Vec::new();
        for shard in &self.shards {
            rooms.extend(shard.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned());
        }
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(n: usize) -> RoomName {
        RoomName::parse(&format!("dialog:{n}")).unwrap()
    }

    #[test]
    fn a_room_mid_command_holds_up_no_other_room() {
        let table = ChannelTable::new();
        let busy = table.pin(&room(0));
        // As if a subscribe of dialog:0 were waiting on a dead connection.
        let _in_flight = busy.try_lock().unwrap();
        // Well over SHARDS rooms, so some share dialog:0's shard.
        for n in 1..=4 * SHARDS {
            let lock = table.pin(&room(n));
            assert!(lock.try_lock().is_ok(), "dialog:{n} waits on dialog:0");
        }
    }

    #[test]
    fn an_entry_goes_only_when_unpinned_and_its_own() {
        let table = ChannelTable::new();
        let lock = table.pin(&room(1));
        table.remove_if_unpinned(&room(1), &lock);
        assert!(table.holds(&room(1), &lock), "pinned: kept");
        table.unpin(&room(1));
        let other = Arc::new(ChannelLock::default());
        table.remove_if_unpinned(&room(1), &other);
        assert!(table.holds(&room(1), &lock), "another lock does not remove it");
        table.remove_if_unpinned(&room(1), &lock);
        assert!(table.lock(&room(1)).is_none());
        assert!(table.rooms().is_empty());
    }
}
