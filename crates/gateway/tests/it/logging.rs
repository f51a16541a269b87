//! Logs of a real `roomcast` process with `ROOMCAST_LOG_FORMAT=json`: every line is one JSON
//! object, every connection's close is one line with its reason, and no token, secret or API key
//! appears anywhere, even at debug level.

use crate::common::{NodeProcess, TestGateway};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "log-test-secret-7f3a91";
const API_KEY: &str = "log-test-api-key-c52e08";

fn token(sub: &str) -> String {
    mint_hs256(SECRET, &json!({"sub": sub, "org": "o1", "exp": unix_now() + 3600}))
}

#[tokio::test]
async fn json_logs_close_lines_and_no_secrets() {
    let mut node = NodeProcess::start_with_env(&[
        ("ROOMCAST_NODE_ID", "logs"),
        ("ROOMCAST_JWT_SECRET", SECRET),
        ("ROOMCAST_API_KEY", API_KEY),
        ("ROOMCAST_LOG_FORMAT", "json"),
        ("ROOMCAST_LOG", "debug"),
        ("ROOMCAST_DRAIN_WINDOW", "0s"),
    ]);
    let gw = TestGateway::attach(node.gateway.addr);

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
    node.terminate();
    assert_eq!(by_header.recv_close().await.0, 1012);
    assert_eq!(by_frame.recv_close().await.0, 1012);
    let status = node.exited().await;
    assert!(status.success(), "{status}");

    let text = node.log().join("\n");
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
