//! [`Node`]: the state one gateway node shares between its connections, its API and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio_util::task::TaskTracker;

use roomcast_publisher::presence::{NodePresence, PresenceSettings};

use crate::auth::TokenVerifier;
use crate::broker::Broker;
use crate::config::{Config, ConfigError};
use crate::events::receipts::Receipts;
use crate::events::{Events, MemoryQueue, Source, WebhookRelay};
use crate::fanout::Fanout;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::rooms::{ConnId, RoomRegistry};

/// Everything a node's tasks share.
#[derive(Debug)]
pub struct Node {
    /// The node's configuration.
    pub config: Config,
    /// Verifies connection and subscription tokens.
    pub verifier: TokenVerifier,
    /// The node's connections and their rooms.
    pub registry: Arc<RoomRegistry>,
    /// Where events are ordered and delivered.
    pub broker: Broker,
    /// This node's metrics (its own recorder, rendered by `/metrics`).
    pub metrics: Arc<Metrics>,
    /// Who is in which room and who is online, counting every node.
    pub presence: Arc<Presence>,
    /// What the backend hears back.
    pub events: Events,
    /// Delivery receipts.
    pub receipts: Arc<Receipts>,
    /// The node's own background tasks (presence, events), stopped with it.
    background: Vec<tokio::task::AbortHandle>,
    /// Connection tasks; shutdown waits for them (axum does not track upgraded sockets).
    pub tasks: TaskTracker,
    next_id: AtomicU64,
    sockets: AtomicUsize,
    draining: AtomicBool,
}

/// One slot of the node's connection limit, held by a socket from upgrade to close.
#[derive(Debug)]
pub struct SocketSlot {
    node: Arc<Node>,
    /// Whether the node was over its limit when this socket arrived (it is closed with 4029).
    pub over_limit: bool,
}

impl Node {
    /// Builds the node's state from a checked configuration; in Redis mode, connects to Redis.
    pub async fn new(config: Config) -> Result<Arc<Self>, ConfigError> {
        let verifier = TokenVerifier::new(&config.jwt)?;
        let metrics = Arc::new(Metrics::new(&config.node_id));
        let registry = RoomRegistry::new(Arc::clone(&metrics));
        let fanout = Fanout::new(Arc::clone(&registry), Arc::clone(&metrics));
        let broker = Broker::connect(&config, fanout.clone()).await?;
        let mut background = Vec::new();
        let (events, relay_source) = match (config.events.enabled(), broker.publisher()) {
            (false, _) => (Events::disabled(), None),
            (true, Some(publisher)) => {
                let settings = PresenceSettings {
                    ttl: config.presence.ttl,
                    grace: config.presence.offline_grace,
                    write_events: true,
                    stream_len: config.events.stream_len,
                };
                let writer = NodePresence::new(publisher.clone(), &config.node_id, settings);
                let (events, task) = Events::stream(writer, config.events.webhook_queue, Arc::clone(&metrics));
                background.push(tokio::spawn(task).abort_handle());
                let source = Source::Stream { publisher: publisher.clone(), node: config.node_id.clone() };
                (events, Some(source))
            }
            (true, None) => {
                let queue =
                    Arc::new(MemoryQueue::new(config.events.webhook_queue, &config.node_id, Arc::clone(&metrics)));
                (Events::memory(Arc::clone(&queue), Arc::clone(&metrics)), Some(Source::Memory(queue)))
            }
        };
        if let Some(relay) = relay_source.and_then(|s| WebhookRelay::new(&config.events, s, Arc::clone(&metrics))) {
            background.push(tokio::spawn(relay.run()).abort_handle());
        }
        let presence = Presence::new(&config, broker.publisher(), events.clone(), fanout.clone());
        background.push(tokio::spawn(Arc::clone(&presence).run()).abort_handle());
        let receipts = Receipts::new(config.events.receipt_rooms.clone(), config.events.receipt_window, events.clone());
        fanout.set_receipts(Arc::clone(&receipts));
        background.push(tokio::spawn(Arc::clone(&receipts).run()).abort_handle());
        Ok(Arc::new(Self {
            config,
            verifier,
            registry,
            broker,
            metrics,
            presence,
            events,
            receipts,
            background,
            tasks: TaskTracker::new(),
            next_id: AtomicU64::new(1),
            sockets: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }))
    }

    /// Takes a socket slot; `over_limit` is set when the node already holds `max_connections`.
    pub fn take_slot(self: &Arc<Self>) -> SocketSlot {
        let before = self.sockets.fetch_add(1, Ordering::AcqRel);
        SocketSlot { node: Arc::clone(self), over_limit: before >= self.config.max_connections }
    }

    /// A new connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the node as draining: `/readyz` fails and new sockets are refused.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.node.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}
