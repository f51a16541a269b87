//! The gateway's Socket.IO face, spoken at the packet level: another face of the same
//! connections (the same verification, rooms, authorization and metrics as `/ws`), events with
//! the session's position as last argument, recovery on another node, expiry that closes the
//! transport (so socket.io-client reconnects by itself), and requests for another node's
//! session forwarded there. (The real socket.io-client runs against it in `clients/socketio`.)

use std::net::SocketAddr;
use std::time::Duration;

use roomcast_gateway::auth::{mint_hs256, unix_now};
use roomcast_testkit::{RedisServer, eventually};
use serde_json::{Value, json};

use crate::common::{SECRET, TestGateway};
use crate::conformance::{Ws, closed, get, next, say, send, text_not_ping, ws};

/// An Engine.IO WebSocket to `addr`'s Socket.IO face, past the open packet.
async fn engine(addr: SocketAddr) -> Ws {
    let mut socket = ws(addr, "/socket.io/?EIO=4&transport=websocket").await;
    assert!(text_not_ping(&mut socket).await.starts_with('0'));
    socket
}

/// Sends a CONNECT with `auth` and returns the reply's JSON (`40{...}` or `44{...}`).
async fn connect(socket: &mut Ws, auth: &Value) -> (char, Value) {
    say(socket, &format!("40{auth}")).await;
    let reply = text_not_ping(socket).await;
    let kind = reply.chars().nth(1).unwrap();
    (kind, serde_json::from_str(&reply[2..]).unwrap())
}

fn token(sub: &str, exp: u64) -> String {
    mint_hs256(SECRET, &json!({"sub": sub, "org": "o1", "exp": exp}))
}

/// The next event's `(name, data, last argument)`.
async fn event(socket: &mut Ws) -> (String, Value, Value) {
    let packet = text_not_ping(socket).await;
    let array: Vec<Value> = serde_json::from_str(packet.strip_prefix("42").expect("an EVENT")).unwrap();
    (array[0].as_str().unwrap().to_owned(), array[1].clone(), array.last().unwrap().clone())
}

/// Emits `name` with `arg` asking an ack with `id`; returns the ack's argument.
async fn command(socket: &mut Ws, id: u64, name: &str, arg: &Value) -> Value {
    say(socket, &format!(r#"42{id}["{name}",{arg}]"#)).await;
    let reply = text_not_ping(socket).await;
    let array: Vec<Value> = serde_json::from_str(reply.strip_prefix(&format!("43{id}")).expect("the ack")).unwrap();
    array[0].clone()
}

#[tokio::test]
async fn a_refused_token_is_a_connect_error_with_its_code() {
    let gw = TestGateway::start().await;
    let mut socket = engine(gw.addr).await;
    let (kind, body) = connect(&mut socket, &json!({})).await;
    assert_eq!((kind, body["data"]["code"].as_str()), ('4', Some("unauthorized")), "{body}");
    let (kind, body) = connect(&mut socket, &json!({"token": token("u1", unix_now() - 3600)})).await;
    assert_eq!((kind, body["data"]["code"].as_str()), ('4', Some("token_expired")), "{body}");
    assert_eq!(gw.metric(r#"roomcast_auth_failures_total{reason="expired"}"#).await, 1.0);
}

#[tokio::test]
async fn a_socket_io_session_is_a_member_like_a_ws_connection() {
    let gw = TestGateway::start().await;
    let mut socket = engine(gw.addr).await;
    let (kind, body) = connect(&mut socket, &json!({"token": token("u1", unix_now() + 3600)})).await;
    assert_eq!(kind, '0', "{body}");
    assert!(body["sid"].is_string() && body["pid"].is_string(), "{body}");
    assert_eq!(gw.metric("roomcast_connections_open").await, 1.0);

    // Its own rooms are joined at connect; an event carries the session's position last.
    gw.publish(json!({"room": "user:u1", "event": "user:notification", "data": {"n": 1}})).await;
    let (name, data, offset) = event(&mut socket).await;
    assert_eq!((name.as_str(), data), ("user:notification", json!({"n": 1})));
    assert!(offset.is_string(), "the last argument is the offset socket.io-client keeps: {offset}");

    // Dialogs need the member set, as on /ws; the ack carries the command's reply.
    let reply = command(&mut socket, 1, "subscribe:chat", &json!({"chatId": 7})).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("forbidden")), "{reply}");
    gw.add_members("dialog:7", &["u1"]).await;
    let reply = command(&mut socket, 2, "subscribe:chat", &json!({"chatId": 7})).await;
    assert_eq!((reply["type"].as_str(), reply["room"].as_str()), (Some("ok"), Some("dialog:7")), "{reply}");
    gw.publish(json!({"room": "dialog:7", "event": "message:new", "data": {"text": "hi"}})).await;
    assert_eq!(event(&mut socket).await.1, json!({"text": "hi"}));

    // A member removed is told, and the room's events stop.
    gw.api("members", &json!({"room": "dialog:7", "remove": ["u1"]})).await;
    let (name, data, _) = event(&mut socket).await;
    assert_eq!((name.as_str(), data), ("roomcast:left", json!({"room": "dialog:7", "reason": "removed"})));

    say(&mut socket, "1").await;
    closed(&mut socket).await;
    let closed_series = r#"roomcast_connections_closed_total{reason="client_closed"}"#;
    eventually("the close to be counted", async || gw.metric(closed_series).await == 1.0).await;
    assert_eq!(gw.metric("roomcast_connections_open").await, 0.0);
}

#[tokio::test]
async fn an_expired_token_closes_the_transport_and_not_the_namespace() {
    let gw = TestGateway::start_with(|c| c.jwt.leeway = Duration::ZERO).await;
    let mut socket = engine(gw.addr).await;
    let exp = unix_now() + 2;
    assert_eq!(connect(&mut socket, &json!({"token": token("u1", exp)})).await.0, '0');
    // Nothing but heartbeats, then the socket closes: no DISCONNECT (41), which would stop
    // socket.io-client from reconnecting with a fresh token.
    loop {
        match next(&mut socket).await {
            Some(tokio_tungstenite::tungstenite::Message::Text(t)) => assert_eq!(t.as_str(), "2", "{t}"),
            Some(other) => panic!("{other:?}"),
            None => break,
        }
    }
    assert!(unix_now() >= exp);
    let expired = r#"roomcast_connections_closed_total{reason="token_expired"}"#;
    eventually("the expiry to be counted", async || gw.metric(expired).await == 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_restored_on_another_node_with_exactly_the_events_it_missed() {
    let redis = RedisServer::start();
    let a = TestGateway::on_redis(&redis, |c| c.node_id = "a".into()).await;
    let b = TestGateway::on_redis(&redis, |c| c.node_id = "b".into()).await;
    a.add_members("dialog:9", &["u1"]).await;
    let tok = token("u1", unix_now() + 3600);

    let mut first = engine(a.addr).await;
    let (_, hello) = connect(&mut first, &json!({"token": tok})).await;
    let pid = hello["pid"].as_str().unwrap().to_owned();
    assert_eq!(command(&mut first, 1, "subscribe:chat", &json!({"chatId": 9})).await["type"], "ok");
    b.publish(json!({"room": "dialog:9", "event": "message:new", "data": 1})).await;
    let (_, data, offset) = event(&mut first).await;
    assert_eq!(data, 1);
    drop(first);

    for n in 2..=4 {
        b.publish(json!({"room": "dialog:9", "event": "message:new", "data": n})).await;
    }
    // socket.io-client sends its pid and the last offset it saw with its auth.
    let mut again = engine(b.addr).await;
    let (kind, hello) = connect(&mut again, &json!({"token": tok, "pid": pid, "offset": offset})).await;
    assert_eq!((kind, hello["pid"].as_str()), ('0', Some(pid.as_str())), "the same pid: recovered");
    let mut offsets = Vec::new();
    for n in 2..=4 {
        let (_, data, offset) = event(&mut again).await;
        assert_eq!(data, n, "missed events, in order, once");
        offsets.push(offset);
    }
    // Each replayed event names the client's position after it, so a drop in the middle of
    // the replay resumes from there.
    offsets.dedup();
    assert_eq!(offsets.len(), 3, "{offsets:?}");
    b.publish(json!({"room": "dialog:9", "event": "message:new", "data": 5})).await;
    assert_eq!(event(&mut again).await.1, 5, "then live ones, in the restored room");

    // A pid another user's token names restores nothing.
    let mut stranger = engine(b.addr).await;
    let other = json!({"token": token("u2", unix_now() + 3600), "pid": pid, "offset": offset});
    let (_, hello) = connect(&mut stranger, &other).await;
    assert_ne!(hello["pid"].as_str(), Some(pid.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_another_nodes_session_is_forwarded_there() {
    let redis = RedisServer::start();
    let a = TestGateway::on_redis(&redis, |c| c.node_id = "a".into()).await;
    let b = TestGateway::on_redis(&redis, |c| c.node_id = "b".into()).await;
    let (status, open) = get(a.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200);
    let sid = serde_json::from_str::<Value>(&open[1..]).unwrap()["sid"].as_str().unwrap().to_owned();
    let url = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    // b does not hold the session: it forwards both the push and the poll to a (once a has
    // published its address).
    let connect = format!(r#"40{{"token":"{}"}}"#, token("u1", unix_now() + 3600));
    eventually("b to reach a's session", async || send(b.addr, "POST", &url, connect.as_bytes()).await.0 == 200).await;
    let (status, body) = get(b.addr, &url).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("40{"), "the CONNECT reply, from a: {body}");
    assert_eq!(a.metric("roomcast_connections_open").await, 1.0);
    assert_eq!(b.metric("roomcast_connections_open").await, 0.0);
}

#[tokio::test]
async fn polling_from_a_browser_follows_allowed_origins() {
    let gw = TestGateway::start_with(|c| {
        c.allowed_origins =
            roomcast_gateway::origin::AllowedOrigins::parse(&["https://app.example.com".to_owned()]).unwrap();
    })
    .await;
    let request = |origin: &str| {
        format!(
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, head) = raw_head(gw.addr, &request("https://app.example.com")).await;
    assert_eq!(status, 200);
    assert!(head.contains("access-control-allow-origin: https://app.example.com"), "{head}");
    assert!(head.contains("access-control-allow-credentials: true"), "{head}");
    assert_eq!(raw_head(gw.addr, &request("https://evil.example.net")).await.0, 403);
}

/// Sends `request` and returns the status and the response head (lower-cased).
async fn raw_head(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(crate::common::PATIENCE, stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&response).to_lowercase();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, text.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}

/// A polling session connected to the namespace as `sub`; returns the poll URL.
async fn polling_session(gw: &TestGateway, sub: &str) -> String {
    let (status, open) = get(gw.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200);
    let sid = serde_json::from_str::<Value>(&open[1..]).unwrap()["sid"].as_str().unwrap().to_owned();
    let url = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let connect = format!(r#"40{{"token":"{}"}}"#, token(sub, unix_now() + 3600));
    assert_eq!(send(gw.addr, "POST", &url, connect.as_bytes()).await.0, 200);
    let (_, reply) = get(gw.addr, &url).await;
    assert!(reply.starts_with("40{"), "{reply}");
    url
}

#[tokio::test]
async fn a_server_disconnect_over_polling_sends_41_before_and_apart_from_the_close() {
    let gw = TestGateway::start().await;
    // The DISCONNECT comes alone, the close in the next payload: socket.io-client would read a
    // `1` in the same payload as a lost transport, and come back. (Whether the GET was waiting
    // or comes just after the disconnect, the answers are the same.)
    let url = polling_session(&gw, "u1").await;
    let waiting = tokio::spawn({
        let (addr, url) = (gw.addr, url.clone());
        async move { get(addr, &url).await }
    });
    let (status, _) = gw.api("disconnect", &json!({"user": "u1", "code": 4003})).await;
    assert_eq!(status, 200);
    assert_eq!(waiting.await.unwrap(), (200, "41".to_owned()));
    assert_eq!(get(gw.addr, &url).await, (200, "1".to_owned()));
    assert_eq!(get(gw.addr, &url).await.0, 400, "the end was told");

    // No GET waiting (the client is between polls, or probing a WebSocket): the session waits
    // for the next GET instead of vanishing, and a WebSocket probe of it is refused.
    let url = polling_session(&gw, "u2").await;
    let (status, _) = gw.api("disconnect", &json!({"user": "u2", "code": 1000})).await;
    assert_eq!(status, 200);
    let probe = url.replace("transport=polling", "transport=websocket");
    let refused = tokio_tungstenite::connect_async(format!("ws://{}{probe}", gw.addr)).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400),
        "{refused:?}"
    );
    assert_eq!(get(gw.addr, &url).await, (200, "41".to_owned()));
    assert_eq!(get(gw.addr, &url).await, (200, "1".to_owned()));
}
