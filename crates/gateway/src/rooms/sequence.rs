//! [`Room`]: one room's members and the ordered delivery of its events.
//!
//! A room remembers the last event this node delivered (its [`Cursor`]). An event at or below
//! it is a duplicate and is dropped; one more than a step past it (in the same epoch) reveals a
//! gap, and the room holds every later event in a repair buffer until the missing ones come
//! from history. A member that is joining (its `ok` not yet sent) collects events in its own
//! buffer instead of its outbox, from [`Room::start_join`] to [`Room::finish_join`]. A member
//! whose epoch differs from an event's lost its continuity (the room's history was reset) and
//! is evicted, to be told `left: resubscribe`. Every change to a [`Membership`] is made here.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::member::{ConnId, Member};
use crate::close::CloseReason;
use crate::event::{Emitted, RoomEvent};

/// Most events a joining member or a repairing room holds; past it the member is closed as too
/// slow, or the repair gives up and its members are told to resubscribe.
pub const MAX_HELD: usize = 10_000;

/// The last event a room delivered on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Its offset.
    pub offset: u64,
    /// Its epoch.
    pub epoch: Arc<str>,
}

/// Where a joining member starts: the room's position when it was read, and the events
/// recovered from history up to it.
#[derive(Debug, Clone, Copy)]
pub struct JoinPosition<'a> {
    /// The room's offset when the position (and history) was read.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: &'a str,
    /// Recovered events after the client's `since`, in order, ending at `offset`.
    pub recovered: &'a [Arc<RoomEvent>],
}

/// What a delivery did, for the caller to act on once the room's lock is released.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Members the frame was queued for.
    pub sent: usize,
    /// Members whose continuity broke: removed from the room, to be told to resubscribe.
    pub evicted: Vec<Arc<Member>>,
    /// The event revealed a gap after this cursor; the room now holds events until repaired.
    pub gap: Option<Cursor>,
}

/// What [`Room::abort_join`] did with the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aborted {
    /// It was positioned before and goes on from there.
    Kept,
    /// It was new and was removed.
    Removed,
    /// It was no longer in the room.
    Gone,
}

/// One member's place in one room's sequence.
#[derive(Debug)]
pub(super) struct Membership {
    pub(super) member: Arc<Member>,
    /// Events at or below this offset were accounted for in the member's `ok` (or recovered).
    floor: u64,
    /// The epoch of the member's position; `None` until its first join finishes.
    epoch: Option<Arc<str>>,
    /// Events held while the member joins.
    held: Option<Vec<Arc<RoomEvent>>>,
}

impl Membership {
    /// Whether a join of the member finished (it is in the room, not just joining).
    pub(super) fn is_positioned(&self) -> bool {
        self.epoch.is_some()
    }

    /// The member's own position (its `ok`'s or its recovery's end); `None` until positioned.
    pub(super) fn position(&self) -> Option<Cursor> {
        Some(Cursor { offset: self.floor, epoch: Arc::clone(self.epoch.as_ref()?) })
    }
}

#[derive(Debug, Default)]
struct Repair {
    held: Vec<Arc<RoomEvent>>,
    overflowed: bool,
}

/// A room's members and where its delivery stands.
#[derive(Debug, Default)]
pub(super) struct Room {
    pub(super) members: HashMap<ConnId, Membership>,
    pub(super) cursor: Option<Cursor>,
    repair: Option<Repair>,
}

impl Room {
    /// Starts holding the room's events for `member` until its join finishes; a member already
    /// in the room starts joining again (a second `subscribe`). Returns whether it is new.
    pub(super) fn start_join(&mut self, member: &Arc<Member>) -> bool {
        match self.members.entry(member.id) {
            Entry::Occupied(mut m) => {
                m.get_mut().held = Some(Vec::new());
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(Membership { member: Arc::clone(member), floor: 0, epoch: None, held: Some(Vec::new()) });
                true
            }
        }
    }

    /// The cursor, unless a repair is running: where a member needing no reply may start.
    pub(super) fn settled_cursor(&self) -> Option<Cursor> {
        self.cursor.clone().filter(|_| self.repair.is_none())
    }

    /// Finishes `conn`'s join at `at`: runs `then` (which queues the `ok`), queues the
    /// recovered events, then the held ones past them, and makes the member live. `None` when
    /// the member left meanwhile.
    pub(super) fn finish_join<R>(
        &mut self,
        conn: ConnId,
        at: JoinPosition<'_>,
        then: impl FnOnce() -> R,
        out: &mut Delivered,
    ) -> Option<R> {
        let m = self.members.get_mut(&conn)?;
        let result = then();
        let user = &*m.member.user;
        let mut floor = at.offset;
        for e in at.recovered {
            if !e.excludes(user) {
                m.member.send_event(e);
            }
            floor = floor.max(e.offset);
        }
        let mut broken = false;
        let mut held = m.held.take().unwrap_or_default();
        // Arrival order is offset order, except for copies older than the cursor.
        held.sort_by_key(|e| e.offset);
        for e in held {
            if *e.epoch != *at.epoch {
                broken = true;
            } else if e.offset > floor {
                if !e.excludes(user) {
                    m.member.send_event(&e);
                }
                floor = e.offset;
            }
        }
        // The cursor is not moved to this member's position: it says what has arrived here,
        // and events up to the position may still be on their way to other members.
        (m.floor, m.epoch) = (floor, Some(Arc::from(at.epoch)));
        if broken && let Some(m) = self.members.remove(&conn) {
            out.evicted.push(m.member);
        }
        Some(result)
    }

    /// Ends a join whose position could not be read. A member positioned before (a second
    /// `subscribe` to a room it is in) goes on from its own position with the held events after
    /// it; a new member is removed.
    pub(super) fn abort_join(&mut self, conn: ConnId, out: &mut Delivered) -> Aborted {
        let Some(m) = self.members.get(&conn) else { return Aborted::Gone };
        let Some(epoch) = m.epoch.clone() else {
            self.members.remove(&conn);
            return Aborted::Removed;
        };
        let at = JoinPosition { offset: m.floor, epoch: &epoch, recovered: &[] };
        match self.finish_join(conn, at, || (), out) {
            Some(()) => Aborted::Kept,
            None => Aborted::Gone,
        }
    }

    /// Delivers (or holds) one event; `detect_gaps` is off where offsets cannot skip.
    pub(super) fn deliver(&mut self, e: &Arc<RoomEvent>, detect_gaps: bool, out: &mut Delivered) {
        let hold = || Arc::clone(e);
        if let Some(repair) = &mut self.repair {
            if repair.held.len() >= MAX_HELD {
                repair.overflowed = true;
            } else {
                repair.held.push(hold());
            }
            return;
        }
        match &mut self.cursor {
            Some(cursor) if *cursor.epoch == *e.epoch => {
                if e.offset <= cursor.offset {
                    // Live members have it (or were positioned past it), but a member still
                    // joining from an earlier position may not: the cursor can be ahead of
                    // what arrived, set from another member's position.
                    self.hold_for_joining(e);
                    return;
                }
                if detect_gaps && e.offset > cursor.offset.saturating_add(1) {
                    out.gap = Some(cursor.clone());
                    self.repair = Some(Repair { held: vec![hold()], overflowed: false });
                    return;
                }
                cursor.offset = e.offset;
            }
            _ => {
                // The room's first event here (or of a new epoch): its members were positioned
                // by reads made after the node subscribed, so every event past the lowest of
                // them comes on the channel, and a jump past it is a loss too.
                if detect_gaps
                    && let Some(from) =
                        self.lowest_position(Some(&e.epoch)).filter(|c| e.offset > c.offset.saturating_add(1))
                {
                    out.gap = Some(from);
                    self.repair = Some(Repair { held: vec![hold()], overflowed: false });
                    return;
                }
                self.cursor = Some(Cursor { offset: e.offset, epoch: Arc::clone(&e.epoch) });
            }
        }
        let mut broken = Vec::new();
        for (id, m) in &mut self.members {
            if e.excludes(&m.member.user) {
                continue;
            }
            if let Some(pending) = &mut m.held {
                if pending.len() >= MAX_HELD {
                    m.member.close(CloseReason::SlowConsumer);
                } else {
                    pending.push(hold());
                }
                continue;
            }
            if m.epoch.as_deref().is_some_and(|epoch| *epoch != *e.epoch) {
                broken.push(*id);
                continue;
            }
            if e.offset > m.floor {
                // A full outbox closes that connection; it never blocks this loop.
                m.member.send_event(e);
                out.sent += 1;
            }
        }
        for id in broken {
            if let Some(m) = self.members.remove(&id) {
                out.evicted.push(m.member);
            }
        }
    }

    fn hold_for_joining(&mut self, e: &Arc<RoomEvent>) {
        for m in self.members.values_mut() {
            if let Some(pending) = &mut m.held
                && pending.len() < MAX_HELD
                && !e.excludes(&m.member.user)
            {
                pending.push(Arc::clone(e));
            }
        }
    }

    /// Queues an event outside the offset sequence (`emit`) to every live member except the
    /// emitting user's connections; returns how many got it.
    pub(super) fn broadcast(&self, emit: &Arc<Emitted>) -> usize {
        let mut sent = 0;
        for m in self.members.values() {
            if m.held.is_some() || *m.member.user == *emit.from {
                continue;
            }
            m.member.send_emit(emit);
            sent += 1;
        }
        sent
    }

    /// The lowest position of a positioned member (in `epoch`, when given): where this node's
    /// delivery must go on from when the room has no cursor yet.
    fn lowest_position(&self, epoch: Option<&str>) -> Option<Cursor> {
        let m = self
            .members
            .values()
            .filter(|m| m.epoch.is_some() && epoch.is_none_or(|e| m.epoch.as_deref() == Some(e)))
            .min_by_key(|m| m.floor)?;
        Some(Cursor { offset: m.floor, epoch: Arc::clone(m.epoch.as_ref()?) })
    }

    /// Starts holding the room's events for a repair after its cursor (after a lost
    /// subscription); before any event arrived, after the lowest member position. Returns where
    /// to repair from, or `None` when there is nothing to repair or a repair is running.
    pub(super) fn begin_repair(&mut self) -> Option<Cursor> {
        if self.repair.is_some() {
            return None;
        }
        let from = match &self.cursor {
            Some(cursor) => cursor.clone(),
            None => self.lowest_position(None)?,
        };
        self.repair = Some(Repair::default());
        Some(from)
    }

    /// Ends a repair: with `Some(events)` (every event after the cursor, in order) they are
    /// delivered, then the held ones; with `None` (history could not fill the gap) every
    /// positioned member is evicted, and members still joining get the held events.
    pub(super) fn finish_repair(&mut self, events: Option<&[Arc<RoomEvent>]>, detect_gaps: bool, out: &mut Delivered) {
        let Some(repair) = self.repair.take() else { return };
        match events {
            Some(events) if !repair.overflowed => {
                for e in events {
                    self.deliver(e, false, out);
                }
            }
            _ => {
                let positioned: Vec<ConnId> =
                    self.members.iter().filter(|(_, m)| m.held.is_none()).map(|(id, _)| *id).collect();
                for id in positioned {
                    if let Some(m) = self.members.remove(&id) {
                        out.evicted.push(m.member);
                    }
                }
                self.cursor = None;
            }
        }
        for e in &repair.held {
            self.deliver(e, detect_gaps, out);
        }
    }
}
