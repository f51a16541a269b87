//! [`RoomRegistry`]: which local connections are in which room.
//!
//! Room → members lives here, sharded by room name so that fan-out to one room does not stall
//! joins to others; connection → rooms lives in each [`ConnectionHandle`] as [`Membership`]
//! guards. A guard leaves its room when dropped, and a room with no members is removed, so no
//! exit path of a connection can leak a membership or an empty room.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;

use crate::connection::handle::{ConnId, ConnectionHandle};

/// Number of shards; a power of two well above the core count keeps contention negligible.
const SHARDS: usize = 64;

/// A room's local members, and the position of the last event delivered to them.
#[derive(Debug, Default)]
struct Room {
    members: HashMap<ConnId, Member>,
    cursor: RoomCursor,
}

#[derive(Debug)]
struct Member {
    conn: Arc<ConnectionHandle>,
    /// Events at or below this offset (in the room's current epoch) were already accounted
    /// for in the member's `ok` reply, so in-flight copies are not delivered to it.
    floor: u64,
}

/// Where a room's local delivery stands: the last event delivered on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomCursor {
    /// Offset of the last event delivered (0 before any).
    pub offset: u64,
    /// Epoch of that event.
    pub epoch: Option<Arc<str>>,
}

/// Called (without blocking) when a room loses its last local member.
pub type EmptyRoomHook = Box<dyn Fn(&RoomName) + Send + Sync>;

/// The local room map of one node.
pub struct RoomRegistry {
    // std mutexes: held only while touching a map or queueing frames, never across `.await`.
    shards: Box<[Mutex<HashMap<RoomName, Room>>]>,
    hasher: RandomState,
    on_empty: std::sync::OnceLock<EmptyRoomHook>,
}

impl std::fmt::Debug for RoomRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomRegistry").field("rooms", &self.room_count()).finish_non_exhaustive()
    }
}

/// A connection's place in a room; dropping it leaves the room.
#[derive(Debug)]
#[must_use = "dropping a Membership leaves the room at once"]
pub struct Membership {
    registry: Arc<RoomRegistry>,
    room: RoomName,
    conn: ConnId,
}

impl Default for RoomRegistry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            on_empty: std::sync::OnceLock::new(),
        }
    }
}

impl RoomRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Sets the hook told when a room loses its last member (once; later calls are ignored).
    /// It runs under the room's lock and must not block.
    pub fn on_empty_room(&self, hook: EmptyRoomHook) {
        let _ = self.on_empty.set(hook);
    }

    fn shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, Room>> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `conn` to `room`, then runs `then` before any other fan-out to the room can happen,
    /// so that a reply queued by `then` precedes every event delivered after the join.
    ///
    /// `then` gets the room's cursor and returns the member's floor: the offset its reply
    /// named, at or below which events are not delivered to it. Returns the new membership, or
    /// `None` when `conn` was already in the room (its existing guard stays the only one).
    pub fn join<R>(
        self: &Arc<Self>,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        then: impl FnOnce(&RoomCursor) -> (u64, R),
    ) -> (Option<Membership>, R) {
        let mut shard = self.shard(room);
        let entry = shard.entry(room.clone()).or_default();
        let (floor, result) = then(&entry.cursor);
        let added = match entry.members.entry(conn.id) {
            Entry::Occupied(mut member) => {
                member.get_mut().floor = floor;
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(Member { conn: Arc::clone(conn), floor });
                true
            }
        };
        if added {
            crate::metrics::subscription_added(entry.members.len() == 1);
        }
        drop(shard);
        let membership = added.then(|| Membership { registry: Arc::clone(self), room: room.clone(), conn: conn.id });
        (membership, result)
    }

    fn leave(&self, room: &RoomName, conn: ConnId) {
        let mut shard = self.shard(room);
        let Some(entry) = shard.get_mut(room) else { return };
        if entry.members.remove(&conn).is_some() {
            let emptied = entry.members.is_empty();
            if emptied {
                shard.remove(room);
                if let Some(hook) = self.on_empty.get() {
                    hook(room);
                }
            }
            crate::metrics::subscription_removed(emptied);
        }
    }

    /// Queues `frame` to every member of `room` except the connections of `exclude_user`;
    /// returns how many members it was queued for. For frames outside the offset sequence
    /// (`emit`, `left`).
    pub fn broadcast(&self, room: &RoomName, frame: &Bytes, received: Instant, exclude_user: Option<&str>) -> usize {
        let shard = self.shard(room);
        let Some(entry) = shard.get(room) else { return 0 };
        let mut sent = 0;
        for member in entry.members.values() {
            if exclude_user.is_some_and(|u| *member.conn.user == *u) {
                continue;
            }
            // A full outbox closes that connection; it never blocks this loop.
            member.conn.send(frame.clone(), received);
            sent += 1;
        }
        sent
    }

    /// Queues the frame of the event at `offset` in `epoch` to every member whose floor is
    /// below it, except the connections of `exclude_user`. An event at or below the room's
    /// cursor in the same epoch was delivered already and is dropped; a new epoch resets the
    /// cursor and every floor. Returns how many members it was queued for.
    pub fn broadcast_event(
        &self,
        room: &RoomName,
        frame: &Bytes,
        received: Instant,
        exclude_user: Option<&str>,
        offset: u64,
        epoch: &str,
    ) -> usize {
        let mut shard = self.shard(room);
        let Some(entry) = shard.get_mut(room) else { return 0 };
        if entry.cursor.epoch.is_none() {
            // The room's first event on this node: floors were set against this epoch.
            entry.cursor.epoch = Some(Arc::from(epoch));
        } else if entry.cursor.epoch.as_deref() != Some(epoch) {
            entry.cursor = RoomCursor { offset: 0, epoch: Some(Arc::from(epoch)) };
            entry.members.values_mut().for_each(|m| m.floor = 0);
        } else if offset <= entry.cursor.offset {
            return 0;
        }
        entry.cursor.offset = offset;
        let mut sent = 0;
        for member in entry.members.values() {
            if member.floor >= offset || exclude_user.is_some_and(|u| *member.conn.user == *u) {
                continue;
            }
            member.conn.send(frame.clone(), received);
            sent += 1;
        }
        sent
    }

    /// The members of `room` (a snapshot).
    pub fn members(&self, room: &RoomName) -> Vec<Arc<ConnectionHandle>> {
        let shard = self.shard(room);
        shard.get(room).map(|e| e.members.values().map(|m| Arc::clone(&m.conn)).collect()).unwrap_or_default()
    }

    /// Number of members of `room`.
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.shard(room).get(room).map_or(0, |e| e.members.len())
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

impl Membership {
    /// The room this membership is in.
    pub fn room(&self) -> &RoomName {
        &self.room
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.registry.leave(&self.room, self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_at_or_below_a_floor_or_the_cursor_are_not_delivered_again() {
        let registry = RoomRegistry::new();
        let r = room("dialog:1");
        let (early, late) = (conn(1, "u1"), conn(2, "u2"));
        let _a = registry.join(&r, &early, |_| (0, ())).0.unwrap();
        let frame = Bytes::from_static(b"e");
        assert_eq!(registry.broadcast_event(&r, &frame, Instant::now(), None, 1, "E"), 1);
        // `late` joined having been told offset 3: copies of 2 and 3 still in flight skip it.
        let _b = registry.join(&r, &late, |cursor| (cursor.offset.max(3), ())).0.unwrap();
        assert_eq!(registry.broadcast_event(&r, &frame, Instant::now(), None, 2, "E"), 1);
        assert_eq!(registry.broadcast_event(&r, &frame, Instant::now(), None, 2, "E"), 0, "duplicate");
        assert_eq!(registry.broadcast_event(&r, &frame, Instant::now(), None, 4, "E"), 2);
        // A new epoch starts over for everyone.
        assert_eq!(registry.broadcast_event(&r, &frame, Instant::now(), None, 1, "F"), 2);
        assert_eq!(early.outbox.take(Default::default()).frames.len(), 4);
        assert_eq!(late.outbox.take(Default::default()).frames.len(), 2);
    }

    fn conn(id: ConnId, user: &str) -> Arc<ConnectionHandle> {
        Arc::new(ConnectionHandle::new(id, Arc::from(user), 1 << 20))
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn dropping_the_membership_leaves_and_removes_the_empty_room() {
        let registry = RoomRegistry::new();
        let a = conn(1, "u1");
        let (m, ()) = registry.join(&room("dialog:1"), &a, |_| (0, ()));
        let (again, ()) = registry.join(&room("dialog:1"), &a, |_| (0, ()));
        assert!(again.is_none(), "a second join must not hand out a second guard");
        assert_eq!(registry.member_count(&room("dialog:1")), 1);
        assert_eq!(registry.room_count(), 1);
        drop(m);
        assert_eq!(registry.member_count(&room("dialog:1")), 0);
        assert_eq!(registry.room_count(), 0);
    }

    #[test]
    fn leave_all_on_the_handle_releases_every_room() {
        let registry = RoomRegistry::new();
        let a = conn(1, "u1");
        for name in ["user:u1", "org:o1", "dialog:1"] {
            let (m, ()) = registry.join(&room(name), &a, |_| (0, ()));
            a.add_membership(m.unwrap());
        }
        assert_eq!(registry.room_count(), 3);
        assert!(a.leave(&room("org:o1")));
        assert!(!a.leave(&room("org:o1")));
        assert_eq!(registry.room_count(), 2);
        a.leave_all();
        assert_eq!(registry.room_count(), 0);
        assert_eq!(a.room_count(), 0);
    }

    #[test]
    fn broadcast_skips_the_excluded_user_and_shares_the_bytes() {
        let registry = RoomRegistry::new();
        let r = room("dialog:1");
        let (a, b, c) = (conn(1, "u1"), conn(2, "u2"), conn(3, "u2"));
        let _m: Vec<_> = [&a, &b, &c].iter().map(|h| registry.join(&r, h, |_| (0, ())).0.unwrap()).collect();
        let frame = Bytes::from_static(b"event");
        assert_eq!(registry.broadcast(&r, &frame, Instant::now(), Some("u2")), 1);
        assert_eq!(registry.broadcast(&r, &frame, Instant::now(), None), 3);
        let got = a.outbox.take(Default::default());
        assert_eq!(got.frames.len(), 2);
        // Same allocation, not a copy.
        assert_eq!(got.frames[0].as_ptr(), frame.as_ptr());
        assert_eq!(b.outbox.take(Default::default()).frames.len(), 1);
    }

    #[test]
    fn a_full_member_is_closed_and_the_others_still_receive() {
        let registry = RoomRegistry::new();
        let r = room("dialog:1");
        let slow = Arc::new(ConnectionHandle::new(1, Arc::from("slow"), 10));
        let fast = conn(2, "fast");
        let _m: Vec<_> = [&slow, &fast].iter().map(|h| registry.join(&r, h, |_| (0, ())).0.unwrap()).collect();
        for _ in 0..5 {
            registry.broadcast(&r, &Bytes::from_static(b"123456"), Instant::now(), None);
        }
        assert_eq!(slow.outbox.close_reason(), Some(crate::close::CloseReason::SlowConsumer));
        assert_eq!(fast.outbox.take(Default::default()).frames.len(), 5);
    }

    #[test]
    fn join_runs_its_closure_before_later_broadcasts() {
        let registry = RoomRegistry::new();
        let r = room("dialog:1");
        let a = conn(1, "u1");
        let (_m, ()) = registry.join(&r, &a, |_| (0, a.send(Bytes::from_static(b"ok"), Instant::now())));
        registry.broadcast(&r, &Bytes::from_static(b"event"), Instant::now(), None);
        let got = a.outbox.take(Default::default());
        assert_eq!(got.frames, [Bytes::from_static(b"ok"), Bytes::from_static(b"event")]);
    }
}
