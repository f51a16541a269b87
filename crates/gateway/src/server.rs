//! [`Server`]: the HTTP router of a node, serving until shutdown, then draining.
//!
//! Shutdown stops accepting, fails `/readyz`, closes every client with 1012 spread evenly over
//! `drain_window` (so they do not all reconnect in the same second), and waits for the
//! connection tasks. axum's graceful shutdown does not wait for upgraded sockets, so the node
//! tracks them itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fastwebsockets::upgrade::IncomingUpgrade;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::close::CloseReason;
use crate::config::{Config, ConfigError};
use crate::listener;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::socketio::SocketIo;
use crate::socketio::engine::forward::{self, Forwarder};
use crate::socketio::engine::{self, EngineConfig, EngineServer};
use crate::socketio::face::Face;
use crate::socketio::store::SessionStore;

/// Time connection tasks get after the last 1012 before shutdown stops waiting for them.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// The Socket.IO face's Engine.IO server.
pub type SocketIoServer = EngineServer<SocketIo<Face>>;

/// A gateway node, ready to serve.
#[derive(Debug)]
pub struct Server {
    node: Arc<Node>,
    socketio: Arc<SocketIoServer>,
    /// Shared with other nodes: Socket.IO session records and node addresses.
    store: Arc<SessionStore>,
}

impl Server {
    /// Builds a node from a checked configuration; in Redis mode, connects to Redis first.
    pub async fn new(config: Config) -> Result<Self, ConfigError> {
        let node = Node::new(config).await?;
        let store = SessionStore::connect(&node.config).await.map_err(|e| ConfigError {
            setting: "ROOMCAST_REDIS_URL".to_owned(),
            message: format!("cannot connect: {}", crate::broker::causes(&e)),
        })?;
        let store = Arc::new(store);
        let face = Face::new(Arc::clone(&node), Arc::clone(&store));
        let c = &node.config;
        let engine = EngineConfig {
            ping_interval: c.ping_interval,
            // A client that answered nothing for `idle_timeout` is gone, on either face.
            ping_timeout: c.idle_timeout.saturating_sub(c.ping_interval),
            max_payload: c.max_message_size,
            queue_bytes: c.send_queue_size,
            connect_timeout: c.auth_timeout,
        };
        let io = SocketIo::new(face, engine.clone());
        let own_tag = forward::tag(&c.node_id);
        let forwarder = Forwarder::new(Arc::clone(&store), own_tag.clone());
        let suffix = format!(".{own_tag}");
        let (origins, tasks) = (c.allowed_origins.clone(), node.tasks.clone());
        let socketio = EngineServer::with_forwarder(engine, io, origins, tasks, suffix, forwarder);
        Ok(Self { node, socketio, store })
    }

    /// The Socket.IO face's server (its sessions).
    pub fn socketio(&self) -> &Arc<SocketIoServer> {
        &self.socketio
    }

    /// The node's shared state.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Serves on `listener` until `shutdown` resolves, then drains and returns.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let node = self.node;
        let upkeep = tokio::spawn(Metrics::upkeep(node.metrics.handle()));
        let stop = CancellationToken::new();
        let advertise = match (node.config.advertise, listener.local_addr()) {
            (Some(address), _) => Some(address),
            (None, Ok(local)) if !local.ip().is_unspecified() => Some(local),
            (None, _) => None,
        };
        let advertising = match advertise {
            Some(address) if self.store.is_shared() => {
                let tag = forward::tag(&node.config.node_id);
                Some(tokio::spawn(Forwarder::advertise(Arc::clone(&self.store), tag, address)))
            }
            Some(_) => None,
            None => {
                tracing::warn!(
                    "listening on every address: set ROOMCAST_ADVERTISE so other nodes can forward Socket.IO requests here"
                );
                None
            }
        };
        let routes = router(Arc::clone(&node)).merge(engine::router("/socket.io/", self.socketio));
        let http = tokio::spawn(listener::serve(listener, routes, node.config.header_read_timeout, stop.clone()));

        shutdown.await;
        let live = node.registry.connection_count();
        tracing::info!(connections = live, window_ms = node.config.drain_window.as_millis() as u64, "draining");
        // Keep answering HTTP while clients drain, so load balancers see /readyz fail (503)
        // rather than a refused connection; /ws answers 503 meanwhile.
        node.start_draining();
        drain(&node).await;
        // The closed connections' counts are written, and the node leaves presence at once
        // rather than after the ttl.
        node.presence.shutdown().await;
        stop.cancel();
        upkeep.abort();
        if let Some(advertising) = advertising {
            advertising.abort();
        }
        // HTTP requests in flight finish on their own; a stuck one does not hold the exit.
        let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
        Ok(())
    }
}

/// The node's routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/ws", get(websocket).route_layer(axum::middleware::from_fn(crate::handshake::require_upgrade)))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::api::routes())
        .with_state(node)
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    #[serde(default)]
    token: Option<String>,
}

async fn websocket(
    State(node): State<Arc<Node>>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade request\n").into_response();
    };
    let origin = headers.get(header::ORIGIN);
    if !node.config.allowed_origins.allows(origin) {
        // Refused before the upgrade: a page of another site gets a plain 403 and no socket.
        tracing::info!(origin = ?origin, "websocket refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    if node.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is draining\n").into_response();
    }
    let token = query.token.or_else(|| {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
    });
    let slot = node.take_slot();
    let (response, socket) = match upgrade.upgrade() {
        Ok(pair) => pair,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("upgrade failed: {e}\n")).into_response();
        }
    };
    node.tasks.spawn(crate::connection::run(Arc::clone(&node), socket, token, slot));
    response.into_response()
}

async fn readyz(State(node): State<Arc<Node>>) -> Response {
    if node.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else if !node.broker.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "broker not ready\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    // Sampled here rather than on every change: the scrape is when the value matters.
    node.metrics.broker_up(node.broker.is_ready());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.metrics.render()).into_response()
}

/// Closes every connection with 1012, spread evenly over the drain window, then waits for the
/// connection tasks (bounded).
async fn drain(node: &Node) {
    let window = node.config.drain_window;
    let start = Instant::now();
    let conns = node.registry.connections();
    let count = conns.len() as u32;
    for (i, conn) in (0u32..).zip(&conns) {
        let at = start + window.mul_f64(f64::from(i) / f64::from(count.max(1)));
        // Sleep only when the next close is at least a timer tick away, so thousands of
        // connections close in batches rather than one timer each.
        if at > Instant::now() + Duration::from_millis(2) {
            tokio::time::sleep_until(at).await;
        }
        conn.close(CloseReason::Shutdown);
    }
    // Sockets that were still authenticating when the drain began become sessions later.
    node.tasks.close();
    let deadline = Instant::now() + DRAIN_GRACE;
    loop {
        for conn in node.registry.connections() {
            conn.close(CloseReason::Shutdown);
        }
        if tokio::time::timeout(Duration::from_millis(100), node.tasks.wait()).await.is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(tasks = node.tasks.len(), "drain grace over; exiting with connections still open");
            break;
        }
    }
}
