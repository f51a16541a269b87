//! Engine.IO v4, the transport layer under Socket.IO: sessions over HTTP long-polling and
//! WebSocket, the upgrade from one to the other, and heartbeats.
//!
//! [`EngineServer`] answers one path (`/socket.io/`, or `/engine.io/` for the protocol's own
//! test suite): a GET or POST with `transport=polling` is a poll or a push, a GET with
//! `transport=websocket` an upgrade. Requests it refuses get 400 with Engine.IO's
//! `{"code":N,"message":...}` (0 unknown transport, 1 unknown session, 2 bad handshake method,
//! 3 bad request, 5 unsupported protocol version); a push over `max_payload` gets 413.
//!
//! # Layout
//! - `mod.rs`: the server, its session table and request dispatch.
//! - `packet.rs`: packets and polling payloads; `session.rs`: a session and its task;
//!   `inbound.rs`: the client packets its transports hand to the task.
//! - `polling.rs`: long-polling GET and POST; `websocket.rs`: the WebSocket transport.
//! - `forward.rs`: requests for sessions held by other nodes.

pub mod forward;
mod inbound;
pub mod packet;
mod polling;
pub mod session;
mod websocket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use serde::Deserialize;
use tokio_util::task::TaskTracker;

pub use session::{EngineConfig, EngineSession, Handler, Transport};

use crate::origin::AllowedOrigins;

/// How long a session its client closed stays, for a GET the close overtook.
const CLIENT_CLOSE_LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// How long a closed polling session that owes packets waits for its client's next GETs (a
/// client polls again as soon as a GET is answered).
const OWED_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// What a handler may read of the request that opened a session.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// `?token=` of the request.
    pub token: Option<String>,
    /// The bearer token of an `Authorization` header.
    pub bearer: Option<String>,
}

/// The query of every Engine.IO request (`EIO`, `transport`, `sid`, and a `token`).
#[derive(Debug, Deserialize)]
pub struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
}

/// An Engine.IO server: its sessions and their handler.
pub struct EngineServer<H: Handler> {
    /// Settings of every session.
    pub config: EngineConfig,
    /// What the sessions' packets mean.
    pub handler: H,
    sessions: Mutex<HashMap<Arc<str>, Arc<EngineSession>>>,
    origins: AllowedOrigins,
    tasks: TaskTracker,
    /// Added to every sid this server makes (names the node that holds the session).
    sid_suffix: String,
    /// Reaches the node holding a session this one does not (Redis mode).
    forwarder: Option<forward::Forwarder>,
}

impl<H: Handler> std::fmt::Debug for EngineServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineServer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A refused request, as Engine.IO answers it.
pub(super) fn refuse(status: StatusCode, code: u8, message: &str) -> Response {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl<H: Handler> EngineServer<H> {
    /// A server of `handler`'s sessions; browsers' polling requests are allowed from `origins`,
    /// session tasks run on `tasks` (so a drain waits for them), and sids end with `sid_suffix`.
    pub fn new(
        config: EngineConfig,
        handler: H,
        origins: AllowedOrigins,
        tasks: TaskTracker,
        sid_suffix: String,
    ) -> Arc<Self> {
        Arc::new(Self { config, handler, sessions: Mutex::default(), origins, tasks, sid_suffix, forwarder: None })
    }

    /// Like [`Self::new`], forwarding requests for other nodes' sessions with `forwarder`.
    pub fn with_forwarder(
        config: EngineConfig,
        handler: H,
        origins: AllowedOrigins,
        tasks: TaskTracker,
        sid_suffix: String,
        forwarder: forward::Forwarder,
    ) -> Arc<Self> {
        let forwarder = Some(forwarder);
        Arc::new(Self { config, handler, sessions: Mutex::default(), origins, tasks, sid_suffix, forwarder })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<EngineSession>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session `sid`, if it is alive here.
    pub fn session(&self, sid: &str) -> Option<Arc<EngineSession>> {
        self.table().get(sid).cloned()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.table().len()
    }

    /// A new session on `transport`: queues its open packet and starts its task.
    fn open(self: &Arc<Self>, transport: Transport, request: &RequestInfo) -> Arc<EngineSession> {
        let random: [u8; 15] = rand::random();
        let sid: Arc<str> = format!("{}{}", base64url(&random), self.sid_suffix).into();
        let session = EngineSession::new(Arc::clone(&sid), transport, self.config.queue_bytes);
        let upgrades: &[&str] = if transport == Transport::Polling { &["websocket"] } else { &[] };
        let c = &self.config;
        let millis = |d: std::time::Duration| d.as_millis() as u64;
        session.send_text(packet::open(&sid, upgrades, millis(c.ping_interval), millis(c.ping_timeout), c.max_payload));
        let conn = self.handler.open(&session, request);
        self.table().insert(Arc::clone(&sid), Arc::clone(&session));
        let server = Arc::clone(self);
        let task_session = Arc::clone(&session);
        self.tasks.spawn(async move {
            let reason = session::run(Arc::clone(&task_session), &server.handler, conn, &server.config).await;
            tracing::debug!(sid = %task_session.sid, reason = reason.label(), "engine.io session ended");
            // Gone at once, so a later GET is refused (400), as Engine.IO's own server does;
            // except that a client's own close (a POSTed `1`) that overtook its GET still lets
            // that GET end with a noop for a moment, and that a polling session the server
            // closed while it owed packets (a `41` that says "do not come back") waits for the
            // GETs that carry them and then its close.
            let linger = match reason {
                crate::close::CloseReason::ClientClosed(_) => CLIENT_CLOSE_LINGER,
                _ if task_session.transport() != Transport::WebSocket && task_session.owes() => OWED_LINGER,
                _ => std::time::Duration::ZERO,
            };
            task_session.end_delivered(linger).await;
            server.table().remove(&task_session.sid);
        });
        session
    }

    /// Answers one Engine.IO request.
    pub async fn handle(
        self: Arc<Self>,
        method: Method,
        uri: Uri,
        query: EngineQuery,
        headers: HeaderMap,
        upgrade: Option<IncomingUpgrade>,
        body: Body,
    ) -> Response {
        let origin = headers.get(header::ORIGIN).cloned();
        if origin.is_some() && !self.origins.allows(origin.as_ref()) {
            return refuse(StatusCode::FORBIDDEN, 4, "Forbidden");
        }
        if let (Some(forwarder), Some(sid)) = (&self.forwarder, query.sid.as_deref())
            && self.session(sid).is_none()
            && let Some(to) = forwarder.holder(sid, &headers).await
        {
            // The holding node answers CORS itself.
            return match upgrade {
                Some(upgrade) if method == Method::GET => forwarder.websocket(to, &uri, &headers, upgrade),
                _ => forwarder.http(to, method, &uri, headers, body).await,
            };
        }
        let mut response = self.dispatch(method, query, &headers, upgrade, body).await;
        if let Some(origin) = origin.filter(|_| response.status() != StatusCode::SWITCHING_PROTOCOLS) {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        response
    }

    async fn dispatch(
        self: &Arc<Self>,
        method: Method,
        query: EngineQuery,
        headers: &HeaderMap,
        upgrade: Option<IncomingUpgrade>,
        body: Body,
    ) -> Response {
        if method == Method::OPTIONS {
            let allow = [
                (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type, authorization"),
            ];
            return (StatusCode::NO_CONTENT, allow).into_response();
        }
        if query.eio.as_deref() != Some("4") {
            return refuse(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version");
        }
        let request = RequestInfo {
            token: query.token.clone(),
            bearer: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned()),
        };
        if query.sid.is_none() && !self.handler.accepting() {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, 3, "Node draining");
        }
        match (query.transport.as_deref(), query.sid.as_deref(), method, upgrade) {
            (Some("polling"), None, Method::GET, _) => {
                let session = self.open(Transport::Polling, &request);
                polling::poll(self, &session).await
            }
            (Some("polling"), None, _, _) => refuse(StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            (Some("polling"), Some(sid), Method::GET, _) => match self.session(sid) {
                Some(session) => polling::poll(self, &session).await,
                None => refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            },
            (Some("polling"), Some(sid), Method::POST, _) => match self.session(sid) {
                Some(session) => polling::push(self, &session, body).await,
                None => refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            },
            (Some("polling"), Some(_), _, _) => refuse(StatusCode::BAD_REQUEST, 3, "Bad request"),
            (Some("websocket"), sid, Method::GET, Some(upgrade)) => {
                websocket::accept(Arc::clone(self), sid.map(str::to_owned), upgrade, request)
            }
            (Some("websocket"), _, _, _) => refuse(StatusCode::BAD_REQUEST, 3, "Bad request"),
            _ => refuse(StatusCode::BAD_REQUEST, 0, "Transport unknown"),
        }
    }
}

/// Engine.IO's axum handler for `server`'s path.
pub async fn route<H: Handler>(
    State(server): State<Arc<EngineServer<H>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<EngineQuery>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
    body: Body,
) -> Response {
    server.handle(method, uri, query, headers, upgrade.ok(), body).await
}

/// A router answering Engine.IO requests for `server` at `path` (e.g. `/socket.io/`).
pub fn router<H: Handler>(path: &str, server: Arc<EngineServer<H>>) -> axum::Router {
    axum::Router::new().route(path, axum::routing::any(route::<H>)).with_state(server)
}

/// URL-safe base64 without padding, for sids.
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
