//! The two servers the Socket.IO project's protocol suites expect: an Engine.IO echo and a
//! Socket.IO app with namespaces `/` and `/custom`. Shared by the example and the gateway's own
//! tests of the same behaviours (`tests/it/socketio_protocol.rs`).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use roomcast_gateway::close::CloseReason;
use roomcast_gateway::socketio::engine::{EngineConfig, EngineSession, Handler, RequestInfo};
use roomcast_gateway::socketio::{App, Ctx, Event, Refused};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The settings the suites expect.
pub fn config() -> EngineConfig {
    EngineConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        queue_bytes: 4 << 20,
        connect_timeout: Duration::from_millis(1000),
    }
}

/// `/engine.io/`: every message back as it came.
pub struct Echo;

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
pub struct Conformance;

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
