//! [`Outbox`]: a connection's bounded send queue, and the switch that closes the connection.
//!
//! Fan-out pushes ready-made frames without waiting; the connection's writer task takes every
//! frame waiting at once and writes them with one flush. The queue is bounded in bytes
//! (`send_queue_size`, default 1 MiB). When a push would pass the bound the connection is too
//! slow: it is closed with 4008 and its queued frames are dropped. No publisher and no other
//! member ever waits for a slow client.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::close::CloseReason;
use crate::event::{Emitted, RoomEvent};

/// One thing queued for a connection; the connection's transport encodes it for its face.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// Bytes the transport writes as they are: a whole WebSocket frame on `/ws`, an Engine.IO
    /// text packet for a Socket.IO session.
    Ready(Bytes),
    /// A binary Engine.IO packet (a Socket.IO attachment).
    Binary(Bytes),
    /// A whole WebSocket control frame (a pong), written as it is by WebSocket transports and
    /// skipped by long-polling.
    Control(Bytes),
    /// An event of a room's sequence, shared by every recipient on the node.
    Event(Arc<RoomEvent>),
    /// An ephemeral `emit`, shared likewise.
    Emit(Arc<Emitted>),
}

impl Outgoing {
    /// Bytes it takes in the queue's bound (its `/ws` size).
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Ready(b) | Outgoing::Binary(b) | Outgoing::Control(b) => b.len(),
            Outgoing::Event(e) => e.frame.len(),
            Outgoing::Emit(e) => e.frame.len(),
        }
    }

    /// Whether it takes no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the node received what it carries, for the latency histogram (`None` for replies).
    pub fn received(&self) -> Option<Instant> {
        match self {
            Outgoing::Event(e) => Some(e.received),
            Outgoing::Emit(e) => Some(e.received),
            Outgoing::Ready(_) | Outgoing::Binary(_) | Outgoing::Control(_) => None,
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is over its byte bound: the caller closes the connection as too slow.
    Full,
    /// The connection is closing; the frame is dropped.
    Closing,
}

/// What the writer takes out of the outbox in one go.
#[derive(Debug, Default)]
pub struct Batch {
    /// Frames to write, oldest first.
    pub frames: VecDeque<Outgoing>,
    /// When the oldest frame in `frames` was received by the node, for the latency histogram.
    pub oldest: Option<Instant>,
    /// Set when the connection is closing: write `frames` (if any), then this close.
    pub close: Option<CloseReason>,
}

/// A connection's bounded send queue.
#[derive(Debug)]
pub struct Outbox {
    // A std mutex: it is held only to push or swap a queue, never across an `.await`.
    state: Mutex<State>,
    /// Wakes the writer; `notify_one` keeps a permit, so a push before the writer waits is not lost.
    wake: Notify,
    /// Cancelled once, when the connection starts closing; the reader and writer watch it.
    closing: CancellationToken,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Outgoing>,
    bytes: usize,
    oldest: Option<Instant>,
    close: Option<CloseReason>,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` bytes of frames.
    pub fn new(capacity: usize) -> Self {
        Self { state: Mutex::default(), wake: Notify::new(), closing: CancellationToken::new(), capacity }
    }

    /// Queues `frame`, received by the node at `received`.
    ///
    /// A frame larger than the whole bound is accepted into an empty queue, so one large
    /// event never condemns a client that keeps up.
    pub fn push(&self, frame: Outgoing, received: Instant) -> Result<(), PushError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.close.is_some() {
            return Err(PushError::Closing);
        }
        if state.bytes + frame.len() > self.capacity && !state.frames.is_empty() {
            return Err(PushError::Full);
        }
        state.bytes += frame.len();
        state.oldest.get_or_insert(received);
        // Only the first frame of a batch wakes the writer: a non-empty queue means a wake is
        // already on its way, and the writer takes everything queued when it runs. Skipping the
        // redundant wakes matters when one event goes to thousands of outboxes in a row.
        let was_empty = state.frames.is_empty();
        state.frames.push_back(frame);
        drop(state);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Starts closing the connection for `reason`; the first reason wins. Returns whether this
    /// call set it.
    pub fn close(&self, reason: CloseReason) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.close.is_some() {
            return false;
        }
        if reason.drops_queue() {
            state.frames.clear();
            state.bytes = 0;
            state.oldest = None;
        }
        state.close = Some(reason);
        drop(state);
        self.closing.cancel();
        self.wake.notify_one();
        true
    }

    /// The reason the connection is closing, if it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).close.clone()
    }

    /// Resolves once the connection starts closing.
    pub async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Whether frames are queued.
    pub fn has_frames(&self) -> bool {
        !self.state.lock().unwrap_or_else(|e| e.into_inner()).frames.is_empty()
    }

    /// Waits until there is something to take (frames or a close).
    pub async fn ready(&self) {
        self.wake.notified().await;
    }

    /// Takes everything queued, swapping in `spare` (an empty queue whose capacity is reused).
    pub fn take(&self, spare: VecDeque<Outgoing>) -> Batch {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let frames = std::mem::replace(&mut state.frames, spare);
        state.bytes = 0;
        Batch { frames, oldest: state.oldest.take(), close: state.close.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Outgoing {
        Outgoing::Ready(Bytes::from(vec![0u8; n]))
    }

    #[test]
    fn bound_is_in_bytes_and_one_big_frame_fits_an_empty_queue() {
        let outbox = Outbox::new(100);
        let now = Instant::now();
        assert_eq!(outbox.push(frame(150), now), Ok(()));
        assert_eq!(outbox.push(frame(1), now), Err(PushError::Full));
        let batch = outbox.take(VecDeque::new());
        assert_eq!(batch.frames.len(), 1);
        assert_eq!(outbox.push(frame(60), now), Ok(()));
        assert_eq!(outbox.push(frame(40), now), Ok(()));
        assert_eq!(outbox.push(frame(1), now), Err(PushError::Full));
    }

    #[test]
    fn slow_consumer_close_drops_the_queue_but_others_keep_it() {
        let now = Instant::now();
        let slow = Outbox::new(100);
        slow.push(frame(10), now).unwrap();
        assert!(slow.close(CloseReason::SlowConsumer));
        assert!(!slow.close(CloseReason::Shutdown), "first reason wins");
        let batch = slow.take(VecDeque::new());
        assert!(batch.frames.is_empty());
        assert_eq!(batch.close, Some(CloseReason::SlowConsumer));
        assert_eq!(slow.push(frame(1), now), Err(PushError::Closing));

        let draining = Outbox::new(100);
        draining.push(frame(10), now).unwrap();
        draining.close(CloseReason::Shutdown);
        let batch = draining.take(VecDeque::new());
        assert_eq!(batch.frames.len(), 1);
        assert_eq!(batch.close, Some(CloseReason::Shutdown));
    }

    #[tokio::test]
    async fn a_batch_wakes_the_writer_once_and_the_next_batch_wakes_it_again() {
        let outbox = Outbox::new(100);
        let now = Instant::now();
        outbox.push(frame(1), now).unwrap();
        outbox.push(frame(1), now).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), outbox.ready()).await.unwrap();
        assert_eq!(outbox.take(VecDeque::new()).frames.len(), 2);
        outbox.push(frame(1), now).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), outbox.ready()).await.unwrap();
        assert_eq!(outbox.take(VecDeque::new()).frames.len(), 1);
    }

    #[tokio::test]
    async fn a_push_before_the_writer_waits_still_wakes_it() {
        let outbox = Outbox::new(100);
        outbox.push(frame(1), Instant::now()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), outbox.ready()).await.unwrap();
    }
}
