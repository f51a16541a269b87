//! A server on the gateway's own Engine.IO and Socket.IO layers that behaves as the Socket.IO
//! project's protocol test suites expect, so they can be run against it unchanged:
//! `socketio/engine.io-protocol` (`test-suite/`, against `/engine.io/`, which echoes what it
//! gets) and `socketio/socket.io-protocol` (`test-suite/`, against `/socket.io/`, namespaces
//! `/` and `/custom`: emits `auth` with the handshake's auth, answers `message` with
//! `message-back` and acks `message-with-ack`, attachments included). Settings as the suites
//! want: pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1000000, connectTimeout 1000 ms.
//!
//! `cargo run -p roomcast-gateway --example socketio_conformance` (listens on 127.0.0.1:3000,
//! or `PORT`), then `npm test` in each suite's folder.

mod apps;

use apps::{Conformance, Echo};
use roomcast_gateway::origin::AllowedOrigins;
use roomcast_gateway::socketio::SocketIo;
use roomcast_gateway::socketio::engine::{self, EngineServer};
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let config = apps::config();
    let tasks = TaskTracker::new();
    let echo = EngineServer::new(config.clone(), Echo, AllowedOrigins::any(), tasks.clone(), String::new());
    let io = EngineServer::new(
        config.clone(),
        SocketIo::new(Conformance, config),
        AllowedOrigins::any(),
        tasks,
        String::new(),
    );
    let app = engine::router("/engine.io/", echo).merge(engine::router("/socket.io/", io));
    let port = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000u16);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "socketio conformance server listening");
    axum::serve(listener, app).await?;
    Ok(())
}
