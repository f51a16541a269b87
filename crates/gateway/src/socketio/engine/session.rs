//! [`EngineSession`]: one Engine.IO session, whichever transport carries it, and the task
//! that runs it.
//!
//! The session's [`Outbox`] is what every transport drains: a long-polling GET takes what is
//! queued, the WebSocket writer writes it as frames. What the client sends arrives on a bounded
//! channel (a polling POST or the WebSocket reader waits when it is full, so a client cannot
//! queue without limit) and the session task hands it to its [`Handler`]. The task also owns
//! the heartbeat: a ping every `ping_interval`, and the session ends when a pong does not come
//! within `ping_timeout`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::inbound::Inbound;
use super::packet::Packet;
use crate::close::CloseReason;
use crate::event::{Emitted, RoomEvent};
use crate::outbox::{Outbox, Outgoing};

/// The Engine.IO settings of a server.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Interval of server pings.
    pub ping_interval: Duration,
    /// How long a pong may take.
    pub ping_timeout: Duration,
    /// Largest payload (polling body, or WebSocket message) a client may send.
    pub max_payload: usize,
    /// Bytes a session may have queued for its client (over it: closed as too slow).
    pub queue_bytes: usize,
    /// How long a client may take to connect a namespace (Socket.IO's `connectTimeout`).
    pub connect_timeout: Duration,
}

/// Which transport carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// A WebSocket probed, the client not yet switched (`5`).
    Upgrading,
    /// WebSocket.
    WebSocket,
}

/// How a face encodes the shared items of its outbox (room events, emits) as Engine.IO text
/// packets. Set when the session becomes a member of rooms.
pub trait Encode: Send + Sync {
    /// Appends `event` as one text packet.
    fn event(&self, event: &RoomEvent, out: &mut Vec<u8>);
    /// Appends `emit` as one text packet.
    fn emit(&self, emit: &Emitted, out: &mut Vec<u8>);

    /// A last text packet to send before the transport closes for `reason`, if any.
    fn farewell(&self, reason: &CloseReason) -> Option<Bytes> {
        let _ = reason;
        None
    }
}

/// One queued item as its transport writes it.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    /// A text packet.
    Text(&'a [u8]),
    /// A binary packet.
    Binary(&'a [u8]),
    /// A whole WebSocket control frame (WebSocket transports only).
    Control(&'a [u8]),
}

/// What a session's transports and its task share.
pub struct EngineSession {
    /// The session id.
    pub sid: Arc<str>,
    /// What is queued for the client, and the session's close switch.
    pub outbox: Arc<Outbox>,
    inbound: Inbound,
    state: Mutex<State>,
    /// Wakes a poll that waits for an upgrade to end.
    switched: Notify,
    /// Fires when a poll carried the session's end.
    told: Notify,
    encoder: RwLock<Option<Arc<dyn Encode>>>,
}

impl std::fmt::Debug for EngineSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSession").field("sid", &self.sid).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    transport: Transport,
    /// A long-polling GET is waiting.
    polling: bool,
    /// A poll already answered with the session's end; later ones are refused.
    end_told: bool,
    /// The face's last packet (see [`Encode::farewell`]) was taken by a transport.
    farewell_taken: bool,
    /// When the pong to the last ping is due, if it has not come.
    pong_due: Option<Instant>,
}

impl EngineSession {
    /// A session on `transport`.
    pub fn new(sid: Arc<str>, transport: Transport, queue_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            sid,
            outbox: Arc::new(Outbox::new(queue_bytes)),
            inbound: Inbound::default(),
            state: Mutex::new(State {
                transport,
                polling: false,
                end_told: false,
                farewell_taken: false,
                pong_due: None,
            }),
            switched: Notify::new(),
            told: Notify::new(),
            encoder: RwLock::new(None),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.state().transport
    }

    /// Starts a long-polling GET; `false` when one is already waiting (the client broke the
    /// protocol) or the session is not on polling (unless it is `closing` mid-upgrade).
    pub fn begin_poll(&self, closing: bool) -> bool {
        let mut state = self.state();
        let on_polling = state.transport == Transport::Polling || (closing && state.transport == Transport::Upgrading);
        if state.polling || !on_polling {
            return false;
        }
        state.polling = true;
        true
    }

    /// Whether a long-polling GET is waiting.
    pub fn is_polling(&self) -> bool {
        self.state().polling
    }

    /// Ends a long-polling GET; `told_end` when it carried the session's end.
    pub fn end_poll(&self, told_end: bool) {
        let mut state = self.state();
        state.polling = false;
        state.end_told |= told_end;
        drop(state);
        if told_end {
            self.told.notify_waiters();
        }
    }

    /// Waits (at most `limit`) until a poll has carried the session's end.
    pub async fn end_delivered(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let told = self.told.notified();
            if self.end_told() || Instant::now() >= deadline {
                return;
            }
            let _ = tokio::time::timeout_at(deadline, told).await;
        }
    }

    /// Whether a closing polling session still owes its client more than a bare close: queued
    /// packets, the face's last one, or the close that follows a poll that carried them.
    pub fn owes(&self) -> bool {
        let state = self.state();
        if state.end_told {
            return false;
        }
        if state.farewell_taken {
            return true;
        }
        drop(state);
        self.outbox.has_frames()
            || self.outbox.close_reason().is_some_and(|reason| self.farewell_for(&reason).is_some())
    }

    /// Whether the pong to the last ping is overdue (the session's task ends it at once; a
    /// request that comes first must not find it alive).
    pub fn pong_overdue(&self) -> bool {
        self.state().pong_due.is_some_and(|due| due <= Instant::now())
    }

    fn set_pong_due(&self, due: Option<Instant>) {
        self.state().pong_due = due;
    }

    /// Whether a poll already carried the session's end.
    pub fn end_told(&self) -> bool {
        self.state().end_told
    }

    /// Marks a WebSocket probed (`2probe` answered); `false` unless the session is on polling.
    pub fn begin_upgrade(&self) -> bool {
        let mut state = self.state();
        if state.transport != Transport::Polling {
            return false;
        }
        state.transport = Transport::Upgrading;
        drop(state);
        // A poll waiting now ends with a noop, so that the client stops polling.
        self.switched.notify_waiters();
        true
    }

    /// Resolves the next time the transport changes (call `enable` on it to register at once).
    pub fn transport_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.switched.notified()
    }

    /// Switches to WebSocket (`5`), or back to polling when the probe failed.
    pub fn finish_upgrade(&self, upgraded: bool) {
        self.state().transport = if upgraded { Transport::WebSocket } else { Transport::Polling };
        self.switched.notify_waiters();
    }

    /// Waits (at most `limit`) for an upgrade in progress to end; returns the transport then.
    pub async fn upgrade_settled(&self, limit: Duration) -> Transport {
        let deadline = Instant::now() + limit;
        loop {
            let switched = self.switched.notified();
            let transport = self.transport();
            if transport != Transport::Upgrading || Instant::now() >= deadline {
                return transport;
            }
            let _ = tokio::time::timeout_at(deadline, switched).await;
        }
    }

    /// Hands a client packet to the session task; waits while the task is behind. `false` when
    /// the session has ended.
    pub async fn deliver(&self, packet: Packet) -> bool {
        self.inbound.send(packet).await
    }

    /// Sets how shared items are encoded (a face sets it when the session joins rooms).
    pub fn set_encoder(&self, encoder: Arc<dyn Encode>) {
        *self.encoder.write().unwrap_or_else(|e| e.into_inner()) = Some(encoder);
    }

    fn encoder(&self) -> Option<Arc<dyn Encode>> {
        self.encoder.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues a text packet.
    pub fn send_text(&self, text: String) {
        self.push(Outgoing::Ready(text.into()));
    }

    /// Queues a binary packet.
    pub fn send_binary(&self, data: Bytes) {
        self.push(Outgoing::Binary(data));
    }

    fn push(&self, item: Outgoing) {
        if let Err(crate::outbox::PushError::Full) = self.outbox.push(item, std::time::Instant::now()) {
            self.outbox.close(CloseReason::SlowConsumer);
        }
    }

    /// The last text packet before the session closes for `reason` (see [`Encode::farewell`]),
    /// once: the transport that takes it writes it.
    pub fn take_farewell(&self, reason: &CloseReason) -> Option<Bytes> {
        if std::mem::replace(&mut self.state().farewell_taken, true) {
            return None;
        }
        self.farewell_for(reason)
    }

    fn farewell_for(&self, reason: &CloseReason) -> Option<Bytes> {
        self.encoder()?.farewell(reason)
    }

    /// How this session's items go on the wire, for one batch (the face's encoder is looked up
    /// once per batch, not per item).
    pub fn encoding(&self) -> Encoding {
        Encoding(self.encoder())
    }
}

/// A session's encoder as one batch uses it (see [`EngineSession::encoding`]).
pub struct Encoding(Option<Arc<dyn Encode>>);

impl std::fmt::Debug for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoding").field("face", &self.0.is_some()).finish()
    }
}

impl Encoding {
    /// How `item` goes on the wire; shared items are encoded into `scratch`.
    pub fn wire<'a>(&self, item: &'a Outgoing, scratch: &'a mut Vec<u8>) -> Option<Wire<'a>> {
        match item {
            Outgoing::Ready(text) => Some(Wire::Text(text)),
            Outgoing::Binary(data) => Some(Wire::Binary(data)),
            Outgoing::Control(frame) => Some(Wire::Control(frame)),
            Outgoing::Event(e) => {
                self.0.as_ref()?.event(e, scratch);
                Some(Wire::Text(scratch))
            }
            Outgoing::Emit(e) => {
                self.0.as_ref()?.emit(e, scratch);
                Some(Wire::Text(scratch))
            }
        }
    }
}

/// What a session's packets mean: Socket.IO, or an echo for the Engine.IO test suite.
pub trait Handler: Send + Sync + 'static {
    /// The handler's state for one session.
    type Conn: Send + 'static;

    /// Whether new sessions are taken now (`false` while the node drains: 503).
    fn accepting(&self) -> bool {
        true
    }

    /// A new session (its open packet is already queued).
    fn open(&self, session: &Arc<EngineSession>, request: &super::RequestInfo) -> Self::Conn;

    /// A text message (`4...`) from the client; `Err` ends the session.
    fn message(&self, conn: &mut Self::Conn, text: String) -> impl Future<Output = Result<(), CloseReason>> + Send;

    /// A binary message from the client; `Err` ends the session.
    fn binary(&self, conn: &mut Self::Conn, data: Bytes) -> impl Future<Output = Result<(), CloseReason>> + Send;

    /// When [`Self::deadline_passed`] must run next, if ever (a connect timeout, a token's expiry).
    fn deadline(&self, conn: &Self::Conn) -> Option<Instant>;

    /// The deadline passed; `Err` ends the session. It must move the deadline.
    fn deadline_passed(&self, conn: &mut Self::Conn) -> impl Future<Output = Result<(), CloseReason>> + Send;

    /// Something the face itself queued for the session's task (a `left`), woken through the
    /// returned notifier; `None` when it never queues anything.
    fn wake(&self, conn: &Self::Conn) -> Option<Arc<Notify>>;

    /// The notifier of [`Self::wake`] fired.
    fn woken(&self, conn: &mut Self::Conn) -> impl Future<Output = Result<(), CloseReason>> + Send;
}

/// Runs the session until it closes; returns why.
pub async fn run<H: Handler>(
    session: Arc<EngineSession>,
    handler: &H,
    mut conn: H::Conn,
    config: &EngineConfig,
) -> CloseReason {
    // However the task ends (a panic in a handler included), the transports hear of it: a
    // deliver after this returns false, as a dropped channel's sender did.
    let _closes_inbound = CloseOnDrop(&session.inbound);
    let mut ping = tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_due: Option<Instant> = None;
    let wake = handler.wake(&conn);
    let far = || Instant::now() + Duration::from_secs(86_400);
    loop {
        let deadline = handler.deadline(&conn);
        let woken = async {
            match &wake {
                Some(notify) => notify.notified().await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            biased;
            () = session.outbox.closing() => break,
            () = tokio::time::sleep_until(pong_due.unwrap_or_else(far)), if pong_due.is_some() => {
                Err(CloseReason::IdleTimeout)
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(far)), if deadline.is_some() => {
                handler.deadline_passed(&mut conn).await
            }
            () = woken => handler.woken(&mut conn).await,
            _ = ping.tick() => {
                session.send_text("2".to_owned());
                let due = *pong_due.get_or_insert_with(|| Instant::now() + config.ping_timeout);
                session.set_pong_due(Some(due));
                Ok(())
            }
            packet = session.inbound.recv() => match packet {
                None => Err(CloseReason::ConnectionLost),
                Some(Packet::Pong(_)) => {
                    pong_due = None;
                    session.set_pong_due(None);
                    Ok(())
                }
                Some(Packet::Close) => Err(CloseReason::ClientClosed(1000)),
                Some(Packet::Message(text)) => handler.message(&mut conn, text).await,
                Some(Packet::Binary(data)) => handler.binary(&mut conn, data).await,
                Some(Packet::Ping(_) | Packet::Upgrade | Packet::Noop) => Ok(()),
            },
        };
        if let Err(reason) = result {
            session.outbox.close(reason);
            break;
        }
    }
    drop(conn);
    session.outbox.close_reason().unwrap_or(CloseReason::ConnectionLost)
}

/// Closes a session's inbound queue when its task ends, however it ends.
struct CloseOnDrop<'a>(&'a Inbound);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}
