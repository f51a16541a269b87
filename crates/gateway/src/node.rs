//! [`Node`]: the state one gateway node shares between its connections, its API and shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::task::TaskTracker;

use crate::auth::TokenVerifier;
use crate::broker::Broker;
use crate::config::{Config, ConfigError};
use crate::connection::handle::{ConnId, ConnectionHandle};
use crate::fanout::Fanout;
use crate::rooms::RoomRegistry;

/// Everything a node's tasks share.
#[derive(Debug)]
pub struct Node {
    /// The node's configuration.
    pub config: Config,
    /// Verifies connection and subscription tokens.
    pub verifier: TokenVerifier,
    /// Local room map.
    pub registry: Arc<RoomRegistry>,
    /// Where events are ordered and delivered.
    pub broker: Broker,
    /// The Prometheus recorder's handle, rendered by `/metrics`.
    pub metrics: PrometheusHandle,
    /// Connection tasks; shutdown waits for them (axum does not track upgraded sockets).
    pub tasks: TaskTracker,
    // std mutex: insert and remove only, never held across `.await`.
    live: Mutex<HashMap<ConnId, Arc<ConnectionHandle>>>,
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
        let metrics = crate::metrics::install(&config.node_id);
        let registry = RoomRegistry::new();
        let broker = Broker::connect(&config, Fanout::new(Arc::clone(&registry))).await?;
        Ok(Arc::new(Self {
            config,
            verifier,
            registry,
            broker,
            metrics,
            tasks: TaskTracker::new(),
            live: Mutex::default(),
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

    /// Records an authenticated connection, for drain.
    pub fn register(&self, conn: &Arc<ConnectionHandle>) {
        self.lock_live().insert(conn.id, Arc::clone(conn));
    }

    /// Forgets a connection that ended.
    pub fn unregister(&self, id: ConnId) {
        self.lock_live().remove(&id);
    }

    /// A snapshot of every authenticated connection.
    pub fn live_connections(&self) -> Vec<Arc<ConnectionHandle>> {
        self.lock_live().values().cloned().collect()
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the node as draining: `/readyz` fails and new sockets are refused.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the node should get traffic.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.broker.is_ready()
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Arc<ConnectionHandle>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.node.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}
