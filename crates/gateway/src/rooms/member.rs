//! [`Member`]: a local connection as the room registry and every other task reach it.
//!
//! It is what fan-out queues frames into and what the API or a drain closes. Which rooms it is
//! in is not here: the [`RoomRegistry`](super::RoomRegistry) alone keeps that, in both
//! directions.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::close::CloseReason;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, PushError};

/// Identifies a connection within the node.
pub type ConnId = u64;

/// A live connection as seen from outside its own task.
#[derive(Debug)]
pub struct Member {
    /// Connection id, unique within the node.
    pub id: ConnId,
    /// The user (`sub`) the connection belongs to.
    pub user: Arc<str>,
    /// Its send queue and close switch.
    pub outbox: Outbox,
    metrics: Arc<Metrics>,
}

impl Member {
    /// A member with an empty outbox of `queue_bytes`.
    pub fn new(id: ConnId, user: Arc<str>, queue_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Self { id, user, outbox: Outbox::new(queue_bytes), metrics }
    }

    /// Queues a frame; a full queue closes the connection as too slow.
    pub fn send(&self, frame: Bytes, received: Instant) {
        if let Err(PushError::Full) = self.outbox.push(frame, received) {
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
