//! [`ConnectionHandle`]: the part of a connection that other tasks reach (fan-out, the API).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;

use crate::close::CloseReason;
use crate::outbox::{Outbox, PushError};
use crate::rooms::Membership;

/// Identifies a connection within the node.
pub type ConnId = u64;

/// A live connection as seen from outside its own task.
#[derive(Debug)]
pub struct ConnectionHandle {
    /// Connection id, unique within the node.
    pub id: ConnId,
    /// The user (`sub`) the connection belongs to.
    pub user: Arc<str>,
    /// Its send queue and close switch.
    pub outbox: Outbox,
    /// The rooms it is in. Dropping a [`Membership`] leaves its room, so removing an entry
    /// here is how a connection leaves, whoever asks.
    rooms: Mutex<HashMap<RoomName, Membership>>,
}

impl ConnectionHandle {
    /// A handle with an empty outbox of `queue_bytes` and no rooms.
    pub fn new(id: ConnId, user: Arc<str>, queue_bytes: usize) -> Self {
        Self { id, user, outbox: Outbox::new(queue_bytes), rooms: Mutex::default() }
    }

    /// Queues a frame; a full queue closes the connection as too slow.
    pub fn send(&self, frame: Bytes, received: Instant) {
        if let Err(PushError::Full) = self.outbox.push(frame, received) {
            self.close(CloseReason::SlowConsumer);
        }
    }

    /// Starts closing the connection; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        if reason == CloseReason::SlowConsumer && self.outbox.close_reason().is_none() {
            crate::metrics::slow_consumer_closed();
        }
        self.outbox.close(reason);
    }

    /// Whether the connection is in `room`.
    pub fn is_in(&self, room: &RoomName) -> bool {
        self.lock_rooms().contains_key(room)
    }

    /// How many rooms the connection is in.
    pub fn room_count(&self) -> usize {
        self.lock_rooms().len()
    }

    /// Names of the rooms the connection is in.
    pub fn room_names(&self) -> Vec<RoomName> {
        self.lock_rooms().keys().cloned().collect()
    }

    /// Records a membership; an existing one for the same room is replaced (and left).
    pub fn add_membership(&self, membership: Membership) {
        let old = self.lock_rooms().insert(membership.room().clone(), membership);
        // Leave outside the lock: leaving takes the registry's lock.
        drop(old);
    }

    /// Leaves `room`; returns whether the connection was in it.
    pub fn leave(&self, room: &RoomName) -> bool {
        let membership = self.lock_rooms().remove(room);
        membership.is_some()
    }

    /// Leaves every room; called once when the connection ends.
    pub fn leave_all(&self) {
        let all = std::mem::take(&mut *self.lock_rooms());
        drop(all);
    }

    fn lock_rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Membership>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}
