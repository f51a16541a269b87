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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use roomcast_gateway::close::CloseReason;
use roomcast_gateway::origin::AllowedOrigins;
use roomcast_gateway::socketio::engine::{self, EngineConfig, EngineServer, EngineSession, Handler, RequestInfo};
use roomcast_gateway::socketio::{App, Ctx, Event, Refused, SocketIo};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// `/engine.io/`: every message back as it came.
struct Echo;

impl Handler for Echo {
    type Conn = Arc<EngineSession>;

    fn open(&self, session: &Arc<EngineSession>, _: &RequestInfo) -> Self::Conn {
        Arc::clone(session)
    }

    async fn message(&self, session: &mut Self::Conn, text: String) -> Result<(), CloseReason> {
        session.send_text(format!("4{text}"));
        Ok(())
    }

    async fn binary(&self, session: &mut Self::Conn, data: Bytes) -> Result<(), CloseReason> {
        session.send_binary(data);
        Ok(())
    }

    fn deadline(&self, _: &Self::Conn) -> Option<Instant> {
        None
    }

    async fn deadline_passed(&self, _: &mut Self::Conn) -> Result<(), CloseReason> {
        Ok(())
    }

    fn wake(&self, _: &Self::Conn) -> Option<Arc<Notify>> {
        None
    }

    async fn woken(&self, _: &mut Self::Conn) -> Result<(), CloseReason> {
        Ok(())
    }
}

/// `/socket.io/`: the behaviours the Socket.IO suite checks.
struct Conformance;

impl App for Conformance {
    /// The namespace's handshake auth, emitted back as `auth` once the CONNECT reply is queued.
    type Socket = String;

    fn serves(&self, namespace: &str) -> bool {
        matches!(namespace, "/" | "/custom")
    }

    async fn connect(&self, _: &Ctx, _: &str, auth: Option<&RawValue>) -> Result<(String, Option<String>), Refused> {
        Ok((auth.map_or("{}", RawValue::get).to_owned(), None))
    }

    fn after_connect(&self, ctx: &Ctx, namespace: &str, auth: &mut String) {
        // The suite waits for each message with a listener it adds after the previous one: two
        // packets that arrive in one read (the gateway writes a batch at once) would lose the
        // second. So `auth` goes a moment after the CONNECT reply, in a write of its own.
        let (ctx, namespace, auth) = (ctx.clone(), namespace.to_owned(), auth.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ctx.emit(&namespace, &format!(r#"["auth",{auth}]"#), &[]);
        });
    }

    async fn event(&self, ctx: &Ctx, namespace: &str, _: &mut String, event: Event) -> Result<(), CloseReason> {
        let args: Vec<&str> = event.args.iter().map(|a| a.get()).collect();
        match (event.name.as_str(), event.ack) {
            ("message", _) => {
                let array = format!(r#"["message-back"{}]"#, args.iter().map(|a| format!(",{a}")).collect::<String>());
                ctx.emit(namespace, &array, &event.attachments);
            }
            ("message-with-ack", Some(id)) => {
                ctx.ack(namespace, id, &format!("[{}]", args.join(",")), &event.attachments)
            }
            _ => {}
        }
        Ok(())
    }

    fn deadline(&self, _: &String) -> Option<Instant> {
        None
    }

    fn deadline_passed(&self, _: &Ctx, _: &mut String) -> Result<(), CloseReason> {
        Ok(())
    }

    async fn woken(&self, _: &Ctx, _: &mut String) -> Result<(), CloseReason> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let config = EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        queue_bytes: 4 << 20,
        connect_timeout: Duration::from_millis(1000),
    };
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
