//! Ordered delivery inside one room: the offset sequence, members still catching up, and gaps.
//!
//! A room remembers the last event this node delivered (its [`Cursor`]). An event at or below
//! it is a duplicate and is dropped; one more than a step past it (in the same epoch) reveals a
//! gap, and the room holds every later event in a repair buffer until the missing ones come
//! from history. A member that is catching up (its `ok` not yet sent) collects events in its
//! own buffer instead of its outbox. A member whose epoch differs from an event's lost its
//! continuity (the room's history was reset) and is evicted, to be told `left: resubscribe`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::close::CloseReason;
use crate::connection::handle::{ConnId, ConnectionHandle};

/// Most events a catching-up member or a repairing room holds; past it the member is closed
/// as too slow, or the repair gives up and its members are told to resubscribe.
pub const MAX_HELD: usize = 10_000;

/// An event of a room's offset sequence, borrowed from the broker that carried it.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// Offset in the room.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: &'a str,
    /// The WebSocket frame, encoded once for every member.
    pub frame: &'a Bytes,
    /// Connections of this user do not get it.
    pub exclude_user: Option<&'a str>,
    /// When the node received it (for the fan-out latency histogram).
    pub received: Instant,
}

/// An event held for later delivery.
#[derive(Debug, Clone)]
pub struct HeldEvent {
    /// Offset in the room.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: Arc<str>,
    /// The WebSocket frame.
    pub frame: Bytes,
    /// Connections of this user do not get it.
    pub exclude_user: Option<Arc<str>>,
    /// When the node received it.
    pub received: Instant,
}

impl HeldEvent {
    /// Borrows it for delivery.
    pub fn event_ref(&self) -> EventRef<'_> {
        EventRef {
            offset: self.offset,
            epoch: &self.epoch,
            frame: &self.frame,
            exclude_user: self.exclude_user.as_deref(),
            received: self.received,
        }
    }

    fn from_ref(e: EventRef<'_>) -> Arc<Self> {
        Arc::new(Self {
            offset: e.offset,
            epoch: Arc::from(e.epoch),
            frame: e.frame.clone(),
            exclude_user: e.exclude_user.map(Arc::from),
            received: e.received,
        })
    }
}

/// The last event a room delivered on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Its offset.
    pub offset: u64,
    /// Its epoch.
    pub epoch: Arc<str>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) conn: Arc<ConnectionHandle>,
    /// Tells this membership from an earlier one of the same connection.
    pub(super) token: u64,
    /// Events at or below this offset were accounted for in the member's `ok` (or recovered).
    pub(super) floor: u64,
    /// The epoch of the member's position; `None` while catching up.
    pub(super) epoch: Option<Arc<str>>,
    /// Events held while the member catches up.
    pub(super) held: Option<Vec<Arc<HeldEvent>>>,
}

#[derive(Debug, Default)]
pub(super) struct Repair {
    pub(super) held: Vec<Arc<HeldEvent>>,
    pub(super) overflowed: bool,
}

/// A room's members and where its delivery stands.
#[derive(Debug, Default)]
pub(super) struct Room {
    pub(super) members: HashMap<ConnId, Member>,
    pub(super) cursor: Option<Cursor>,
    pub(super) repair: Option<Repair>,
}

/// What delivering one event did.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Members the frame was queued for.
    pub sent: usize,
    /// Members whose continuity broke: removed from the room, to be told to resubscribe.
    pub evicted: Vec<Arc<ConnectionHandle>>,
    /// The event revealed a gap after this cursor; the room now holds events until repaired.
    pub gap: Option<Cursor>,
}

impl Room {
    /// Delivers (or holds) one event; `detect_gaps` is off where offsets cannot skip.
    pub(super) fn deliver(&mut self, e: EventRef<'_>, detect_gaps: bool, out: &mut Delivery) {
        let mut held: Option<Arc<HeldEvent>> = None;
        let mut hold = || Arc::clone(held.get_or_insert_with(|| HeldEvent::from_ref(e)));
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
                    // catching up from an earlier position may not: the cursor can be ahead of
                    // what arrived, set from another member's position.
                    self.hold_for_catching_up(e, &mut hold);
                    return;
                }
                if detect_gaps && e.offset > cursor.offset + 1 {
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
                    && let Some(from) = self.lowest_position(Some(e.epoch)).filter(|c| e.offset > c.offset + 1)
                {
                    out.gap = Some(from);
                    self.repair = Some(Repair { held: vec![hold()], overflowed: false });
                    return;
                }
                self.cursor = Some(Cursor { offset: e.offset, epoch: Arc::from(e.epoch) });
            }
        }
        let mut broken = Vec::new();
        for (id, member) in &mut self.members {
            if e.exclude_user.is_some_and(|u| *member.conn.user == *u) {
                continue;
            }
            if let Some(pending) = &mut member.held {
                if pending.len() >= MAX_HELD {
                    member.conn.close(CloseReason::SlowConsumer);
                } else {
                    pending.push(hold());
                }
                continue;
            }
            if member.epoch.as_deref().is_some_and(|epoch| epoch != e.epoch) {
                broken.push(*id);
                continue;
            }
            if e.offset > member.floor {
                // A full outbox closes that connection; it never blocks this loop.
                member.conn.send(e.frame.clone(), e.received);
                out.sent += 1;
            }
        }
        for id in broken {
            if let Some(member) = self.members.remove(&id) {
                crate::metrics::subscription_removed();
                out.evicted.push(member.conn);
            }
        }
    }

    fn hold_for_catching_up(&mut self, e: EventRef<'_>, hold: &mut impl FnMut() -> Arc<HeldEvent>) {
        for member in self.members.values_mut() {
            if let Some(pending) = &mut member.held
                && pending.len() < MAX_HELD
                && e.exclude_user.is_none_or(|u| *member.conn.user != *u)
            {
                pending.push(hold());
            }
        }
    }

    /// The lowest position of a positioned member (in `epoch`, when given): where this node's
    /// delivery must go on from when the room has no cursor yet.
    pub(super) fn lowest_position(&self, epoch: Option<&str>) -> Option<Cursor> {
        let member = self
            .members
            .values()
            .filter(|m| m.epoch.is_some() && epoch.is_none_or(|e| m.epoch.as_deref() == Some(e)))
            .min_by_key(|m| m.floor)?;
        Some(Cursor { offset: member.floor, epoch: Arc::clone(member.epoch.as_ref()?) })
    }

    /// Removes every member that is not catching up (their continuity cannot be repaired).
    pub(super) fn evict_positioned(&mut self, out: &mut Delivery) {
        let ids: Vec<ConnId> = self.members.iter().filter(|(_, m)| m.held.is_none()).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(member) = self.members.remove(&id) {
                crate::metrics::subscription_removed();
                out.evicted.push(member.conn);
            }
        }
    }
}
