//! The join protocol, one name for one thing: [`RoomRegistry::start_join`] makes the room hold
//! its events for the connection, the broker then reads where the member starts (and what it
//! missed), and [`RoomRegistry::finish_join`] queues the reply, the recovered events and the
//! held ones, in that order, under the room's lock; [`RoomRegistry::abort_join`] ends a join
//! whose position could not be read. A subscribe, a reconnect's `since` and the automatic
//! joins at connect all go through these three steps.

use std::sync::Arc;

use roomcast_proto::RoomName;

use super::sequence::Aborted;
use super::{ConnId, Cursor, Delivered, JoinPosition, Member, RoomRegistry};

/// The connection is no longer registered (it is closing): it can join nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closing")]
pub struct Closed;

/// What starting a join found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinStart {
    /// The connection was not in the room before.
    pub new_member: bool,
    /// The room's cursor on this node, unless it is repairing: a member that needs no reply
    /// can start there without a round trip (every later event is held for it).
    pub cursor: Option<Cursor>,
}

impl RoomRegistry {
    /// Starts `member`'s join of `room`: from now on the room's events are held for it until
    /// [`Self::finish_join`] or [`Self::abort_join`]. A member already in the room starts
    /// joining again (a second `subscribe`, with `since` or not).
    pub fn start_join(&self, room: &RoomName, member: &Arc<Member>) -> Result<JoinStart, Closed> {
        let mut shard = self.room_shard(room);
        // Checked under the room's lock, so an unregister that starts after this finds the room
        // in the connection's set and leaves it.
        let mut conns = self.connection_shard(member.id);
        let joined = conns.get_mut(&member.id).ok_or(Closed)?;
        let entry = shard.entry(room.clone()).or_default();
        let new_room = entry.members.is_empty();
        let new_member = entry.start_join(member);
        if new_member {
            joined.rooms.insert(room.clone());
            self.metrics.subscription_added(new_room);
        }
        drop(conns);
        Ok(JoinStart { new_member, cursor: entry.settled_cursor() })
    }

    /// Finishes `conn`'s join at `at`: runs `then` (which queues the `ok`), then queues the
    /// recovered events and the held ones past them, and makes the member live. Returns what
    /// happened, or `None` when the member left meanwhile.
    pub fn finish_join<R>(
        &self,
        room: &RoomName,
        conn: ConnId,
        at: JoinPosition<'_>,
        then: impl FnOnce() -> R,
    ) -> Option<(R, Delivered)> {
        let mut out = Delivered::default();
        let mut shard = self.room_shard(room);
        let entry = shard.get_mut(room)?;
        let member = entry.members.get(&conn).filter(|m| !m.is_positioned()).map(|m| Arc::clone(&m.member));
        let result = entry.finish_join(conn, at, then, &mut out)?;
        // A first join that finished is in the room from now on; one evicted at once (its
        // epoch broke) enters here and leaves in `after_delivery`, which tells every eviction.
        if let (Some(member), Some(hook)) = (member, self.membership()) {
            hook.entered(room, &member);
        }
        self.after_delivery(&mut shard, room, &out);
        Some((result, out))
    }

    /// Ends a join whose position could not be read: a member positioned before goes on from
    /// its own position and gets the events held after it; a new member is removed.
    pub fn abort_join(&self, room: &RoomName, conn: ConnId) -> Delivered {
        let mut out = Delivered::default();
        let mut shard = self.room_shard(room);
        let Some(entry) = shard.get_mut(room) else { return out };
        if entry.abort_join(conn, &mut out) == Aborted::Removed {
            self.metrics.subscription_removed();
            self.forget(room, conn);
        }
        self.after_delivery(&mut shard, room, &out);
        out
    }
}
