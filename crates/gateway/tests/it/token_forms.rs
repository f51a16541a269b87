//! A connection token is accepted from `?token=`, from `Authorization: Bearer`, and from a first
//! `auth` frame; without any of them the connection closes with 4003 after the auth timeout.

use std::time::Duration;

use crate::common::TestGateway;
use serde_json::json;

#[tokio::test]
async fn token_in_the_query() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u1", Some("o1")))).await;
    let connected = client.recv().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["user"], "u1");
    assert_eq!(connected["org"], "o1");
    assert_eq!(connected["node"], "test-node");
    assert_eq!(connected["ping_interval_ms"], 25_000);
    assert!(connected["expires_at"].as_u64().unwrap() > 0);
    assert!(connected["conn"].is_string());
}

#[tokio::test]
async fn token_in_the_authorization_header() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect_bearer(&gw.token("u2", None)).await;
    let connected = client.recv().await;
    assert_eq!((connected["type"].as_str(), connected["user"].as_str()), (Some("connected"), Some("u2")));
    assert!(connected.get("org").is_none(), "{connected}");
}

#[tokio::test]
async fn token_in_a_first_auth_frame() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect_url(&gw.ws_url()).await;
    client.send(json!({"type": "auth", "token": gw.token("u3", None)})).await;
    let connected = client.recv().await;
    assert_eq!((connected["type"].as_str(), connected["user"].as_str()), (Some("connected"), Some("u3")));
    client.roundtrip().await;
}

#[tokio::test]
async fn no_token_and_no_auth_frame_closes_4003_after_the_timeout() {
    let gw = TestGateway::start_with(|c| c.auth_timeout = Duration::from_millis(300)).await;
    let mut client = gw.connect_url(&gw.ws_url()).await;
    let (code, frames) = client.recv_close().await;
    assert_eq!(code, 4003);
    assert_eq!(frames[0]["type"], "error", "{frames:?}");
    assert_eq!(frames[0]["code"], "unauthorized");
}

#[tokio::test]
async fn a_first_frame_other_than_auth_closes_4003() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect_url(&gw.ws_url()).await;
    client.send(json!({"type": "subscribe", "id": 1, "room": "dialog:1"})).await;
    let (code, frames) = client.recv_close().await;
    assert_eq!(code, 4003);
    assert_eq!(frames[0]["code"], "unauthorized", "{frames:?}");
}

#[tokio::test]
async fn a_plain_get_on_ws_is_400() {
    let gw = TestGateway::start().await;
    let (status, body) = gw.get("/ws").await;
    assert_eq!(status, 400, "{body}");
}
