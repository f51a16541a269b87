//! [`App`]: what a Socket.IO server does with its namespaces' connects and events, and the
//! [`Ctx`] through which it answers.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::engine::{EngineSession, RequestInfo};
use super::packet;
use crate::close::CloseReason;

/// An event from a client.
#[derive(Debug)]
pub struct Event {
    /// Its name.
    pub name: String,
    /// Its arguments (binary ones as `{"_placeholder":true,"num":N}`).
    pub args: Vec<Box<RawValue>>,
    /// The ack id it asks an answer for.
    pub ack: Option<u64>,
    /// Its binary attachments, in order.
    pub attachments: Vec<Bytes>,
}

/// A refused namespace connect: `CONNECT_ERROR` with this message and data.
#[derive(Debug, Clone)]
pub struct Refused {
    /// `err.message` on the client.
    pub message: String,
    /// `err.data` on the client.
    pub data: Option<serde_json::Value>,
}

/// What a session's sockets may use: its engine session, the request that opened it, and the
/// notifier that wakes its task.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The Engine.IO session.
    pub session: Arc<EngineSession>,
    /// The request that opened it.
    pub request: RequestInfo,
    /// Wakes the session's task to call [`App::woken`].
    pub wake: Arc<Notify>,
}

impl Ctx {
    /// Emits `array` (`["name", args...]`) with `attachments` in `namespace`.
    pub fn emit(&self, namespace: &str, array: &str, attachments: &[Bytes]) {
        self.session.send_text(packet::message(&packet::event(namespace, None, attachments.len(), array)));
        for data in attachments {
            self.session.send_binary(data.clone());
        }
    }

    /// Answers the event that asked with ack `id`, with the arguments `array` (`[args...]`).
    pub fn ack(&self, namespace: &str, id: u64, array: &str, attachments: &[Bytes]) {
        self.session.send_text(packet::message(&packet::ack(namespace, id, attachments.len(), array)));
        for data in attachments {
            self.session.send_binary(data.clone());
        }
    }
}

/// A Socket.IO application: the namespaces it serves and what it does in them.
pub trait App: Send + Sync + 'static {
    /// The state of one connected namespace of one session.
    type Socket: Send + 'static;

    /// Whether clients may connect `namespace`.
    fn serves(&self, namespace: &str) -> bool;

    /// Whether new sessions are taken now.
    fn accepting(&self) -> bool {
        true
    }

    /// A client connects `namespace` with `auth` (the CONNECT payload). `Ok` carries the socket
    /// and the CONNECT reply's `pid` (connection-state recovery), if any; the app queues what
    /// must follow the reply through `after_connect`.
    fn connect(
        &self,
        ctx: &Ctx,
        namespace: &str,
        auth: Option<&RawValue>,
    ) -> impl Future<Output = Result<(Self::Socket, Option<String>), Refused>> + Send;

    /// The CONNECT reply is queued; what must follow it goes now.
    fn after_connect(&self, ctx: &Ctx, namespace: &str, socket: &mut Self::Socket);

    /// An event in a connected namespace; `Err` ends the session.
    fn event(
        &self,
        ctx: &Ctx,
        namespace: &str,
        socket: &mut Self::Socket,
        event: Event,
    ) -> impl Future<Output = Result<(), CloseReason>> + Send;

    /// When [`Self::deadline_passed`] must run for `socket`, if ever.
    fn deadline(&self, socket: &Self::Socket) -> Option<Instant>;

    /// `socket`'s deadline passed; `Err` ends the session. It must move the deadline (or the
    /// task would come back at once).
    fn deadline_passed(&self, ctx: &Ctx, socket: &mut Self::Socket) -> Result<(), CloseReason>;

    /// The session's notifier fired: the app handles what it queued for `socket`.
    fn woken(&self, ctx: &Ctx, socket: &mut Self::Socket) -> impl Future<Output = Result<(), CloseReason>> + Send;
}
