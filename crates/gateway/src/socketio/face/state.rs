//! [`FaceState`]: what a Socket.IO session's transports, its rooms and its task share: where
//! the client stands in each of its rooms (the session's *slots*), the notices the registry
//! leaves for it, and how its items are encoded.
//!
//! Socket.IO's connection-state recovery sends back one string: the last argument of the last
//! event the client got. So every published event's last argument is the client's position in
//! all of its rooms at once: the offsets of the session's slots, in slot order, base 36,
//! joined with `.` (`"4.h.0"`). It is written when the event is written, so it is exact; the
//! rooms and epochs behind the slots are in the session's record, which any node can read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use roomcast_proto::RoomName;
use roomcast_proto::frames::{LeftReason, Position, ServerFrame};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::Notify;

use super::super::engine::session::Encode;
use crate::broker::JoinReply;
use crate::close::CloseReason;
use crate::connection::session::Replies;
use crate::event::{Emitted, RoomEvent};
use crate::rooms::{Member, Notices};
use crate::wire;

/// Where the client stands in one of its rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The room.
    pub room: String,
    /// The epoch of `offset`.
    pub epoch: String,
    /// The last offset the client got (or was positioned at).
    pub offset: u64,
    /// Whether the session is in the room (a slot outlives an unsubscribe: positions are
    /// numbered by slot).
    pub live: bool,
}

/// A session's record: enough for any node to restore it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The session's user; a restore for another user is refused.
    pub user: String,
    /// Its slots, with the position each had when it was last written (the client's offsets
    /// are newer).
    pub slots: Vec<Slot>,
}

#[derive(Debug, Default)]
struct Inner {
    record: Record,
    index: HashMap<String, usize>,
    /// The record changed since it was last saved.
    dirty: bool,
    notices: Vec<(RoomName, LeftReason)>,
    /// Rooms the server itself is subscribing again (after `left: resubscribe`).
    rejoining: Vec<RoomName>,
}

/// The shared state of one Socket.IO session.
#[derive(Debug)]
pub struct FaceState {
    inner: Mutex<Inner>,
    /// Wakes the session's task.
    pub wake: Arc<Notify>,
}

impl FaceState {
    /// The state of a session of `user`, woken through `wake`.
    pub fn new(user: &str, wake: Arc<Notify>) -> Arc<Self> {
        let record = Record { user: user.to_owned(), slots: Vec::new() };
        Arc::new(Self { inner: Mutex::new(Inner { record, ..Inner::default() }), wake })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the client at `offset` of `epoch` in `room` (a new slot if it has none) and marks
    /// the room live.
    pub fn position(&self, room: &str, epoch: &str, offset: u64) {
        let mut inner = self.lock();
        let slot = Slot { room: room.to_owned(), epoch: epoch.to_owned(), offset, live: true };
        match inner.index.get(room).copied() {
            Some(i) => inner.record.slots[i] = slot,
            None => {
                let i = inner.record.slots.len();
                inner.record.slots.push(slot);
                inner.index.insert(room.to_owned(), i);
            }
        }
        inner.dirty = true;
    }

    /// Marks `room` no longer joined.
    pub fn gone(&self, room: &str) {
        let mut inner = self.lock();
        if let Some(&i) = inner.index.get(room)
            && inner.record.slots[i].live
        {
            inner.record.slots[i].live = false;
            inner.dirty = true;
        }
    }

    /// The live slot of `room`.
    pub fn slot(&self, room: &str) -> Option<Slot> {
        let inner = self.lock();
        inner.index.get(room).map(|&i| inner.record.slots[i].clone()).filter(|s| s.live)
    }

    /// The record to save, if it changed since the last call.
    pub fn take_dirty(&self) -> Option<Record> {
        let mut inner = self.lock();
        std::mem::take(&mut inner.dirty).then(|| inner.record.clone())
    }

    /// The record as it stands.
    pub fn record(&self) -> Record {
        self.lock().record.clone()
    }

    /// Starts a subscribe the server makes itself; its reply says whether the client must
    /// reload the room.
    pub fn rejoining(&self, room: &RoomName) {
        self.lock().rejoining.push(room.clone());
    }

    /// The notices left since the last call.
    pub fn take_notices(&self) -> Vec<(RoomName, LeftReason)> {
        std::mem::take(&mut self.lock().notices)
    }

    /// The client's positions in every slot, as the last argument of an event: `"4.h.0"`.
    fn vector(inner: &Inner, out: &mut Vec<u8>) {
        out.push(b'"');
        for (i, slot) in inner.record.slots.iter().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            push_base36(out, slot.offset);
        }
        out.push(b'"');
    }
}

/// Appends `n` in base 36.
fn push_base36(out: &mut Vec<u8>, mut n: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 13];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Reads a position vector back: one offset per slot.
pub fn parse_vector(text: &str) -> Option<Vec<u64>> {
    text.split('.').map(|part| u64::from_str_radix(part, 36).ok()).collect()
}

impl Notices for FaceState {
    fn left(&self, room: &RoomName, reason: LeftReason) {
        self.lock().notices.push((room.clone(), reason));
        self.wake.notify_one();
    }
}

/// The parts of an `/ws` event frame a Socket.IO packet needs.
#[derive(Deserialize)]
struct FrameParts<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// `42["name",data` of a room event: shared by every Socket.IO member of the node.
fn event_prefix(event: &RoomEvent) -> Bytes {
    let Ok(parts) = serde_json::from_slice::<FrameParts<'_>>(wire::payload(&event.frame)) else {
        return Bytes::new();
    };
    let mut out = Vec::with_capacity(event.frame.len());
    out.extend_from_slice(b"42[");
    out.extend_from_slice(parts.event.get().as_bytes());
    out.push(b',');
    out.extend_from_slice(parts.data.get().as_bytes());
    out.into()
}

impl Encode for FaceState {
    fn event(&self, event: &RoomEvent, out: &mut Vec<u8>) {
        let prefix = event.socketio(event_prefix);
        out.extend_from_slice(prefix);
        let mut inner = self.lock();
        if let Some(&i) = inner.index.get(event.room.as_str()) {
            let slot = &mut inner.record.slots[i];
            if *slot.epoch == *event.epoch {
                slot.offset = slot.offset.max(event.offset);
            }
        }
        out.push(b',');
        Self::vector(&inner, out);
        out.push(b']');
    }

    fn emit(&self, emit: &Emitted, out: &mut Vec<u8>) {
        out.extend_from_slice(emit.socketio(|e| {
            let name = serde_json::to_string(&*e.event).unwrap_or_default();
            let meta = serde_json::json!({"from": &*e.from, "room": e.room.as_str()});
            format!("42[{name},{},{meta}]", e.data.get()).into()
        }));
    }

    fn farewell(&self, reason: &CloseReason) -> Option<Bytes> {
        // socket.io-client comes back by itself after a closed transport; these mean "do not".
        matches!(reason, CloseReason::Forbidden | CloseReason::Disconnected(1000 | 4003))
            .then(|| Bytes::from_static(b"41"))
    }
}

/// A Socket.IO session's answers: the ack of the event that asked, `roomcast:error` for a
/// failure nobody asked about, `roomcast:reload` when a room the server subscribed again lost
/// its continuity.
#[derive(Debug)]
pub struct FaceReplies {
    /// The session's state.
    pub state: Arc<FaceState>,
}

impl Replies for FaceReplies {
    fn reply(&self, member: &Member, frame: &ServerFrame) {
        let id = match frame {
            ServerFrame::Ok(ok) => ok.id,
            ServerFrame::Error { id, .. } | ServerFrame::Pong { id } => *id,
            _ => None,
        };
        let json = String::from_utf8(frame.to_json()).unwrap_or_default();
        let text = match (id, frame) {
            (Some(id), _) => format!("43{id}[{json}]"),
            (None, ServerFrame::Error { .. }) => format!(r#"42["roomcast:error",{json}]"#),
            (None, _) => return,
        };
        member.send(text.into(), std::time::Instant::now());
    }

    fn joined(&self, member: &Member, room: &RoomName, reply: &JoinReply, since: Option<&Position>) {
        let at = match (reply.recovered, since) {
            (Some(true), Some(since)) => since.clone(),
            _ => reply.position.clone(),
        };
        self.state.position(room.as_str(), &at.epoch, at.offset);
        let mut inner = self.state.lock();
        let Some(i) = inner.rejoining.iter().position(|r| r == room) else { return };
        inner.rejoining.swap_remove(i);
        drop(inner);
        if reply.recovered == Some(false) {
            let body = serde_json::json!({"room": room.as_str(), "offset": at.offset, "epoch": at.epoch});
            member.send(format!(r#"42["roomcast:reload",{body}]"#).into(), std::time::Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_the_vector() {
        let state = FaceState::new("u1", Arc::new(Notify::new()));
        state.position("user:u1", "E", 4);
        state.position("dialog:1", "F", 17);
        state.position("org:o", "G", 0);
        let mut out = Vec::new();
        FaceState::vector(&state.lock(), &mut out);
        assert_eq!(out, br#""4.h.0""#);
        assert_eq!(parse_vector("4.h.0"), Some(vec![4, 17, 0]));
        assert_eq!(parse_vector("4.!"), None);
        let mut big = Vec::new();
        push_base36(&mut big, u64::MAX);
        assert_eq!(parse_vector(std::str::from_utf8(&big).unwrap()), Some(vec![u64::MAX]));
    }
}
