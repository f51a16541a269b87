//! Logs of a real `roomcast` process with `ROOMCAST_LOG_FORMAT=json`: every line is one JSON
//! object, every connection's close is one line with its reason, and no token, secret or API key
//! appears anywhere, even at debug level.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PATIENCE, TestGateway};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "log-test-secret-7f3a91";
const API_KEY: &str = "log-test-api-key-c52e08";

struct Node {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn start_node(addr: SocketAddr) -> Node {
    let log = std::env::temp_dir().join(format!("roomcast-logging-{}.log", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .env("ROOMCAST_LISTEN", addr.to_string())
        .env("ROOMCAST_NODE_ID", "logs")
        .env("ROOMCAST_JWT_SECRET", SECRET)
        .env("ROOMCAST_API_KEY", API_KEY)
        .env("ROOMCAST_LOG_FORMAT", "json")
        .env("ROOMCAST_LOG", "debug")
        .env("ROOMCAST_DRAIN_WINDOW", "0s")
        .env_remove("ROOMCAST_REDIS_URL")
        .env_remove("ROOMCAST_REDIS_CLUSTER")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Node { child, log }
}

fn token(sub: &str) -> String {
    mint_hs256(SECRET, &json!({"sub": sub, "org": "o1", "exp": unix_now() + 3600}))
}

#[tokio::test]
async fn json_logs_close_lines_and_no_secrets() {
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut node = start_node(addr);
    let gw = TestGateway::attach(addr);
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the node never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tokens = [token("q1"), token("h1"), token("f1")];
    // A token in the query, one in the Authorization header, one in the first frame.
    let mut by_query = gw.connect_url(&format!("{}?token={}", gw.ws_url(), tokens[0])).await;
    assert_eq!(by_query.recv().await["type"], "connected");
    by_query.roundtrip().await; // user:q1 is joined once the pong is back
    let mut by_header = gw.connect_bearer(&tokens[1]).await;
    assert_eq!(by_header.recv().await["type"], "connected");
    let mut by_frame = gw.connect_url(&gw.ws_url()).await;
    by_frame.send(json!({"type": "auth", "token": tokens[2]})).await;
    assert_eq!(by_frame.recv().await["type"], "connected");
    // A forged token is refused; it must not be logged either.
    let forged = mint_hs256("another-secret-0d1e", &json!({"sub": "x", "exp": unix_now() + 60}));
    let mut refused = gw.connect_url(&format!("{}?token={forged}", gw.ws_url())).await;
    assert_eq!(refused.recv_close().await.0, 4003);
    let (status, _) = gw.api_raw("publish", r#"{"room":"user:q1","event":"e"}"#, Some(API_KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(by_query.recv().await["event"], "e");
    let (status, _) = gw.api_raw("publish", r#"{"room":"user:q1","event":"e"}"#, Some("wrong-key-9b7c")).await;
    assert_eq!(status, 401);

    by_query.ws.close(None).await.unwrap();
    assert_eq!(by_query.recv_close().await.0, 1000);
    // SIGTERM: the node drains the two others with 1012 and exits.
    let pid = node.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(by_header.recv_close().await.0, 1012);
    assert_eq!(by_frame.recv_close().await.0, 1012);
    let deadline = Instant::now() + PATIENCE * 2;
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the node did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");

    let text = std::fs::read_to_string(&node.log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(line["timestamp"].is_string() && line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    let closes: Vec<&Value> = lines.iter().filter(|l| l["message"] == "connection closed").collect();
    let mut reasons: Vec<&str> = closes.iter().map(|l| l["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["client_closed", "shutdown", "shutdown"], "one close line per connection: {text}");
    for close in &closes {
        assert!(close["conn"].is_u64() && close["user"].is_string() && close["code"].is_u64(), "{close}");
    }
    assert!(
        lines.iter().any(|l| l["message"] == "connection refused" && l["reason"] == "token_invalid"),
        "the refused connection is logged with its reason: {text}"
    );

    let secrets = [SECRET, API_KEY, "wrong-key-9b7c", &forged, &tokens[0], &tokens[1], &tokens[2]];
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
        // The signature alone is as secret as the token.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a token signature was logged:\n{text}");
    }
}
