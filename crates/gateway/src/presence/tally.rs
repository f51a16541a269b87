//! [`Tally`]: this node's connections per user and per (room, user), and what of them is not
//! yet written to the shared state.
//!
//! Connections come and go synchronously (the room registry tells); the shared state is
//! written by a flush a few milliseconds later with the counts as they are then, so a
//! connection that comes and goes within one flush writes nothing, and a burst of connects of
//! one user writes once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use roomcast_proto::RoomName;

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    now: u64,
    written: u64,
}

/// What `written` holds when the shared state's value is not known: whatever `now` is, it
/// differs, so the next flush writes it (0 included, which a lost value of 0 would not).
const UNKNOWN: u64 = u64::MAX;

/// What a flush writes: the counts that changed since they were last written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    /// (user, this node's connections of the user).
    pub users: Vec<(Arc<str>, u64)>,
    /// (room, user, this node's connections of the user in the room, whether this node still
    /// has anyone in the room).
    pub rooms: Vec<(RoomName, Arc<str>, u64, bool)>,
}

impl Delta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.rooms.is_empty()
    }
}

/// This node's counts.
#[derive(Debug, Default)]
pub struct Tally {
    users: HashMap<Arc<str>, Count>,
    rooms: HashMap<(RoomName, Arc<str>), Count>,
    /// Users with a connection in each room, on this node.
    room_users: HashMap<RoomName, usize>,
    dirty_users: HashSet<Arc<str>>,
    dirty_rooms: HashSet<(RoomName, Arc<str>)>,
}

impl Tally {
    /// A connection of `user` opened.
    pub fn opened(&mut self, user: &Arc<str>) {
        self.users.entry(Arc::clone(user)).or_default().now += 1;
        self.dirty_users.insert(Arc::clone(user));
    }

    /// A connection of `user` closed.
    pub fn closed(&mut self, user: &Arc<str>) {
        if let Some(count) = self.users.get_mut(user) {
            count.now = count.now.saturating_sub(1);
            self.dirty_users.insert(Arc::clone(user));
        }
    }

    /// A connection of `user` entered `room`.
    pub fn entered(&mut self, room: &RoomName, user: &Arc<str>) {
        let key = (room.clone(), Arc::clone(user));
        let count = self.rooms.entry(key.clone()).or_default();
        count.now += 1;
        if count.now == 1 {
            *self.room_users.entry(room.clone()).or_default() += 1;
        }
        self.dirty_rooms.insert(key);
    }

    /// A connection of `user` left `room`.
    pub fn exited(&mut self, room: &RoomName, user: &Arc<str>) {
        let key = (room.clone(), Arc::clone(user));
        let Some(count) = self.rooms.get_mut(&key) else { return };
        if count.now == 0 {
            return;
        }
        count.now -= 1;
        if count.now == 0
            && let Some(users) = self.room_users.get_mut(room)
        {
            *users -= 1;
            if *users == 0 {
                self.room_users.remove(room);
            }
        }
        self.dirty_rooms.insert(key);
    }

    /// This node's connections of `user`.
    pub fn connections(&self, user: &str) -> u64 {
        self.users.get(user).map_or(0, |c| c.now)
    }

    /// The counts to write; until [`Self::written`] or [`Self::failed`], they count as written.
    pub fn take(&mut self) -> Delta {
        let mut delta = Delta::default();
        for user in std::mem::take(&mut self.dirty_users) {
            if let Some(count) = self.users.get(&user)
                && count.now != count.written
            {
                delta.users.push((user, count.now));
            }
        }
        for key in std::mem::take(&mut self.dirty_rooms) {
            if let Some(count) = self.rooms.get(&key)
                && count.now != count.written
            {
                let in_room = self.room_users.contains_key(&key.0);
                delta.rooms.push((key.0, key.1, count.now, in_room));
            }
        }
        delta
    }

    /// `delta` was written: its counts are what the shared state holds.
    pub fn written(&mut self, delta: &Delta) {
        for (user, n) in &delta.users {
            if let Some(count) = self.users.get_mut(user) {
                count.written = *n;
                if count.now == 0 && count.written == 0 {
                    self.users.remove(user);
                }
            }
        }
        for (room, user, n, _) in &delta.rooms {
            let key = (room.clone(), Arc::clone(user));
            if let Some(count) = self.rooms.get_mut(&key) {
                count.written = *n;
                if count.now == 0 && count.written == 0 {
                    self.rooms.remove(&key);
                }
            }
        }
    }

    /// `delta` could not be written: its entries are written at the next flush.
    pub fn failed(&mut self, delta: &Delta) {
        self.dirty_users.extend(delta.users.iter().map(|(u, _)| Arc::clone(u)));
        self.dirty_rooms.extend(delta.rooms.iter().map(|(r, u, _, _)| (r.clone(), Arc::clone(u))));
    }

    /// The shared state may not hold this node's counts (it was taken for dead, or this is its
    /// first heartbeat): every count is written again, those at 0 too. Marking them written as
    /// 0 instead would lose a close that came after their last write: the count would seem
    /// written, and the user would stay online.
    pub fn rewrite_all(&mut self) {
        for (user, count) in &mut self.users {
            count.written = UNKNOWN;
            self.dirty_users.insert(Arc::clone(user));
        }
        for (key, count) in &mut self.rooms {
            count.written = UNKNOWN;
            self.dirty_rooms.insert(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn a_close_after_a_write_is_written_even_when_everything_is_rewritten() {
        let mut t = Tally::default();
        let u: Arc<str> = Arc::from("u7");
        let d = room("dialog:1");
        t.opened(&u);
        t.entered(&d, &u);
        let delta = t.take();
        t.written(&delta);
        t.exited(&d, &u);
        t.closed(&u);
        // The first heartbeat (or a node taken for dead) comes before the next flush.
        t.rewrite_all();
        let delta = t.take();
        assert_eq!(delta.users, vec![(Arc::clone(&u), 0)], "the close must still be written");
        assert_eq!(delta.rooms, vec![(d, u, 0, false)]);
        t.written(&delta);
        assert!(t.take().is_empty());
        assert!(t.users.is_empty() && t.rooms.is_empty(), "written zeros are forgotten");
    }

    #[test]
    fn a_connection_that_comes_and_goes_between_flushes_writes_nothing() {
        let mut t = Tally::default();
        let u: Arc<str> = Arc::from("u1");
        t.opened(&u);
        t.closed(&u);
        assert!(t.take().is_empty());
    }

    #[test]
    fn only_net_changes_are_written_and_a_failed_write_comes_again() {
        let mut t = Tally::default();
        let u: Arc<str> = Arc::from("u1");
        let d = room("dialog:1");
        t.opened(&u);
        t.opened(&u);
        t.entered(&d, &u);
        let delta = t.take();
        assert_eq!(delta.users, vec![(Arc::clone(&u), 2)]);
        assert_eq!(delta.rooms, vec![(d.clone(), Arc::clone(&u), 1, true)]);
        t.failed(&delta);
        let again = t.take();
        assert_eq!(again, delta);
        t.written(&again);
        assert!(t.take().is_empty());
        t.exited(&d, &u);
        t.closed(&u);
        let delta = t.take();
        assert_eq!(delta.users, vec![(Arc::clone(&u), 1)]);
        assert_eq!(delta.rooms, vec![(d.clone(), Arc::clone(&u), 0, false)]);
        t.written(&delta);
        t.rewrite_all();
        assert_eq!(t.take().users, vec![(u, 1)], "after a rewrite, what is held is written again");
    }
}
