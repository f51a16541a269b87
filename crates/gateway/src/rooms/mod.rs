//! [`RoomRegistry`]: which local connections are in which room, and in what order they get
//! the room's events.
//!
//! The registry is the one owner of membership, in both directions (as socketioxide's
//! adapter keeps them): room → members, sharded by room name so that fan-out to one room does
//! not stall joins to others, and connection → rooms, sharded by connection id. A connection is
//! [registered](RoomRegistry::register) once authenticated and holds the returned
//! [`Registration`]; dropping it (whatever ends the task: a return, an error, a panic) leaves
//! every room and forgets the connection, and a room with no members is removed. Nothing else
//! keeps a copy of either map.
//!
//! Lock order: a room shard, then a connection shard inside it, never the other way round.
//!
//! # Layout
//! - `mod.rs`: the registry, registration, leaving, and queries.
//! - `join.rs`: the join protocol: start, finish, abort.
//! - `member.rs`: [`Member`], a connection as other tasks reach it.
//! - `sequence.rs`: one room's members and the ordered delivery of its events.

mod join;
mod member;
mod sequence;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use roomcast_proto::RoomName;

pub use join::{Closed, JoinStart};
pub use member::{ConnId, Member, Notices};
use sequence::Room;
pub use sequence::{Cursor, Delivered, JoinPosition, MAX_HELD};

use crate::event::{Emitted, RoomEvent};
use crate::metrics::Metrics;

/// Number of shards of each map; a power of two well above the core count keeps contention
/// negligible.
const SHARDS: usize = 64;

/// Called (without blocking) when a room loses its last local member.
pub type EmptyRoomHook = Box<dyn Fn(&RoomName) + Send + Sync>;
/// Called (without blocking) when a room starts holding events because of a gap after `Cursor`.
pub type GapHook = Box<dyn Fn(&RoomName, &Cursor) + Send + Sync>;

/// Told (without blocking, under the registry's locks) of every connection that registers and
/// unregisters, and of every room a connection is in: from the end of its first join (a
/// refused or abandoned join is never in) to whatever takes it out.
pub trait MembershipHook: Send + Sync {
    /// `member` registered.
    fn registered(&self, member: &Member);
    /// `member` unregistered (after it left every room).
    fn unregistered(&self, member: &Member);
    /// `member` is in `room`.
    fn entered(&self, room: &RoomName, member: &Member);
    /// `member` is out of `room`.
    fn exited(&self, room: &RoomName, member: &Member);
}

/// A registered connection and the rooms it is in.
#[derive(Debug)]
struct Joined {
    member: Arc<Member>,
    rooms: HashSet<RoomName>,
}

/// The local room map of one node.
pub struct RoomRegistry {
    // std mutexes: held only while touching a map or queueing frames, never across `.await`.
    rooms: Box<[Mutex<HashMap<RoomName, Room>>]>,
    connections: Box<[Mutex<HashMap<ConnId, Joined>>]>,
    hasher: RandomState,
    on_empty: OnceLock<EmptyRoomHook>,
    on_gap: OnceLock<GapHook>,
    // Weak: the hook's owner (presence) reaches the registry through fan-out.
    membership: OnceLock<std::sync::Weak<dyn MembershipHook>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RoomRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomRegistry").field("rooms", &self.room_count()).finish_non_exhaustive()
    }
}

/// A connection's place in the registry; dropping it leaves every room and unregisters it.
#[derive(Debug)]
#[must_use = "dropping a Registration unregisters the connection at once"]
pub struct Registration {
    registry: Arc<RoomRegistry>,
    conn: ConnId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.unregister(self.conn);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock left the maps consistent (every change is one
    // insert or remove), so a poisoned lock is used as it is.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl RoomRegistry {
    /// An empty registry counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            rooms: (0..SHARDS).map(|_| Mutex::default()).collect(),
            connections: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            on_empty: OnceLock::new(),
            on_gap: OnceLock::new(),
            membership: OnceLock::new(),
            metrics,
        })
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

    /// Sets the hook told of memberships (once; later calls are ignored).
    pub fn on_membership(&self, hook: std::sync::Weak<dyn MembershipHook>) {
        let _ = self.membership.set(hook);
    }

    fn membership(&self) -> Option<Arc<dyn MembershipHook>> {
        self.membership.get()?.upgrade()
    }

    fn room_shard(&self, room: &RoomName) -> MutexGuard<'_, HashMap<RoomName, Room>> {
        lock(&self.rooms[self.hasher.hash_one(room) as usize % SHARDS])
    }

    fn connection_shard(&self, conn: ConnId) -> MutexGuard<'_, HashMap<ConnId, Joined>> {
        lock(&self.connections[conn as usize % SHARDS])
    }

    /// Registers an authenticated connection; it can join rooms until the returned
    /// [`Registration`] is dropped.
    pub fn register(self: &Arc<Self>, member: Arc<Member>) -> Registration {
        let conn = member.id;
        if let Some(hook) = self.membership() {
            hook.registered(&member);
        }
        self.connection_shard(conn).insert(conn, Joined { member, rooms: HashSet::new() });
        Registration { registry: Arc::clone(self), conn }
    }

    /// Forgets `conn` and leaves every room it is in. A join racing with this finds the
    /// connection gone and adds nothing.
    fn unregister(&self, conn: ConnId) {
        let Some(joined) = self.connection_shard(conn).remove(&conn) else { return };
        let hook = self.membership();
        for room in joined.rooms {
            let mut shard = self.room_shard(&room);
            if let Some(entry) = shard.get_mut(&room)
                && let Some(m) = entry.members.remove(&conn)
            {
                if let Some(hook) = hook.as_ref().filter(|_| m.is_positioned()) {
                    hook.exited(&room, &joined.member);
                }
                self.metrics.subscription_removed();
                self.drop_if_empty(&mut shard, &room);
            }
        }
        if let Some(hook) = hook {
            hook.unregistered(&joined.member);
        }
    }

    /// Every registered connection (a snapshot).
    pub fn connections(&self) -> Vec<Arc<Member>> {
        self.connections
            .iter()
            .flat_map(|s| lock(s).values().map(|j| Arc::clone(&j.member)).collect::<Vec<_>>())
            .collect()
    }

    /// Number of registered connections.
    pub fn connection_count(&self) -> usize {
        self.connections.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether `conn` is in `room`.
    pub fn is_in(&self, conn: ConnId, room: &RoomName) -> bool {
        self.connection_shard(conn).get(&conn).is_some_and(|j| j.rooms.contains(room))
    }

    /// How many rooms `conn` is in.
    pub fn rooms_joined(&self, conn: ConnId) -> usize {
        self.connection_shard(conn).get(&conn).map_or(0, |j| j.rooms.len())
    }

    /// Removes `conn` from `room`; returns whether it was in it.
    pub fn leave(&self, room: &RoomName, conn: ConnId) -> bool {
        let mut shard = self.room_shard(room);
        let Some(entry) = shard.get_mut(room) else { return false };
        let Some(m) = entry.members.remove(&conn) else { return false };
        if m.is_positioned()
            && let Some(hook) = self.membership()
        {
            hook.exited(room, &m.member);
        }
        self.metrics.subscription_removed();
        self.forget(room, conn);
        self.drop_if_empty(&mut shard, room);
        true
    }

    /// Removes `room` from `conn`'s rooms; called under the room's lock.
    fn forget(&self, room: &RoomName, conn: ConnId) {
        if let Some(joined) = self.connection_shard(conn).get_mut(&conn) {
            joined.rooms.remove(room);
        }
    }

    /// Accounts for the members a delivery evicted (already out of the room) and removes the
    /// room once empty; called under the room's lock.
    fn after_delivery(&self, shard: &mut HashMap<RoomName, Room>, room: &RoomName, out: &Delivered) {
        let hook = if out.evicted.is_empty() { None } else { self.membership() };
        for member in &out.evicted {
            if let Some(hook) = &hook {
                hook.exited(room, member);
            }
            self.metrics.subscription_removed();
            self.forget(room, member.id);
        }
        self.drop_if_empty(shard, room);
    }

    fn drop_if_empty(&self, shard: &mut HashMap<RoomName, Room>, room: &RoomName) {
        if shard.get(room).is_some_and(|entry| entry.members.is_empty()) {
            shard.remove(room);
            self.metrics.room_removed();
            if let Some(hook) = self.on_empty.get() {
                hook(room);
            }
        }
    }

    /// Delivers one event of a room's sequence to its members (see `sequence.rs`).
    pub fn deliver(&self, room: &RoomName, e: &Arc<RoomEvent>) -> Delivered {
        let mut out = Delivered::default();
        let mut shard = self.room_shard(room);
        let Some(entry) = shard.get_mut(room) else { return out };
        let detect = self.on_gap.get();
        entry.deliver(e, detect.is_some(), &mut out);
        if let (Some(cursor), Some(hook)) = (&out.gap, detect) {
            hook(room, cursor);
        }
        self.after_delivery(&mut shard, room, &out);
        out
    }

    /// Starts holding `room`'s events for a repair (see `sequence.rs`); returns where to repair
    /// from, or `None` when there is nothing to repair or a repair is running.
    pub fn begin_repair(&self, room: &RoomName) -> Option<Cursor> {
        self.room_shard(room).get_mut(room)?.begin_repair()
    }

    /// Ends a repair: with `Some(events)` (every event after the cursor, in order) they are
    /// delivered, then the held ones; with `None` every positioned member is evicted.
    pub fn finish_repair(&self, room: &RoomName, events: Option<&[Arc<RoomEvent>]>) -> Delivered {
        let mut out = Delivered::default();
        let mut shard = self.room_shard(room);
        let Some(entry) = shard.get_mut(room) else { return out };
        let detect = self.on_gap.get();
        entry.finish_repair(events, detect.is_some(), &mut out);
        if let (Some(cursor), Some(hook)) = (&out.gap, detect) {
            hook(room, cursor);
        }
        self.after_delivery(&mut shard, room, &out);
        out
    }

    /// Queues an `emit` to every member of its room except the emitting user's connections and
    /// members still joining; returns how many it was queued for.
    pub fn broadcast(&self, emit: &Arc<Emitted>) -> usize {
        self.room_shard(&emit.room).get(&emit.room).map_or(0, |entry| entry.broadcast(emit))
    }

    /// The members of `room` (a snapshot).
    pub fn members(&self, room: &RoomName) -> Vec<Arc<Member>> {
        let shard = self.room_shard(room);
        shard.get(room).map(|e| e.members.values().map(|m| Arc::clone(&m.member)).collect()).unwrap_or_default()
    }

    /// Where `conn`'s delivery in `room` stands: the offset up to which it has been sent (or
    /// told of in its `ok`) every event, and its epoch; `None` until its join finished.
    pub fn delivered(&self, room: &RoomName, conn: ConnId) -> Option<Cursor> {
        let shard = self.room_shard(room);
        let entry = shard.get(room)?;
        let mut at = entry.members.get(&conn)?.position()?;
        if let Some(cursor) = &entry.cursor
            && cursor.epoch == at.epoch
        {
            at.offset = at.offset.max(cursor.offset);
        }
        Some(at)
    }

    /// Queues `frame` (a `join` or `leave` of `user`) to the members of `room` that asked for
    /// them, but `user`'s own (a user's devices are one presence); returns how many.
    pub fn presence_frame(&self, room: &RoomName, user: &str, frame: &bytes::Bytes) -> usize {
        let shard = self.room_shard(room);
        let Some(entry) = shard.get(room) else { return 0 };
        let now = std::time::Instant::now();
        let mut sent = 0;
        let watchers = entry.members.values().filter(|m| m.is_positioned() && *m.member.user != *user);
        for m in watchers.filter(|m| m.member.watches_presence(room)) {
            m.member.send(frame.clone(), now);
            sent += 1;
        }
        sent
    }

    /// Number of members of `room`.
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.room_shard(room).get(room).map_or(0, |e| e.members.len())
    }

    /// Where `room`'s delivery stands on this node.
    pub fn cursor(&self, room: &RoomName) -> Option<Cursor> {
        self.room_shard(room).get(room).and_then(|e| e.cursor.clone())
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.rooms.iter().map(|s| lock(s).len()).sum()
    }
}
