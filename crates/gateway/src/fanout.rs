//! [`Fanout`]: the local side of every broker, and the brokers' one way into the room
//! registry.
//!
//! What arrives for a room (a published event, an `emit`, a member removal, a disconnect) is
//! handed to the node's local members here. Every event is checked and framed once per node:
//! a [`RoomEvent`] carries the `/ws` frame (and, once a Socket.IO member needs it, the Socket.IO
//! packet), and every member's outbox gets the same [`Arc`]. A member whose outbox is
//! full is closed with 4008 by its own [`Member`]; the loop never waits for it. Joins and
//! repairs go through here too, so that what a delivery evicted is always announced.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prost::Message;
use roomcast_proto::RoomName;
use roomcast_proto::envelope::{Envelope, envelope::Body};
use roomcast_proto::frames::{LeftReason, ServerFrame};
use serde_json::value::RawValue;

use crate::close::CloseReason;
use crate::event::{Emitted, PublishedEvent, RoomEvent};
use crate::events::receipts::Receipts;
use crate::metrics::Metrics;
use crate::rooms::{
    Closed, ConnId, Cursor, Delivered, EmptyRoomHook, GapHook, JoinPosition, JoinStart, Member, RoomRegistry,
};
use crate::wire;

/// Local delivery for one node.
#[derive(Debug, Clone)]
pub struct Fanout {
    registry: Arc<RoomRegistry>,
    metrics: Arc<Metrics>,
    /// Set once the node's receipts exist: events of receipt rooms are remembered by id.
    receipts: Arc<OnceLock<Arc<Receipts>>>,
}

impl Fanout {
    /// Delivery into `registry`, counted in `metrics`.
    pub fn new(registry: Arc<RoomRegistry>, metrics: Arc<Metrics>) -> Self {
        Self { registry, metrics, receipts: Arc::default() }
    }

    /// The registry delivered into.
    pub fn registry(&self) -> &Arc<RoomRegistry> {
        &self.registry
    }

    /// Remembers the ids of events delivered in `receipts`' rooms (once).
    pub fn set_receipts(&self, receipts: Arc<Receipts>) {
        let _ = self.receipts.set(receipts);
    }

    fn note_delivered(&self, room: &RoomName, e: &RoomEvent) {
        if let Some(receipts) = self.receipts.get()
            && receipts.covers(room)
        {
            receipts.delivered_event(room, e.offset, &e.epoch, &e.id);
        }
    }

    /// Queues a `join` (or `leave`) of `user` to the members of `room` that asked for presence
    /// (not to `user`'s own).
    pub fn presence(&self, room: &RoomName, user: &str, joined: bool) -> usize {
        let (room_name, name) = (room.as_str().to_owned(), user.to_owned());
        let frame = if joined {
            ServerFrame::Join { room: room_name, user: name }
        } else {
            ServerFrame::Leave { room: room_name, user: name }
        };
        self.registry.presence_frame(room, user, &wire::text(&frame.to_json()))
    }

    /// See [`RoomRegistry::on_empty_room`].
    pub fn on_empty_room(&self, hook: EmptyRoomHook) {
        self.registry.on_empty_room(hook);
    }

    /// See [`RoomRegistry::on_gap`].
    pub fn on_gap(&self, hook: GapHook) {
        self.registry.on_gap(hook);
    }

    /// Number of local members of `room`.
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.registry.member_count(room)
    }

    /// See [`RoomRegistry::start_join`].
    pub fn start_join(&self, room: &RoomName, member: &Arc<Member>) -> Result<JoinStart, Closed> {
        self.registry.start_join(room, member)
    }

    /// Finishes a join (see [`RoomRegistry::finish_join`]) and announces what it evicted;
    /// `None` when the member left meanwhile.
    pub fn finish_join<R>(
        &self,
        room: &RoomName,
        conn: ConnId,
        at: JoinPosition<'_>,
        then: impl FnOnce() -> R,
    ) -> Option<R> {
        let (result, delivered) = self.registry.finish_join(room, conn, at, then)?;
        self.metrics.events_recovered("since", at.recovered.len());
        self.finish_delivery(room, delivered);
        Some(result)
    }

    /// Ends a join whose position could not be read (see [`RoomRegistry::abort_join`]).
    pub fn abort_join(&self, room: &RoomName, conn: ConnId) {
        let delivered = self.registry.abort_join(room, conn);
        self.finish_delivery(room, delivered);
    }

    /// Removes `conn` from `room`; returns whether it was in it.
    pub fn leave(&self, room: &RoomName, conn: ConnId) -> bool {
        self.registry.leave(room, conn)
    }

    /// Delivers a published event to the room's local members; returns how many got it.
    pub fn event(&self, room: &RoomName, e: PublishedEvent<'_>, received: Instant) -> usize {
        if self.registry.member_count(room) == 0 {
            return 0;
        }
        let event = RoomEvent::new(room, &e, received);
        let delivered = self.registry.deliver(room, &event);
        self.note_delivered(room, &event);
        self.finish_delivery(room, delivered)
    }

    /// Delivers one event of the room's sequence; the caller ends it with
    /// [`Self::finish_delivery`] (for a broker that delivers under its own lock).
    pub fn deliver(&self, room: &RoomName, e: &Arc<RoomEvent>) -> Delivered {
        let delivered = self.registry.deliver(room, e);
        self.note_delivered(room, e);
        delivered
    }

    /// Tells members a delivery evicted to resubscribe, counts what was sent, and returns it.
    pub fn finish_delivery(&self, room: &RoomName, delivered: Delivered) -> usize {
        if !delivered.evicted.is_empty() {
            let left = wire::text(
                &ServerFrame::Left { room: room.as_str().to_owned(), reason: LeftReason::Resubscribe }.to_json(),
            );
            tracing::info!(%room, members = delivered.evicted.len(), "continuity lost; members told to resubscribe");
            for member in &delivered.evicted {
                member.left(room, LeftReason::Resubscribe, &left);
            }
            self.metrics.resubscribe_sent(delivered.evicted.len());
        }
        self.metrics.event_fanned_out("event", delivered.sent);
        delivered.sent
    }

    /// Starts a repair of `room` (see [`RoomRegistry::begin_repair`]).
    pub fn begin_repair(&self, room: &RoomName) -> Option<Cursor> {
        self.registry.begin_repair(room)
    }

    /// Ends a repair with the events history had after the cursor, or `None` when it could not
    /// fill the gap (members are told to resubscribe).
    pub fn finish_repair(&self, room: &RoomName, events: Option<&[Arc<RoomEvent>]>) {
        match events {
            Some(events) => {
                self.metrics.gap_repair("repaired");
                self.metrics.events_recovered("gap", events.len());
            }
            None => self.metrics.gap_repair("failed"),
        }
        let delivered = self.registry.finish_repair(room, events);
        self.finish_delivery(room, delivered);
    }

    /// Turns events read from history into events ready to deliver, dropping any that do not
    /// decode (no roomcast publisher wrote them).
    pub fn room_events(&self, room: &RoomName, envelopes: &[Envelope]) -> Vec<Arc<RoomEvent>> {
        let received = Instant::now();
        let mut held = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let Some(Body::Event(e)) = &envelope.body else { continue };
            let Some(data) = json(&e.data) else { continue };
            let exclude_user = Some(e.exclude_user.as_str()).filter(|u| !u.is_empty());
            let published = PublishedEvent {
                event: &e.event,
                data,
                id: &e.id,
                offset: envelope.offset,
                epoch: &envelope.epoch,
                exclude_user,
            };
            held.push(RoomEvent::new(room, &published, received));
        }
        held
    }

    /// Delivers one broker envelope (protobuf) to the local members of its room, and returns it.
    /// Envelopes that do not decode are dropped with a warning: no roomcast publisher made them.
    pub fn envelope(&self, bytes: &[u8], received: Instant) -> Option<Envelope> {
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "dropping an envelope that does not decode");
                return None;
            }
        };
        let Ok(room) = RoomName::parse(&envelope.room) else {
            tracing::warn!(room = %envelope.room, "dropping an envelope for an invalid room");
            return None;
        };
        match &envelope.body {
            Some(Body::Event(e)) => {
                let Some(data) = json(&e.data) else {
                    tracing::warn!(%room, "dropping an event whose data is not JSON");
                    return None;
                };
                let published = PublishedEvent {
                    event: &e.event,
                    data,
                    id: &e.id,
                    offset: envelope.offset,
                    epoch: &envelope.epoch,
                    exclude_user: Some(e.exclude_user.as_str()).filter(|u| !u.is_empty()),
                };
                self.event(&room, published, received);
            }
            Some(Body::Emit(e)) => {
                if let Some(data) = json(&e.data) {
                    self.emit(&room, &e.event, data, &e.from_user, received);
                }
            }
            Some(Body::MembersRemoved(m)) => {
                self.remove_members(&room, &m.users);
            }
            Some(Body::Disconnect(d)) => {
                let code = u16::try_from(d.code).unwrap_or(4003);
                self.disconnect_user(&d.user, code);
            }
            Some(Body::Presence(p)) => {
                self.presence(&room, &p.user, p.joined);
            }
            None => {}
        }
        Some(envelope)
    }

    /// Delivers an ephemeral `emit` from `from_user` to the room's other local members.
    pub fn emit(&self, room: &RoomName, event: &str, data: &RawValue, from_user: &str, received: Instant) -> usize {
        let sent = self.registry.broadcast(&Emitted::new(room, event, data, from_user, received));
        self.metrics.event_fanned_out("emit", sent);
        sent
    }

    /// Ends the local subscriptions of `users` to `room` with a `left` frame.
    pub fn remove_members(&self, room: &RoomName, users: &[impl AsRef<str>]) -> usize {
        let left =
            wire::text(&ServerFrame::Left { room: room.as_str().to_owned(), reason: LeftReason::Removed }.to_json());
        let mut ended = 0;
        for member in self.registry.members(room) {
            if users.iter().any(|u| u.as_ref() == &*member.user) && self.registry.leave(room, member.id) {
                member.left(room, LeftReason::Removed, &left);
                ended += 1;
            }
        }
        ended
    }

    /// Closes every local connection of `user` with `code`; returns how many.
    pub fn disconnect_user(&self, user: &str, code: u16) -> usize {
        let Ok(room) = RoomName::user(user) else {
            return 0;
        };
        let members = self.registry.members(&room);
        for member in &members {
            member.close(CloseReason::Disconnected(code));
        }
        members.len()
    }
}

/// Borrows `data` as JSON, checking it once for the whole node.
fn json(data: &[u8]) -> Option<&RawValue> {
    serde_json::from_slice::<&RawValue>(data).ok()
}
