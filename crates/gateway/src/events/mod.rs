//! [`Events`]: what the backend hears back from the gateway, and the sinks it goes to.
//!
//! An event is a JSON object with a `type`: `user_online` and `user_offline` (online status),
//! `subscribed` and `unsubscribed` (a user's first and last connection in a room, opt-in per
//! room prefix), `emit` (a client `emit` of a reported name) and `delivered` (coalesced
//! delivery receipts). Online status transitions are written by the Redis scripts that decide
//! them, in the same atomic step (see `roomcast_publisher::presence`); everything else is
//! written here, by the node that saw it.
//!
//! Sinks: with Redis, the stream `<prefix>roomcast:events`, written in batches by one task per
//! node from a bounded queue (full: the newest event is dropped and counted); webhooks are then
//! relayed from the stream by one node at a time. On the embedded broker, a bounded queue in
//! the node feeds the webhook (full: the oldest event is dropped and counted).
//!
//! # Layout
//! - `mod.rs`: the events and the node's handle on its sinks.
//! - `queue.rs`: the embedded broker's queue; `webhook.rs`: the webhook relay;
//!   `receipts.rs`: delivery receipts, coalesced.

mod queue;
pub mod receipts;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use roomcast_publisher::presence::NodePresence;
use serde_json::json;
use tokio::sync::mpsc;

pub use queue::MemoryQueue;
pub use webhook::{Source, WebhookRelay, sign};

use crate::config::EventsConfig;
use crate::metrics::Metrics;

/// Most events a node writes to the stream in one round trip.
const STREAM_BATCH: usize = 500;

/// One event for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEvent {
    /// Its `type` (one of [`crate::metrics::BACKEND_EVENT_TYPES`]).
    pub kind: &'static str,
    /// The whole event, a JSON object whose `type` is `kind`.
    pub json: String,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl BackendEvent {
    fn new(kind: &'static str, mut body: serde_json::Value) -> Self {
        body["type"] = json!(kind);
        body["at"] = json!(now_ms());
        Self { kind, json: body.to_string() }
    }

    /// A user's first connection anywhere (the embedded broker's; Redis scripts write theirs).
    pub fn user_online(user: &str, seq: u64, node: &str) -> Self {
        Self::new("user_online", json!({"user": user, "seq": seq, "node": node}))
    }

    /// A user's last connection gone, after the grace period.
    pub fn user_offline(user: &str, seq: u64, last_seen: u64) -> Self {
        Self::new("user_offline", json!({"user": user, "seq": seq, "last_seen": last_seen}))
    }

    /// A user's first connection in `room`, counting every node.
    pub fn subscribed(room: &str, user: &str, node: &str) -> Self {
        Self::new("subscribed", json!({"room": room, "user": user, "node": node}))
    }

    /// A user's last connection in `room` gone, counting every node.
    pub fn unsubscribed(room: &str, user: &str, node: &str) -> Self {
        Self::new("unsubscribed", json!({"room": room, "user": user, "node": node}))
    }

    /// A client `emit` of a reported event name.
    pub fn emit(room: &str, user: &str, event: &str, data: &serde_json::value::RawValue) -> Self {
        let data: serde_json::Value = serde_json::from_str(data.get()).unwrap_or(serde_json::Value::Null);
        Self::new("emit", json!({"room": room, "user": user, "event": event, "data": data}))
    }

    /// A user's devices received the room's events up to `offset` (the message ids among them
    /// that this node saw, oldest first).
    pub fn delivered(room: &str, user: &str, offset: u64, ids: &[Arc<str>]) -> Self {
        let ids: Vec<&str> = ids.iter().map(|id| &**id).collect();
        Self::new("delivered", json!({"room": room, "user": user, "offset": offset, "ids": ids}))
    }
}

/// A node's handle on its event sinks; cheap to clone, and a no-op when no sink is set.
#[derive(Debug, Clone, Default)]
pub struct Events {
    sink: Option<Sink>,
}

#[derive(Debug, Clone)]
enum Sink {
    /// Embedded broker: straight into the webhook's queue.
    Memory(Arc<MemoryQueue>, Arc<Metrics>),
    /// Redis: a bounded queue of the task writing the stream.
    Stream(mpsc::Sender<BackendEvent>, Arc<Metrics>),
}

impl Events {
    /// No sink: every event is dropped silently.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Events into `queue` (the embedded broker's webhook queue).
    pub fn memory(queue: Arc<MemoryQueue>, metrics: Arc<Metrics>) -> Self {
        Self { sink: Some(Sink::Memory(queue, metrics)) }
    }

    /// Events into the stream through `presence`, from a queue of `capacity`; returns the task
    /// that writes them (it ends when every handle is dropped).
    pub fn stream(
        presence: NodePresence,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { sink: Some(Sink::Stream(tx, Arc::clone(&metrics))) }, write_stream(presence, rx, metrics))
    }

    /// Whether events go anywhere.
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Hands `event` to the sink without waiting.
    pub fn send(&self, event: BackendEvent) {
        match &self.sink {
            None => {}
            Some(Sink::Memory(queue, metrics)) => {
                metrics.backend_events(event.kind, 1);
                queue.push(event);
            }
            Some(Sink::Stream(tx, metrics)) if tx.try_send(event).is_err() => {
                metrics.backend_events_dropped("node", 1);
            }
            Some(Sink::Stream(..)) => {}
        }
    }
}

/// Writes queued events to the stream in batches, retrying a failed batch with a backoff (the
/// queue fills meanwhile, and then drops what comes).
async fn write_stream(presence: NodePresence, mut rx: mpsc::Receiver<BackendEvent>, metrics: Arc<Metrics>) {
    let mut batch = Vec::with_capacity(STREAM_BATCH);
    while rx.recv_many(&mut batch, STREAM_BATCH).await > 0 {
        let rows: Vec<(String, String)> = batch.iter().map(|e| (e.kind.to_owned(), e.json.clone())).collect();
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = presence.write_events(&rows).await {
            tracing::warn!(error = %e, events = rows.len(), "cannot write events to the stream; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        for event in &batch {
            metrics.backend_events(event.kind, 1);
        }
        batch.clear();
    }
}

/// Whether `config` reports `emit`s of `event` to the backend.
pub fn reports_emit(config: &EventsConfig, event: &str) -> bool {
    config.enabled() && config.reported_emits.iter().any(|e| e == event)
}
