//! [`Forwarder`]: no sticky sessions. A session's sid ends with the tag of the node that holds
//! it; a request for a session this node does not hold, whose tag names another node, is
//! forwarded to that node's address (nodes publish theirs in the shared store every few
//! seconds): a long-polling GET or POST as an HTTP request, a WebSocket upgrade as a tunnel of
//! the raw socket once both sides answered 101. A forwarded request carries a header that stops
//! it from being forwarded again. When the holding node is gone (its address expired, or it
//! refuses the connection) the request is refused like an unknown sid, and the client's
//! reconnect (with its recovery fields) restores the session on a live node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::refuse;
use crate::socketio::store::{Kind, SessionStore};

/// Marks a request one node forwarded to another.
pub const FORWARDED: &str = "x-roomcast-forwarded";
/// How long a node's published address lives; it is written again every third of it.
pub const ADDRESS_TTL: Duration = Duration::from_secs(15);
/// How long connecting to the holding node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest response head accepted from the holding node on a tunnel.
const MAX_HEAD: usize = 8 * 1024;

/// Finds and reaches the node that holds a session.
#[derive(Debug)]
pub struct Forwarder {
    store: Arc<SessionStore>,
    own_tag: String,
}

/// The node tag of a sid (`<random>.<tag>`).
pub fn tag_of(sid: &str) -> Option<&str> {
    sid.rsplit_once('.').map(|(_, tag)| tag).filter(|t| !t.is_empty())
}

/// The tag of a node id, as it stands in sids: URL-safe base64 of the id.
pub fn tag(node_id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(node_id)
}

impl Forwarder {
    /// A forwarder for the node tagged `own_tag`, finding others in `store`.
    pub fn new(store: Arc<SessionStore>, own_tag: String) -> Self {
        Self { store, own_tag }
    }

    /// Publishes this node's `address` until the task is dropped.
    pub async fn advertise(store: Arc<SessionStore>, own_tag: String, address: SocketAddr) {
        let mut tick = tokio::time::interval(ADDRESS_TTL / 3);
        loop {
            tick.tick().await;
            store.save(Kind::Node, &own_tag, address.to_string().into_bytes(), ADDRESS_TTL).await;
        }
    }

    /// The address of the node holding `sid`, when that is another live node and `headers` do
    /// not show the request was forwarded already.
    pub async fn holder(&self, sid: &str, headers: &HeaderMap) -> Option<SocketAddr> {
        if !self.store.is_shared() || headers.contains_key(FORWARDED) {
            return None;
        }
        let tag = tag_of(sid).filter(|t| *t != self.own_tag)?;
        let address = self.store.load(Kind::Node, tag).await?;
        std::str::from_utf8(&address).ok()?.parse().ok()
    }

    /// Forwards a long-polling request to `to` and answers with its answer.
    pub async fn http(&self, to: SocketAddr, method: Method, uri: &Uri, headers: HeaderMap, body: Body) -> Response {
        match self.try_http(to, method, uri, headers, body).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(%to, error = %e, "forwarding a Socket.IO request failed");
                refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown")
            }
        }
    }

    async fn try_http(
        &self,
        to: SocketAddr,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Body,
    ) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await??;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        headers.insert(FORWARDED, HeaderValue::from_static("1"));
        headers.remove(axum::http::header::CONNECTION);
        let mut request = Request::builder().method(method).uri(path).body(body)?;
        *request.headers_mut() = headers;
        let response = sender.send_request(request).await?;
        Ok(response.map(Body::new).into_response())
    }

    /// Answers a WebSocket upgrade for a session held at `to`: the client's socket is accepted
    /// here and tunnelled, raw, to a WebSocket opened there with the same request.
    pub fn websocket(&self, to: SocketAddr, uri: &Uri, headers: &HeaderMap, upgrade: IncomingUpgrade) -> Response {
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let key = headers.get("sec-websocket-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (response, socket) = match upgrade.upgrade() {
            Ok(pair) => pair,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("upgrade failed: {e}\n")).into_response(),
        };
        tokio::spawn(async move {
            let Ok(ws) = socket.await else { return };
            let mut client = ws.into_inner();
            match open_tunnel(to, &path, &key).await {
                Ok((mut upstream, early)) => {
                    if client.write_all(&early).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                }
                Err(e) => {
                    tracing::debug!(%to, error = %e, "tunnelling a Socket.IO WebSocket failed");
                    let _ = client.write_all(&crate::wire::close(1011, "session unavailable")).await;
                }
            }
        });
        response.into_response()
    }
}

/// Opens the WebSocket at the holding node; returns the socket and whatever came after its
/// 101 head.
async fn open_tunnel(to: SocketAddr, path: &str, key: &str) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let mut upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await??;
    let _ = upstream.set_nodelay(true);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {to}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{FORWARDED}: 1\r\n\r\n"
    );
    upstream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("response head too large"));
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(CONNECT_TIMEOUT, upstream.read(&mut chunk)).await??;
        if n == 0 {
            return Err(std::io::Error::other("closed before answering"));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("the holding node refused the upgrade"));
    }
    Ok((upstream, head.split_off(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_names_its_node() {
        let t = tag("node-a.1");
        assert_eq!(tag_of(&format!("AbC_12.{t}")), Some(t.as_str()));
        assert_eq!(tag_of("no-tag"), None);
        assert_eq!(tag_of("x."), None);
        assert!(!t.contains('.'), "a tag never contains the separator");
    }
}
