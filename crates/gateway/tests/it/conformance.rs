//! Harness of the Engine.IO and Socket.IO protocol tests: the servers of
//! `examples/socketio_conformance` (the same code, not a copy) on a free port, and small
//! polling and WebSocket clients.
#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../../examples/socketio_conformance/apps.rs"]
mod apps;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use roomcast_gateway::origin::AllowedOrigins;
use roomcast_gateway::socketio::SocketIo;
use roomcast_gateway::socketio::engine::{self, EngineServer};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::task::TaskTracker;

use crate::common::{PATIENCE, http};

/// The suites' servers, on one address.
pub struct Servers {
    pub addr: SocketAddr,
    /// `/engine.io/`: echoes.
    pub echo: Arc<EngineServer<apps::Echo>>,
}

/// The suites' server: `/engine.io/` echoes, `/socket.io/` runs the conformance app.
pub async fn start() -> SocketAddr {
    servers().await.addr
}

/// Like [`start`], with a handle on the echo server's sessions.
pub async fn servers() -> Servers {
    let config = apps::config();
    let tasks = TaskTracker::new();
    let echo = EngineServer::new(config.clone(), apps::Echo, AllowedOrigins::any(), tasks.clone(), String::new());
    let io = SocketIo::new(apps::Conformance, config.clone());
    let io = EngineServer::new(config, io, AllowedOrigins::any(), tasks, String::new());
    let app = engine::router("/engine.io/", Arc::clone(&echo)).merge(engine::router("/socket.io/", io));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Servers { addr, echo }
}

impl Servers {
    /// Waits (bounded) until a GET of session `sid` is waiting on the server.
    pub async fn poll_waiting(&self, sid: &str) {
        let waiting = async || self.echo.session(sid).is_some_and(|s| s.is_polling());
        roomcast_testkit::eventually("the poll to be waiting", waiting).await;
    }
}

/// `GET <path>?<query>`: status and body.
pub async fn get(addr: SocketAddr, path_query: &str) -> (u16, String) {
    http(addr, &format!("GET {path_query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).await
}

/// `<method> <path>?<query>` with `body`: status and body.
pub async fn send(addr: SocketAddr, method: &str, path_query: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "{method} {path_query} HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    http(addr, &String::from_utf8_lossy(&request)).await
}

/// Opens a polling session at `path` (`/engine.io/` or `/socket.io/`); returns its sid and
/// handshake.
pub async fn open_polling(addr: SocketAddr, path: &str) -> (String, Value) {
    let (status, body) = get(addr, &format!("{path}?EIO=4&transport=polling")).await;
    assert_eq!(status, 200, "{body}");
    let handshake: Value = serde_json::from_str(body.strip_prefix('0').expect("an open packet")).unwrap();
    (handshake["sid"].as_str().unwrap().to_owned(), handshake)
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket at `path_query`.
pub async fn ws(addr: SocketAddr, path_query: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}{path_query}")).await.expect("websocket connects").0
}

/// The next message (text or binary), or `None` once the socket is closed.
pub async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("a message within the patience window") {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(message)) => return Some(message),
        }
    }
}

/// The next text message; panics on anything else.
pub async fn text(ws: &mut Ws) -> String {
    match next(ws).await {
        Some(Message::Text(text)) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The next text message that is not an Engine.IO ping.
pub async fn text_not_ping(ws: &mut Ws) -> String {
    loop {
        let t = text(ws).await;
        if t != "2" {
            return t;
        }
    }
}

/// Sends a text message.
pub async fn say(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_owned())).await.unwrap();
}

/// Sends a binary message.
pub async fn say_binary(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::binary(data.to_vec())).await.unwrap();
}

/// Waits (bounded) for the server to end the socket.
pub async fn closed(ws: &mut Ws) {
    while next(ws).await.is_some() {}
}
