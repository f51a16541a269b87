//! `refresh` replaces the token and moves the session's expiry; a token that expires without
//! one closes the connection with 4001; a refresh for another user closes it with 4003.

use std::time::Duration;

use crate::common::{SECRET, TestGateway};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use serde_json::json;

fn token(sub: &str, exp: u64) -> String {
    mint_hs256(SECRET, &json!({"sub": sub, "org": "o1", "exp": exp}))
}

#[tokio::test]
async fn a_missed_refresh_closes_4001_soon_after_exp() {
    let gw = TestGateway::start_with(|c| c.jwt.leeway = Duration::ZERO).await;
    // Seconds ahead, so that a slow connect still happens before it.
    let exp = unix_now() + 3;
    let mut c = gw.connect_url(&format!("{}?token={}", gw.ws_url(), token("u1", exp))).await;
    assert_eq!(c.recv().await["expires_at"], exp);
    let (code, _) = c.recv_close().await;
    assert_eq!(code, 4001);
    assert!(unix_now() >= exp, "closed before the token expired");
}

#[tokio::test]
async fn refresh_extends_the_session() {
    let gw = TestGateway::start_with(|c| c.jwt.leeway = Duration::ZERO).await;
    let exp = unix_now() + 3;
    let mut c = gw.connect_url(&format!("{}?token={}", gw.ws_url(), token("u1", exp))).await;
    assert_eq!(c.recv().await["expires_at"], exp, "connected before the first token expired");
    let new_exp = unix_now() + 3600;
    let reply = c.request(json!({"type": "refresh", "id": 3, "token": token("u1", new_exp)})).await;
    assert_eq!(reply, json!({"type": "ok", "id": 3, "expires_at": new_exp}));
    // Until a second past the first token's expiry, however long that takes here, the
    // connection keeps answering; a close would end the roundtrip with a panic.
    while unix_now() <= exp + 1 {
        c.roundtrip().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.roundtrip().await;
}

#[tokio::test]
async fn an_invalid_refresh_is_an_error_and_keeps_the_session() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("u1", Some("o1")).await;
    let bad = mint_hs256("wrong", &json!({"sub": "u1", "org": "o1", "exp": unix_now() + 60}));
    let reply = c.request(json!({"type": "refresh", "id": 4, "token": bad})).await;
    assert_eq!((reply["code"].as_str(), reply["id"].as_u64()), (Some("unauthorized"), Some(4)), "{reply}");
    c.roundtrip().await;
}

#[tokio::test]
async fn a_refresh_for_another_user_closes_4003() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("u1", Some("o1")).await;
    c.send(json!({"type": "refresh", "id": 5, "token": token("u2", unix_now() + 60)})).await;
    let (code, frames) = c.recv_close().await;
    assert_eq!(code, 4003);
    assert_eq!(frames[0]["code"], "forbidden", "{frames:?}");
}
