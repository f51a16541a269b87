//! [`RoomEvent`] and [`Emitted`]: what fan-out hands to every recipient, encoded once per node.
//!
//! A published event arrives once per node and goes to many members, over two faces: the
//! roomcast protocol on `/ws` (its WebSocket frame is built once, here, when the event is made)
//! and Socket.IO (its packet is built the first time a Socket.IO member needs it, then cached
//! beside the frame). Every member's outbox gets the same [`Arc`]; nothing is encoded per
//! recipient except what must differ per recipient (a Socket.IO session's offset).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;
use roomcast_proto::frames::{EventParts, encode_event};
use serde_json::value::RawValue;

use crate::wire;

/// An event of a room's offset sequence, as this node holds and delivers it.
#[derive(Debug)]
pub struct RoomEvent {
    /// The room.
    pub room: RoomName,
    /// Offset in the room.
    pub offset: u64,
    /// The room's epoch.
    pub epoch: Arc<str>,
    /// The message id (empty for events built from a frame alone).
    pub id: Arc<str>,
    /// The `/ws` WebSocket frame of the `event`.
    pub frame: Bytes,
    /// Connections of this user do not get it.
    pub exclude_user: Option<Arc<str>>,
    /// When the node received it (for the fan-out latency histogram).
    pub received: Instant,
    /// The Socket.IO encoding, made by the first Socket.IO member that needs it.
    socketio: OnceLock<Bytes>,
}

/// The parts of a published event, borrowed from wherever it came from.
#[derive(Debug, Clone, Copy)]
pub struct PublishedEvent<'a> {
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

impl RoomEvent {
    /// The event `e` of `room`, received at `received`, with its `/ws` frame encoded.
    pub fn new(room: &RoomName, e: &PublishedEvent<'_>, received: Instant) -> Arc<Self> {
        let frame = wire::text(&encode_event(EventParts {
            room: room.as_str(),
            event: e.event,
            data: e.data,
            id: Some(e.id),
            position: Some((e.offset, e.epoch)),
            from: None,
        }));
        let exclude_user = e.exclude_user.map(Arc::from);
        Self::build(room, e.offset, Arc::from(e.epoch), Arc::from(e.id), frame, exclude_user, received)
    }

    fn build(
        room: &RoomName,
        offset: u64,
        epoch: Arc<str>,
        id: Arc<str>,
        frame: Bytes,
        exclude_user: Option<Arc<str>>,
        received: Instant,
    ) -> Arc<Self> {
        Arc::new(Self {
            room: room.clone(),
            offset,
            epoch,
            id,
            frame,
            exclude_user,
            received,
            socketio: OnceLock::new(),
        })
    }

    /// An event whose `/ws` frame is already built.
    pub fn from_frame(
        room: &RoomName,
        offset: u64,
        epoch: Arc<str>,
        frame: Bytes,
        exclude_user: Option<Arc<str>>,
        received: Instant,
    ) -> Arc<Self> {
        Self::build(room, offset, epoch, Arc::from(""), frame, exclude_user, received)
    }

    /// The Socket.IO encoding, made by `encode` the first time it is asked for.
    pub fn socketio(&self, encode: impl FnOnce(&Self) -> Bytes) -> &Bytes {
        self.socketio.get_or_init(|| encode(self))
    }

    /// Whether `user`'s connections are kept from it.
    pub fn excludes(&self, user: &str) -> bool {
        self.exclude_user.as_deref() == Some(user)
    }
}

/// An ephemeral `emit` from one member to the others of a room: no offset, no history.
#[derive(Debug)]
pub struct Emitted {
    /// The room.
    pub room: RoomName,
    /// Event name.
    pub event: Box<str>,
    /// The emitting user.
    pub from: Box<str>,
    /// Event data, JSON.
    pub data: Box<RawValue>,
    /// The `/ws` WebSocket frame of the `event`.
    pub frame: Bytes,
    /// When the node received it.
    pub received: Instant,
    socketio: OnceLock<Bytes>,
}

impl Emitted {
    /// The emit of `event` with `data` by `from` into `room`, with its `/ws` frame encoded.
    pub fn new(room: &RoomName, event: &str, data: &RawValue, from: &str, received: Instant) -> Arc<Self> {
        let frame = wire::text(&encode_event(EventParts {
            room: room.as_str(),
            event,
            data,
            id: None,
            position: None,
            from: Some(from),
        }));
        Arc::new(Self {
            room: room.clone(),
            event: event.into(),
            from: from.into(),
            data: data.to_owned(),
            frame,
            received,
            socketio: OnceLock::new(),
        })
    }

    /// The Socket.IO encoding, made by `encode` the first time it is asked for.
    pub fn socketio(&self, encode: impl FnOnce(&Self) -> Bytes) -> &Bytes {
        self.socketio.get_or_init(|| encode(self))
    }
}
