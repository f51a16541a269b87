//! Socket.IO v5 over Engine.IO v4: the protocol `socket.io-client` speaks, served on the
//! gateway's own listener at `/socket.io/`.
//!
//! [`SocketIo`] is the Engine.IO [`Handler`](engine::Handler) that turns a session's messages
//! into namespace connects and events for an [`App`]: the gateway's own face ([`face`]: the
//! same verification, rooms, limits and metrics as `/ws`), or the conformance example's echo.
//! Packets that break the protocol close the session, as Socket.IO's server does; a session
//! that connects no namespace within `connect_timeout` is closed.
//!
//! # Layout
//! - `engine/`: Engine.IO sessions, long-polling and WebSocket transports, heartbeats.
//! - `packet.rs`: Socket.IO packets; `app.rs`: [`App`], what a server does with them.
//! - `mod.rs`: namespaces, binary attachments and the connect timeout.
//! - `face/`: roomcast as a Socket.IO server.

pub mod app;
pub mod engine;
pub mod events;
pub mod face;
pub mod packet;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use app::{App, Ctx, Event, Refused};
use engine::{EngineConfig, EngineSession, RequestInfo};
use packet::{Kind, Packet};

use crate::close::CloseReason;

/// A Socket.IO server for `A`.
#[derive(Debug)]
pub struct SocketIo<A> {
    app: A,
    config: EngineConfig,
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
struct Pending {
    namespace: String,
    kind: Kind,
    id: Option<u64>,
    data: Option<Box<RawValue>>,
    wanted: usize,
    attachments: Vec<Bytes>,
}

/// One session's Socket.IO state.
#[derive(Debug)]
pub struct Conn<S> {
    ctx: Ctx,
    sockets: HashMap<String, S>,
    pending: Option<Pending>,
    /// Until a namespace is connected: when the session is closed for not connecting one.
    connect_by: Option<Instant>,
}

impl<A: App> SocketIo<A> {
    /// Socket.IO for `app`, with the Engine.IO settings its connect timeout comes from.
    pub fn new(app: A, config: EngineConfig) -> Self {
        Self { app, config }
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    async fn packet(
        &self,
        conn: &mut Conn<A::Socket>,
        p: Packet<'_>,
        attachments: Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let namespace = p.namespace.to_owned();
        match p.kind {
            Kind::Connect => {
                if conn.sockets.contains_key(&namespace) {
                    return Ok(());
                }
                if !self.app.serves(&namespace) {
                    let refused = packet::connect_error(&namespace, "Invalid namespace", None);
                    conn.ctx.session.send_text(packet::message(&refused));
                    return Ok(());
                }
                match self.app.connect(&conn.ctx, &namespace, p.data).await {
                    Ok((mut socket, pid)) => {
                        let sid = base64url(&rand::random::<[u8; 15]>());
                        let reply = packet::connect(&namespace, &sid, pid.as_deref());
                        conn.ctx.session.send_text(packet::message(&reply));
                        self.app.after_connect(&conn.ctx, &namespace, &mut socket);
                        conn.sockets.insert(namespace, socket);
                        conn.connect_by = None;
                    }
                    Err(Refused { message, data }) => {
                        let refused = packet::connect_error(&namespace, &message, data);
                        conn.ctx.session.send_text(packet::message(&refused));
                    }
                }
                Ok(())
            }
            Kind::Disconnect => {
                conn.sockets.remove(&namespace);
                Ok(())
            }
            Kind::Event | Kind::BinaryEvent => {
                let (name, args) = p.event().map_err(|_| CloseReason::ProtocolViolation)?;
                let Some(socket) = conn.sockets.get_mut(&namespace) else { return Ok(()) };
                let event =
                    Event { name, args: args.into_iter().map(ToOwned::to_owned).collect(), ack: p.id, attachments };
                self.app.event(&conn.ctx, &namespace, socket, event).await
            }
            // This server emits no events that ask for an ack.
            Kind::Ack | Kind::BinaryAck | Kind::ConnectError => Ok(()),
        }
    }
}

impl<A: App> engine::Handler for SocketIo<A> {
    type Conn = Conn<A::Socket>;

    fn accepting(&self) -> bool {
        self.app.accepting()
    }

    fn open(&self, session: &Arc<EngineSession>, request: &RequestInfo) -> Self::Conn {
        let ctx = Ctx { session: Arc::clone(session), request: request.clone(), wake: Arc::new(Notify::new()) };
        Conn {
            ctx,
            sockets: HashMap::new(),
            pending: None,
            connect_by: Some(Instant::now() + self.config.connect_timeout),
        }
    }

    async fn message(&self, conn: &mut Self::Conn, text: String) -> Result<(), CloseReason> {
        tracing::trace!(sid = %conn.ctx.session.sid, len = text.len(), "socket.io packet");
        if conn.pending.is_some() {
            // Text before the attachments a binary packet announced.
            return Err(CloseReason::ProtocolViolation);
        }
        let p = Packet::parse(&text).map_err(|e| {
            tracing::debug!(sid = %conn.ctx.session.sid, error = %e, "closing a Socket.IO session");
            CloseReason::ProtocolViolation
        })?;
        if p.attachments > 0 {
            conn.pending = Some(Pending {
                namespace: p.namespace.to_owned(),
                kind: p.kind,
                id: p.id,
                data: p.data.map(ToOwned::to_owned),
                wanted: p.attachments,
                attachments: Vec::with_capacity(p.attachments),
            });
            return Ok(());
        }
        self.packet(conn, p, Vec::new()).await
    }

    async fn binary(&self, conn: &mut Self::Conn, data: Bytes) -> Result<(), CloseReason> {
        let Some(pending) = conn.pending.as_mut() else { return Err(CloseReason::ProtocolViolation) };
        pending.attachments.push(data);
        if pending.attachments.len() < pending.wanted {
            return Ok(());
        }
        let Some(pending) = conn.pending.take() else { return Ok(()) };
        let p = Packet {
            kind: pending.kind,
            namespace: &pending.namespace,
            id: pending.id,
            attachments: pending.wanted,
            data: pending.data.as_deref(),
        };
        self.packet(conn, p, pending.attachments).await
    }

    fn deadline(&self, conn: &Self::Conn) -> Option<Instant> {
        let sockets = conn.sockets.values().filter_map(|s| self.app.deadline(s));
        conn.connect_by.into_iter().chain(sockets).min()
    }

    async fn deadline_passed(&self, conn: &mut Self::Conn) -> Result<(), CloseReason> {
        if conn.connect_by.is_some_and(|at| at <= Instant::now()) {
            return Err(CloseReason::AuthTimeout);
        }
        for socket in conn.sockets.values_mut() {
            if self.app.deadline(socket).is_some_and(|at| at <= Instant::now()) {
                self.app.deadline_passed(&conn.ctx, socket)?;
            }
        }
        Ok(())
    }

    fn wake(&self, conn: &Self::Conn) -> Option<Arc<Notify>> {
        Some(Arc::clone(&conn.ctx.wake))
    }

    async fn woken(&self, conn: &mut Self::Conn) -> Result<(), CloseReason> {
        for socket in conn.sockets.values_mut() {
            self.app.woken(&conn.ctx, socket).await?;
        }
        Ok(())
    }
}

/// URL-safe base64 without padding (socket ids).
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
