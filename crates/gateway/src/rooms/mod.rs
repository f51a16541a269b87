//! [`RoomRegistry`]: which local connections are in which room, and in what order they get
//! the room's events.
//!
//! Room → members lives here, sharded by room name so that fan-out to one room does not stall
//! joins to others; connection → rooms lives in each [`ConnectionHandle`] as [`Membership`]
//! guards. A guard leaves its room when dropped, and a room with no members is removed, so no
//! exit path of a connection can leak a membership or an empty room. The offset sequence of
//! each room (duplicates, gaps, members catching up) is `sequence.rs`.
//!
//! # Layout
//! - `mod.rs`: the registry, joins and leaves, frames outside the sequence (`emit`, `left`).
//! - `sequence.rs`: ordered delivery of one room's events.

mod sequence;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;

pub use sequence::{Cursor, Delivery, EventRef, HeldEvent, MAX_HELD};
use sequence::{Member, Repair, Room};

use crate::connection::handle::{ConnId, ConnectionHandle};

/// Number of shards; a power of two well above the core count keeps contention negligible.
const SHARDS: usize = 64;

/// Called (without blocking) when a room loses its last local member.
pub type EmptyRoomHook = Box<dyn Fn(&RoomName) + Send + Sync>;
/// Called (without blocking) when a room starts holding events because of a gap after `Cursor`.
pub type GapHook = Box<dyn Fn(&RoomName, &Cursor) + Send + Sync>;

/// The local room map of one node.
pub struct RoomRegistry {
    // std mutexes: held only while touching a map or queueing frames, never across `.await`.
    shards: Box<[Mutex<HashMap<RoomName, Room>>]>,
    hasher: RandomState,
    on_empty: OnceLock<EmptyRoomHook>,
    on_gap: OnceLock<GapHook>,
    tokens: AtomicU64,
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
    token: u64,
}

/// How a member catching up is finished: its position, the recovered events, and the reply
/// to queue before them.
#[derive(Debug)]
pub struct CatchUp<'a> {
    /// The room's offset when the position (and history) was read.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: &'a str,
    /// Recovered events after the client's `since`, in order, ending at `offset`.
    pub recovered: &'a [HeldEvent],
}

impl Default for RoomRegistry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            on_empty: OnceLock::new(),
            on_gap: OnceLock::new(),
            tokens: AtomicU64::new(1),
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

    /// Turns gap detection on, with the hook that starts a repair (once). Without it, offsets
    /// that skip are delivered as they come (the embedded broker cannot skip).
    pub fn on_gap(&self, hook: GapHook) {
        let _ = self.on_gap.set(hook);
    }

    fn shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, Room>> {
        let index = self.hasher.hash_one(room) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn membership(self: &Arc<Self>, room: &RoomName, conn: ConnId, token: u64) -> Membership {
        Membership { registry: Arc::clone(self), room: room.clone(), conn, token }
    }

    /// Adds `conn` to `room` at a known position (`floor` in `epoch`), after running `then`
    /// under the room's lock, so that a reply queued by `then` precedes every later event.
    /// Returns the new membership, or `None` when `conn` was already in the room (its floor
    /// is moved and its existing guard stays the only one).
    pub fn join_at<R>(
        self: &Arc<Self>,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
        floor: u64,
        epoch: &str,
        then: impl FnOnce() -> R,
    ) -> (Option<Membership>, R) {
        let mut shard = self.shard(room);
        let entry = shard.entry(room.clone()).or_default();
        let result = then();
        let epoch: Arc<str> = Arc::from(epoch);
        if entry.cursor.is_none() {
            entry.cursor = Some(Cursor { offset: floor, epoch: Arc::clone(&epoch) });
        }
        let new_room = entry.members.is_empty();
        let added = match entry.members.entry(conn.id) {
            Entry::Occupied(mut member) => {
                let member = member.get_mut();
                (member.floor, member.epoch, member.held) = (floor, Some(epoch), None);
                None
            }
            Entry::Vacant(slot) => {
                let token = self.tokens.fetch_add(1, Ordering::Relaxed);
                slot.insert(Member { conn: Arc::clone(conn), token, floor, epoch: Some(epoch), held: None });
                Some(token)
            }
        };
        drop(shard);
        (added.map(|token| self.added(room, conn.id, token, new_room)), result)
    }

    /// Like [`Self::begin_catch_up`], and also returns the room's cursor when it has one and is
    /// not repairing: a member that needs no reply can start there (every later event is held
    /// for it), with no round trip.
    pub fn hold(
        self: &Arc<Self>,
        room: &RoomName,
        conn: &Arc<ConnectionHandle>,
    ) -> (Option<Membership>, Option<Cursor>) {
        let membership = self.begin_catch_up(room, conn);
        let shard = self.shard(room);
        let cursor = shard.get(room).filter(|e| e.repair.is_none()).and_then(|e| e.cursor.clone());
        (membership, cursor)
    }

    /// Starts a join whose position is read from the broker afterwards: from now on the room's
    /// events are held for `conn` until [`Self::finish_catch_up`]. An existing member starts
    /// catching up again (a subscribe with `since` to a room it is in). Returns the new
    /// membership, if any.
    pub fn begin_catch_up(self: &Arc<Self>, room: &RoomName, conn: &Arc<ConnectionHandle>) -> Option<Membership> {
        let mut shard = self.shard(room);
        let entry = shard.entry(room.clone()).or_default();
        let new_room = entry.members.is_empty();
        let token = match entry.members.entry(conn.id) {
            Entry::Occupied(mut member) => {
                member.get_mut().held = Some(Vec::new());
                return None;
            }
            Entry::Vacant(slot) => {
                let token = self.tokens.fetch_add(1, Ordering::Relaxed);
                let member = Member { conn: Arc::clone(conn), token, floor: 0, epoch: None, held: Some(Vec::new()) };
                slot.insert(member);
                token
            }
        };
        drop(shard);
        Some(self.added(room, conn.id, token, new_room))
    }

    /// Finishes a catch-up: runs `then` (which queues the `ok`), queues the recovered events,
    /// then the held ones past them, and makes the member live. Returns what happened, or
    /// `None` when the member left meanwhile.
    pub fn finish_catch_up<R>(
        &self,
        room: &RoomName,
        conn: &ConnectionHandle,
        catch_up: CatchUp<'_>,
        then: impl FnOnce() -> R,
    ) -> Option<(R, Delivery)> {
        let mut out = Delivery::default();
        let mut shard = self.shard(room);
        let entry = shard.get_mut(room)?;
        let member = entry.members.get_mut(&conn.id)?;
        let result = then();
        let user = &*member.conn.user;
        let mut floor = catch_up.offset;
        for e in catch_up.recovered {
            if e.exclude_user.as_deref() != Some(user) {
                member.conn.send(e.frame.clone(), e.received);
            }
            floor = floor.max(e.offset);
        }
        let mut broken = false;
        let mut held = member.held.take().unwrap_or_default();
        // Arrival order is offset order, except for copies older than the cursor.
        held.sort_by_key(|e| e.offset);
        for e in held {
            if *e.epoch != *catch_up.epoch {
                broken = true;
            } else if e.offset > floor {
                if e.exclude_user.as_deref() != Some(user) {
                    member.conn.send(e.frame.clone(), e.received);
                }
                floor = e.offset;
            }
        }
        (member.floor, member.epoch) = (floor, Some(Arc::from(catch_up.epoch)));
        if broken && let Some(member) = entry.members.remove(&conn.id) {
            crate::metrics::subscription_removed();
            out.evicted.push(member.conn);
        }
        // The cursor is not moved to this member's position: it says what has arrived here,
        // and events up to the position may still be on their way to other members.
        self.drop_if_empty(&mut shard, room);
        Some((result, out))
    }

    /// Ends a catch-up whose position could not be read. A member that was positioned before
    /// (a second `subscribe` to a room it is in) goes on from its own position and gets the
    /// held events after it; returns `None` for a new member, which the caller removes.
    pub fn abort_catch_up(&self, room: &RoomName, conn: &ConnectionHandle) -> Option<Delivery> {
        let (floor, epoch) = {
            let shard = self.shard(room);
            let member = shard.get(room)?.members.get(&conn.id)?;
            (member.floor, Arc::clone(member.epoch.as_ref()?))
        };
        // Between the two locks events are still held for the member, so none is lost.
        let catch_up = CatchUp { offset: floor, epoch: &epoch, recovered: &[] };
        self.finish_catch_up(room, conn, catch_up, || ()).map(|((), delivery)| delivery)
    }

    /// Delivers one event of a room's sequence to its members (see `sequence.rs`).
    pub fn broadcast_event(&self, room: &RoomName, e: EventRef<'_>) -> Delivery {
        let mut out = Delivery::default();
        let mut shard = self.shard(room);
        let Some(entry) = shard.get_mut(room) else { return out };
        let detect = self.on_gap.get();
        entry.deliver(e, detect.is_some(), &mut out);
        if let (Some(cursor), Some(hook)) = (&out.gap, detect) {
            hook(room, cursor);
        }
        self.drop_if_empty(&mut shard, room);
        out
    }

    /// Starts holding `room`'s events for a repair after its cursor (after a lost
    /// subscription); before any event arrived, after the lowest member position. Returns
    /// where to repair from, or `None` when there is nothing to repair or a repair is running.
    pub fn begin_repair(&self, room: &RoomName) -> Option<Cursor> {
        let mut shard = self.shard(room);
        let entry = shard.get_mut(room)?;
        if entry.repair.is_some() {
            return None;
        }
        let from = match &entry.cursor {
            Some(cursor) => cursor.clone(),
            None => entry.lowest_position(None)?,
        };
        entry.repair = Some(Repair::default());
        Some(from)
    }

    /// Ends a repair: with `Some(events)` (every event after the cursor, in order) they are
    /// delivered, then the held ones; with `None` (history could not fill the gap) every
    /// positioned member is evicted, and members catching up get the held events.
    pub fn finish_repair(&self, room: &RoomName, events: Option<&[HeldEvent]>) -> Delivery {
        let mut out = Delivery::default();
        let mut shard = self.shard(room);
        let Some(entry) = shard.get_mut(room) else { return out };
        let Some(repair) = entry.repair.take() else { return out };
        match events {
            Some(events) if !repair.overflowed => {
                for e in events {
                    entry.deliver(e.event_ref(), false, &mut out);
                }
            }
            _ => {
                entry.evict_positioned(&mut out);
                entry.cursor = None;
            }
        }
        let detect = self.on_gap.get();
        for e in &repair.held {
            entry.deliver(e.event_ref(), detect.is_some(), &mut out);
        }
        if let (Some(cursor), Some(hook)) = (&out.gap, detect) {
            hook(room, cursor);
        }
        self.drop_if_empty(&mut shard, room);
        out
    }

    fn added(self: &Arc<Self>, room: &RoomName, conn: ConnId, token: u64, new_room: bool) -> Membership {
        crate::metrics::subscription_added(new_room);
        self.membership(room, conn, token)
    }

    fn leave(&self, room: &RoomName, conn: ConnId, token: u64) {
        let mut shard = self.shard(room);
        let Some(entry) = shard.get_mut(room) else { return };
        if entry.members.get(&conn).is_some_and(|m| m.token == token) {
            entry.members.remove(&conn);
            crate::metrics::subscription_removed();
            self.drop_if_empty(&mut shard, room);
        }
    }

    /// Removes `room` once it has no member (an evicted member's guard finds nothing to do).
    fn drop_if_empty(&self, shard: &mut HashMap<RoomName, Room>, room: &RoomName) {
        if shard.get(room).is_some_and(|entry| entry.members.is_empty()) {
            shard.remove(room);
            crate::metrics::room_removed();
            if let Some(hook) = self.on_empty.get() {
                hook(room);
            }
        }
    }

    /// Queues `frame` to every member of `room` except the connections of `exclude_user` and
    /// members still catching up; returns how many it was queued for. For frames outside the
    /// offset sequence (`emit`).
    pub fn broadcast(&self, room: &RoomName, frame: &Bytes, received: Instant, exclude_user: Option<&str>) -> usize {
        let shard = self.shard(room);
        let Some(entry) = shard.get(room) else { return 0 };
        let mut sent = 0;
        for member in entry.members.values() {
            if member.held.is_some() || exclude_user.is_some_and(|u| *member.conn.user == *u) {
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

    /// Where `room`'s delivery stands on this node.
    pub fn cursor(&self, room: &RoomName) -> Option<Cursor> {
        self.shard(room).get(room).and_then(|e| e.cursor.clone())
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
        self.registry.leave(&self.room, self.conn, self.token);
    }
}
