//! [`Member`]: a local connection as the room registry and every other task reach it.
//!
//! It is what fan-out queues into and what the API or a drain closes. Which rooms it is in is
//! not here: the [`RoomRegistry`](super::RoomRegistry) alone keeps that, in both directions. A
//! member is of one face: `/ws` (frames are written as they come) or Socket.IO, whose session
//! is told of what needs its own handling (a `left`) through [`Notices`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;
use roomcast_proto::frames::LeftReason;

use crate::close::CloseReason;
use crate::event::{Emitted, RoomEvent};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Outgoing, PushError};

/// Identifies a connection within the node.
pub type ConnId = u64;

/// What a face other than `/ws` handles itself instead of writing a frame.
pub trait Notices: Send + Sync + std::fmt::Debug {
    /// The member is out of `room` (it is already removed from the registry).
    fn left(&self, room: &RoomName, reason: LeftReason);
}

/// A live connection as seen from outside its own task.
#[derive(Debug)]
pub struct Member {
    /// Connection id, unique within the node.
    pub id: ConnId,
    /// The user (`sub`) the connection belongs to.
    pub user: Arc<str>,
    /// Its send queue and close switch (shared with its transport).
    pub outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    notices: Option<Arc<dyn Notices>>,
    /// The presence rooms whose `join` / `leave` frames it asked for. Kept here, not in its
    /// memberships, so that the wish is in place before its join finishes and the `ok` goes
    /// out: no frame can fall between the two. Empty (no allocation) for most connections.
    presence: Mutex<HashSet<RoomName>>,
}

impl Member {
    /// A `/ws` member with an empty outbox of `queue_bytes`.
    pub fn new(id: ConnId, user: Arc<str>, queue_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            id,
            user,
            outbox: Arc::new(Outbox::new(queue_bytes)),
            metrics,
            notices: None,
            presence: Mutex::default(),
        }
    }

    /// A member of another face, queueing into its transport's `outbox` and told of `left`s
    /// through `notices`.
    pub fn with_face(
        id: ConnId,
        user: Arc<str>,
        outbox: Arc<Outbox>,
        metrics: Arc<Metrics>,
        notices: Arc<dyn Notices>,
    ) -> Self {
        Self { id, user, outbox, metrics, notices: Some(notices), presence: Mutex::default() }
    }

    /// Sets whether the member gets `room`'s `join` / `leave` frames; returns what it was.
    pub fn watch_presence(&self, room: &RoomName, on: bool) -> bool {
        let mut rooms = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        if on { !rooms.insert(room.clone()) } else { rooms.remove(room) }
    }

    /// Whether the member asked for `room`'s `join` / `leave` frames.
    pub fn watches_presence(&self, room: &RoomName) -> bool {
        let rooms = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        !rooms.is_empty() && rooms.contains(room)
    }

    /// Queues bytes ready for this member's transport; a full queue closes it as too slow.
    pub fn send(&self, frame: Bytes, received: Instant) {
        self.push(Outgoing::Ready(frame), received);
    }

    /// Queues an event of a room's sequence.
    pub fn send_event(&self, event: &Arc<RoomEvent>) {
        self.push(Outgoing::Event(Arc::clone(event)), event.received);
    }

    /// Queues an ephemeral emit.
    pub fn send_emit(&self, emit: &Arc<Emitted>) {
        self.push(Outgoing::Emit(Arc::clone(emit)), emit.received);
    }

    /// Tells the member it is out of `room`: `/ws` gets `frame` (the `left`), another face its
    /// notice.
    pub fn left(&self, room: &RoomName, reason: LeftReason, frame: &Bytes) {
        match &self.notices {
            Some(notices) => notices.left(room, reason),
            None => self.send(frame.clone(), Instant::now()),
        }
    }

    /// Queues anything; a full queue closes the connection as too slow.
    pub fn push(&self, item: Outgoing, received: Instant) {
        if let Err(PushError::Full) = self.outbox.push(item, received) {
            self.close(CloseReason::SlowConsumer);
        }
    }

    /// Starts closing the connection; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let slow = reason == CloseReason::SlowConsumer;
        if self.outbox.close(reason) && slow {
            self.metrics.slow_consumer_closed();
        }
    }
}
