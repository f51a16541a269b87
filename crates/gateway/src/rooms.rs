//! [`RoomRegistry`]: which local connections are in which room.
//!
//! Room → members lives here, sharded by room name so that fan-out to one room does not stall
//! joins to others; connection → rooms lives in each [`ConnectionHandle`] as [`Membership`]
//! guards. A guard leaves its room when dropped, and a room with no members is removed, so no
//! exit path of a connection can leak a membership or an empty room.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;

use crate::connection::handle::{ConnId, ConnectionHandle};

/// Number of shards; a power of two well above the core count keeps contention negligible.
const SHARDS: usize = 64;

type Members = HashMap<ConnId, Arc<ConnectionHandle>>;

/// The local room map of one node.
#[derive(Debug)]
pub struct RoomRegistry {
    // std mutexes: held only while touching a map or queueing frames, never across `.await`.
    shards: Box<[Mutex<HashMap<RoomName, Members>>]>,
    hasher: RandomState,
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
        }
    }
}

impl RoomRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, Members>> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `conn` to `room`, then runs `then` before any other fan-out to the room can happen,
    /// so that a reply queued by `then` precedes every event delivered after the join.
    ///
    /// Returns the new membership, or `None` when `conn` was already in the room (its existing
    /// guard stays the only one).
    pub fn join<R>(
        self: &Arc<Self>,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        then: impl FnOnce() -> R,
    ) -> (Option<Membership>, R) {
        let mut shard = self.shard(room);
        let members = shard.entry(room.clone()).or_default();
        let added = members.insert(conn.id, Arc::clone(conn)).is_none();
        if added {
            crate::metrics::subscription_added(members.len() == 1);
        }
        let result = then();
        drop(shard);
        let membership = added.then(|| Membership {
            registry: Arc::clone(self),
            room: room.clone(),
            conn: conn.id,
        });
        (membership, result)
    }

    fn leave(&self, room: &RoomName, conn: ConnId) {
        let mut shard = self.shard(room);
        let Some(members) = shard.get_mut(room) else {
            return;
        };
        if members.remove(&conn).is_some() {
            let emptied = members.is_empty();
            if emptied {
                shard.remove(room);
            }
            crate::metrics::subscription_removed(emptied);
        }
    }

    /// Queues `frame` to every member of `room` except the connections of `exclude_user`;
    /// returns how many members it was queued for.
    pub fn broadcast(
        &self,
        room: &RoomName,
        frame: &Bytes,
        received: Instant,
        exclude_user: Option<&str>,
    ) -> usize {
        let shard = self.shard(room);
        let Some(members) = shard.get(room) else {
            return 0;
        };
        let mut sent = 0;
        for conn in members.values() {
            if exclude_user.is_some_and(|u| *conn.user == *u) {
                continue;
            }
            // A full outbox closes that connection; it never blocks this loop.
            conn.send(frame.clone(), received);
            sent += 1;
        }
        sent
    }

    /// The members of `room` (a snapshot).
    pub fn members(&self, room: &RoomName) -> Vec<Arc<ConnectionHandle>> {
        self.shard(room)
            .get(room)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of members of `room`.
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.shard(room).get(room).map_or(0, HashMap::len)
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
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
        let (m, ()) = registry.join(&room("dialog:1"), &a, || ());
        let (again, ()) = registry.join(&room("dialog:1"), &a, || ());
        assert!(
            again.is_none(),
            "a second join must not hand out a second guard"
        );
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
            let (m, ()) = registry.join(&room(name), &a, || ());
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
        let _m: Vec<_> = [&a, &b, &c]
            .iter()
            .map(|h| registry.join(&r, h, || ()).0.unwrap())
            .collect();
        let frame = Bytes::from_static(b"event");
        assert_eq!(
            registry.broadcast(&r, &frame, Instant::now(), Some("u2")),
            1
        );
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
        let _m: Vec<_> = [&slow, &fast]
            .iter()
            .map(|h| registry.join(&r, h, || ()).0.unwrap())
            .collect();
        for _ in 0..5 {
            registry.broadcast(&r, &Bytes::from_static(b"123456"), Instant::now(), None);
        }
        assert_eq!(
            slow.outbox.close_reason(),
            Some(crate::close::CloseReason::SlowConsumer)
        );
        assert_eq!(fast.outbox.take(Default::default()).frames.len(), 5);
    }

    #[test]
    fn join_runs_its_closure_before_later_broadcasts() {
        let registry = RoomRegistry::new();
        let r = room("dialog:1");
        let a = conn(1, "u1");
        let (_m, ()) = registry.join(&r, &a, || a.send(Bytes::from_static(b"ok"), Instant::now()));
        registry.broadcast(&r, &Bytes::from_static(b"event"), Instant::now(), None);
        let got = a.outbox.take(Default::default());
        assert_eq!(
            got.frames,
            [Bytes::from_static(b"ok"), Bytes::from_static(b"event")]
        );
    }
}
