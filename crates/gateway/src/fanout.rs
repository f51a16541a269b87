//! [`Fanout`]: hands what arrives on a room's channel to the node's local members of that room.
//!
//! Every event is checked and framed once per node: the JSON frame is built with
//! [`encode_event`], wrapped in a WebSocket frame with [`wire::text`], and the same [`Bytes`]
//! go to every member's outbox. A member whose outbox is full is closed with 4008 by its own
//! handle; the loop never waits for it.

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use roomcast_proto::RoomName;
use roomcast_proto::envelope::{Envelope, envelope::Body};
use roomcast_proto::frames::{EventParts, LeftReason, ServerFrame, encode_event};
use serde_json::value::RawValue;

use bytes::Bytes;

use crate::close::CloseReason;
use crate::rooms::{Delivery, EventRef, HeldEvent, RoomRegistry};
use crate::wire;

/// A published event as the broker hands it over.
#[derive(Debug, Clone, Copy)]
pub struct EventDelivery<'a> {
    /// Event name.
    pub event: &'a str,
    /// Event data, valid JSON.
    pub data: &'a RawValue,
    /// Message id.
    pub id: &'a str,
    /// The event's offset in the room.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: &'a str,
    /// Keep the event from this user's connections.
    pub exclude_user: Option<&'a str>,
}

/// Local delivery for one node.
#[derive(Debug, Clone)]
pub struct Fanout {
    registry: Arc<RoomRegistry>,
}

impl Fanout {
    /// Delivery into `registry`.
    pub fn new(registry: Arc<RoomRegistry>) -> Self {
        Self { registry }
    }

    /// The node's room registry.
    pub fn registry(&self) -> &Arc<RoomRegistry> {
        &self.registry
    }

    /// Delivers a published event to the room's local members; returns how many got it.
    pub fn event(&self, room: &RoomName, e: EventDelivery<'_>, received: Instant) -> usize {
        if self.registry.member_count(room) == 0 {
            return 0;
        }
        let frame = frame_of(room, &e);
        let event =
            EventRef { offset: e.offset, epoch: e.epoch, frame: &frame, exclude_user: e.exclude_user, received };
        let delivery = self.registry.broadcast_event(room, event);
        self.settle(room, delivery)
    }

    /// The WebSocket frame of a published event, encoded once for every member.
    pub fn frame(&self, room: &RoomName, e: &EventDelivery<'_>) -> Bytes {
        frame_of(room, e)
    }

    /// Tells members evicted by a delivery to resubscribe, counts what was sent, and returns it.
    pub fn settle(&self, room: &RoomName, delivery: Delivery) -> usize {
        if !delivery.evicted.is_empty() {
            let left = wire::text(
                &ServerFrame::Left { room: room.as_str().to_owned(), reason: LeftReason::Resubscribe }.to_json(),
            );
            tracing::info!(%room, members = delivery.evicted.len(), "continuity lost; members told to resubscribe");
            for conn in &delivery.evicted {
                // The registry already removed the member; this drops the connection's guard.
                conn.leave(room);
                conn.send(left.clone(), Instant::now());
            }
            crate::metrics::resubscribe_sent(delivery.evicted.len());
        }
        crate::metrics::event_fanned_out("event", delivery.sent);
        delivery.sent
    }

    /// Turns events read from history into frames ready to deliver, dropping any that do not
    /// decode (no roomcast publisher wrote them).
    pub fn held_events(&self, room: &RoomName, envelopes: &[Envelope]) -> Vec<HeldEvent> {
        let received = Instant::now();
        let mut held = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let Some(Body::Event(e)) = &envelope.body else { continue };
            let Some(data) = json(&e.data) else { continue };
            let exclude_user = Some(e.exclude_user.as_str()).filter(|u| !u.is_empty());
            let delivery = EventDelivery {
                event: &e.event,
                data,
                id: &e.id,
                offset: envelope.offset,
                epoch: &envelope.epoch,
                exclude_user,
            };
            held.push(HeldEvent {
                offset: envelope.offset,
                epoch: Arc::from(envelope.epoch.as_str()),
                frame: frame_of(room, &delivery),
                exclude_user: exclude_user.map(Arc::from),
                received,
            });
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
                let delivery = EventDelivery {
                    event: &e.event,
                    data,
                    id: &e.id,
                    offset: envelope.offset,
                    epoch: &envelope.epoch,
                    exclude_user: Some(e.exclude_user.as_str()).filter(|u| !u.is_empty()),
                };
                self.event(&room, delivery, received);
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
            None => {}
        }
        Some(envelope)
    }

    /// Delivers an ephemeral `emit` from `from_user` to the room's other local members.
    pub fn emit(&self, room: &RoomName, event: &str, data: &RawValue, from_user: &str, received: Instant) -> usize {
        let json = encode_event(EventParts {
            room: room.as_str(),
            event,
            data,
            id: None,
            position: None,
            from: Some(from_user),
        });
        let sent = self.registry.broadcast(room, &wire::text(&json), received, Some(from_user));
        crate::metrics::event_fanned_out("emit", sent);
        sent
    }

    /// Ends the local subscriptions of `users` to `room` with a `left` frame.
    pub fn remove_members(&self, room: &RoomName, users: &[impl AsRef<str>]) -> usize {
        let left =
            wire::text(&ServerFrame::Left { room: room.as_str().to_owned(), reason: LeftReason::Removed }.to_json());
        let mut ended = 0;
        for conn in self.registry.members(room) {
            if users.iter().any(|u| u.as_ref() == &*conn.user) && conn.leave(room) {
                conn.send(left.clone(), Instant::now());
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
        let conns = self.registry.members(&room);
        for conn in &conns {
            conn.close(CloseReason::Disconnected(code));
        }
        conns.len()
    }
}

/// The WebSocket frame of a published event: encoded once, shared by every member.
fn frame_of(room: &RoomName, e: &EventDelivery<'_>) -> Bytes {
    wire::text(&encode_event(EventParts {
        room: room.as_str(),
        event: e.event,
        data: e.data,
        id: Some(e.id),
        position: Some((e.offset, e.epoch)),
        from: None,
    }))
}

/// Borrows `data` as JSON, checking it once for the whole node.
fn json(data: &[u8]) -> Option<&RawValue> {
    serde_json::from_slice::<&RawValue>(data).ok()
}
