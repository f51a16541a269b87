//! Test harness: an in-process gateway on port 0, a WebSocket test client and a tiny HTTP client.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use prost::Message as _;
use roomcast_gateway::auth::{mint_hs256, unix_now};
use roomcast_gateway::{Config, Server};
use roomcast_proto::envelope::{self, Envelope, envelope::Body};
use roomcast_publisher::layout;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-secret";
pub const API_KEY: &str = "test-api-key";
pub use roomcast_testkit::PATIENCE;

/// A gateway served in this process on a free port; stops when dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::with_secret(SECRET);
        config.api_key = Some(API_KEY.to_owned());
        config.node_id = "test-node".to_owned();
        config.drain_window = Duration::ZERO;
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self { addr, stop: Some(stop) }
    }

    /// A gateway on `redis` (Redis mode), with `adjust` applied after.
    pub async fn on_redis(redis: &roomcast_testkit::RedisServer, adjust: impl FnOnce(&mut Config)) -> Self {
        let url = redis.url();
        Self::start_with(move |c| {
            c.broker = roomcast_gateway::config::BrokerConfig::Redis(url);
            adjust(c);
        })
        .await
    }

    /// A handle on a gateway started elsewhere (a real process), which it does not stop.
    pub fn attach(addr: SocketAddr) -> Self {
        Self { addr, stop: None }
    }

    /// A connection token for `sub` (and `org`) valid for an hour.
    pub fn token(&self, sub: &str, org: Option<&str>) -> String {
        let mut claims = json!({"sub": sub, "exp": unix_now() + 3600});
        if let Some(org) = org {
            claims["org"] = json!(org);
        }
        mint_hs256(SECRET, &claims)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Connects `sub` with a token in the query and reads the `connected` frame.
    pub async fn connect(&self, sub: &str, org: Option<&str>) -> TestClient {
        let mut client = self.connect_url(&format!("{}?token={}", self.ws_url(), self.token(sub, org))).await;
        let connected = client.recv().await;
        assert_eq!(connected["type"], "connected", "{connected}");
        client
    }

    /// Opens a WebSocket to `url` without reading anything.
    pub async fn connect_url(&self, url: &str) -> TestClient {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        TestClient { ws }
    }

    /// Opens a WebSocket with `Authorization: Bearer <token>` on the upgrade request.
    pub async fn connect_bearer(&self, token: &str) -> TestClient {
        let mut request = self.ws_url().into_client_request().unwrap();
        request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connects");
        TestClient { ws }
    }

    /// POSTs `body` to `/api/<path>` with the test API key.
    pub async fn api(&self, path: &str, body: &Value) -> (u16, Value) {
        self.api_raw(path, &body.to_string(), Some(API_KEY)).await
    }

    /// Publishes and asserts success; returns the reply.
    pub async fn publish(&self, body: Value) -> Value {
        let (status, reply) = self.api("publish", &body).await;
        assert_eq!(status, 200, "{reply}");
        reply
    }

    /// Adds users to a room's member set.
    pub async fn add_members(&self, room: &str, users: &[&str]) {
        let (status, reply) = self.api("members", &json!({"room": room, "add": users})).await;
        assert_eq!(status, 200, "{reply}");
    }

    pub async fn api_raw(&self, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        let request = format!(
            "POST /api/{path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, body) = http(self.addr, &request).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http(self.addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")).await
    }

    /// The value of an un-labelled metric, or of the first sample line starting with `series`.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        metric_value(&text, series)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Value of the sample `series` (`name` or `name{label="v",...}`), ignoring labels the query
/// does not name (such as `node`); 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    let (name, wanted) = split_series(series);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (sample, value) = line.rsplit_once(' ')?;
            let (sample_name, labels) = split_series(sample);
            (sample_name == name && wanted.iter().all(|w| labels.contains(w))).then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0.0)
}

fn split_series(series: &str) -> (&str, Vec<&str>) {
    match series.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).collect()),
        None => (series, Vec::new()),
    }
}

/// Sends a raw HTTP/1.1 request and reads the whole response.
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response)).await.expect("http response").unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// A WebSocket client speaking JSON frames.
pub struct TestClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestClient {
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next JSON frame; panics on close or after [`PATIENCE`].
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame within the patience window")
                .expect("the socket is open")
                .expect("the socket reads");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next JSON frame, or the code of the server's close frame; panics after [`PATIENCE`].
    pub async fn recv_or_close(&mut self) -> Result<Value, u16> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame within the patience window")
                .expect("the socket is open")
                .expect("the socket reads");
            match message {
                Message::Text(text) => return Ok(serde_json::from_str(&text).unwrap()),
                Message::Close(close) => return Err(close.map_or(1005, |c| u16::from(c.code))),
                _ => {}
            }
        }
    }

    /// Sends a command and returns its reply (the next frame).
    pub async fn request(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.recv().await
    }

    /// Subscribes and asserts `ok`.
    pub async fn subscribe(&mut self, room: &str) -> Value {
        let reply = self.request(json!({"type": "subscribe", "id": 1, "room": room})).await;
        assert_eq!(reply["type"], "ok", "{reply}");
        reply
    }

    /// Subscribes with `since` and returns the `ok` (asserted).
    pub async fn subscribe_since(&mut self, room: &str, offset: u64, epoch: &str) -> Value {
        let since = json!({"offset": offset, "epoch": epoch});
        let reply = self.request(json!({"type": "subscribe", "id": 2, "room": room, "since": since})).await;
        assert_eq!(reply["type"], "ok", "{reply}");
        reply
    }

    /// Reads until the server's close frame; returns its code and the text frames before it.
    pub async fn recv_close(&mut self) -> (u16, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            let message =
                tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a close within the patience window");
            match message {
                Some(Ok(Message::Text(text))) => frames.push(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(Some(close)))) => return (u16::from(close.code), frames),
                Some(Ok(Message::Close(None))) => return (1005, frames),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?} after {} frames", frames.len()),
            }
        }
    }

    /// Proves the connection is alive and everything sent before has been answered.
    pub async fn roundtrip(&mut self) {
        let pong = self.request(json!({"type": "ping", "id": 424242})).await;
        assert_eq!(pong, json!({"type": "pong", "id": 424242}));
    }
}

/// A close code as tungstenite reports it.
pub fn code(code: CloseCode) -> u16 {
    u16::from(code)
}

/// A JWT with the header `{"alg":"none"}` and no signature.
pub fn unsigned_token(claims: &Value) -> String {
    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// The `roomcast` binary of this build, with an empty environment but for `ROOMCAST_LOG=info`:
/// the one way these tests start it.
pub fn roomcast() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
    cmd.env_clear().env("ROOMCAST_LOG", "info");
    cmd
}

/// A real `roomcast` process on a free port, with its log lines kept; killed (SIGKILL) when
/// dropped.
pub struct NodeProcess {
    pub child: std::process::Child,
    pub gateway: TestGateway,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl NodeProcess {
    /// Starts the binary with the test secret and API key plus `env`, and waits for its address.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut all = vec![("ROOMCAST_JWT_SECRET", SECRET), ("ROOMCAST_API_KEY", API_KEY)];
        all.extend_from_slice(env);
        Self::start_with_env(&all)
    }

    /// Starts the binary with exactly `env` (and `ROOMCAST_LISTEN=127.0.0.1:0` unless given),
    /// and waits until it logs the address it listens on (text or JSON logs).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        Self::start_command(roomcast(), env)
    }

    /// Starts the binary under `prlimit --nofile=<nofile>` (soft and hard limit), with the test
    /// secret and API key plus `env`: a node that runs short of file descriptors.
    pub fn start_with_nofile(nofile: u64, env: &[(&str, &str)]) -> Self {
        let mut cmd = std::process::Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}")).arg("--").arg(env!("CARGO_BIN_EXE_roomcast"));
        cmd.env_clear().env("ROOMCAST_LOG", "info");
        let mut all = vec![("ROOMCAST_JWT_SECRET", SECRET), ("ROOMCAST_API_KEY", API_KEY)];
        all.extend_from_slice(env);
        Self::start_command(cmd, &all)
    }

    fn start_command(mut cmd: std::process::Command, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        cmd.env("ROOMCAST_LISTEN", "127.0.0.1:0").stderr(std::process::Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr: SocketAddr = loop {
            let line = lines.next().expect("the node logs its address").unwrap();
            let addr = line.split("addr=").nth(1).or_else(|| line.split("\"addr\":\"").nth(1));
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = addr {
                break rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap().parse().unwrap();
            }
        };
        // Keep reading the log, so the node never blocks on a full pipe and tests can read it.
        let kept = std::sync::Arc::clone(&log);
        let reader = std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| kept.lock().unwrap().push(l)));
        Self { child, gateway: TestGateway::attach(addr), log, reader }
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM (the node drains and exits).
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Waits (bounded) for the process to exit; returns its status once its whole log is read.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + PATIENCE * 2;
        loop {
            if let Some(status) = self.child.try_wait().unwrap()
                && self.reader.is_finished()
            {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the node did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Appends an event to the room's history and offset without publishing it: what a node sees
/// when pub/sub drops a message.
pub fn lose_one(redis: &roomcast_testkit::RedisServer, room: &str, epoch: &str, keep_in_history: bool) -> u64 {
    let mut c = redis.connection().unwrap();
    let channel = layout::channel("", room);
    let offset: u64 =
        redis::cmd("HINCRBY").arg(layout::position_key(&channel)).arg("offset").arg(1).query(&mut c).unwrap();
    if keep_in_history {
        let body = Body::Event(envelope::Event {
            event: "lost".into(),
            data: b"{\"n\":1}".to_vec().into(),
            id: "lost-1".into(),
            ..Default::default()
        });
        let envelope =
            Envelope { room: room.into(), offset, epoch: epoch.into(), body: Some(body), ..Default::default() };
        let _: String = redis::cmd("XADD")
            .arg(layout::history_key(&channel))
            .arg(format!("{offset}-0"))
            .arg("e")
            .arg(envelope.encode_to_vec())
            .query(&mut c)
            .unwrap();
    }
    offset
}

/// A WebSocket client on a bare TCP socket that writes nothing after its upgrade request: it
/// never answers a ping, as a peer that vanished would not.
pub struct SilentClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl SilentClient {
    /// Upgrades `GET <path_and_query>` on `addr` and reads the 101.
    pub async fn connect(addr: SocketAddr, path_and_query: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("a response").unwrap();
            assert!(n > 0, "closed before the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert!(buf.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&buf));
        buf.drain(..head_end);
        Self { stream, buf }
    }

    /// Reads server frames until the close frame; returns its code and the opcodes before it.
    pub async fn until_close(&mut self) -> (u16, Vec<u8>) {
        let mut opcodes = Vec::new();
        loop {
            let (opcode, payload) = self.frame().await;
            if opcode == 0x8 {
                return (u16::from_be_bytes([payload[0], payload[1]]), opcodes);
            }
            opcodes.push(opcode);
        }
    }

    /// Writes raw bytes (frames the test built itself) to the socket.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next (unmasked, unfragmented) server frame.
    pub async fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                let (opcode, short) = (self.buf[0] & 0x0f, usize::from(self.buf[1] & 0x7f));
                let (head, len) = match short {
                    126 if self.buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]))),
                    127 if self.buf.len() >= 10 => {
                        (10, u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (2, n),
                };
                if head != usize::MAX && self.buf.len() >= head + len {
                    let payload = self.buf[head..head + len].to_vec();
                    self.buf.drain(..head + len);
                    return (opcode, payload);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await.expect("a frame").unwrap();
            assert!(n > 0, "the socket closed without a close frame");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
