//! Connection and subscription tokens are told apart by `room`, and `nbf` and `iat` are
//! honoured (issue 17, faults 5 and 6).

use crate::common::{SECRET, TestGateway};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use serde_json::{Value, json};

/// Connects with `claims` and returns the close code and the error frame's message.
async fn refused(gw: &TestGateway, claims: &Value) -> (u16, String) {
    let token = mint_hs256(SECRET, claims);
    let mut c = gw.connect_url(&format!("{}?token={token}", gw.ws_url())).await;
    let (code, frames) = c.recv_close().await;
    assert_eq!(frames.len(), 1, "{claims}: one error frame, got {frames:?}");
    (code, frames[0]["message"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_subscription_token_does_not_connect() {
    let gw = TestGateway::start().await;
    let claims = json!({"sub": "u1", "room": "dialog:1", "exp": unix_now() + 600});
    let (code, message) = refused(&gw, &claims).await;
    assert_eq!(code, 4003);
    assert!(message.contains("subscription token"), "{message}");
}

#[tokio::test]
async fn a_connection_token_is_not_a_subscription_token() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("u1", None).await;
    let connection_token = gw.token("u1", None);
    let reply = c.request(json!({"type": "subscribe", "id": 1, "room": "dialog:1", "token": connection_token})).await;
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("connection token"), "{reply}");
    // The real thing works.
    let sub = mint_hs256(SECRET, &json!({"sub": "u1", "room": "dialog:1", "exp": unix_now() + 600}));
    let reply = c.request(json!({"type": "subscribe", "id": 2, "room": "dialog:1", "token": sub})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
}

#[tokio::test]
async fn nbf_is_honoured_with_the_leeway() {
    let gw = TestGateway::start().await;
    let now = unix_now();
    let (code, message) = refused(&gw, &json!({"sub": "u1", "exp": now + 7200, "nbf": now + 3600})).await;
    assert_eq!(code, 4003);
    assert!(message.contains("not valid before"), "{message}");
    // Inside the 5 s leeway, a token that is valid from 2 s on connects now.
    let early = mint_hs256(SECRET, &json!({"sub": "u1", "exp": now + 600, "nbf": now + 2}));
    let mut c = gw.connect_url(&format!("{}?token={early}", gw.ws_url())).await;
    assert_eq!(c.recv().await["type"], "connected");

    // The same for subscription tokens.
    let later = mint_hs256(SECRET, &json!({"sub": "u1", "room": "dialog:1", "exp": now + 7200, "nbf": now + 3600}));
    let reply = c.request(json!({"type": "subscribe", "id": 1, "room": "dialog:1", "token": later})).await;
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("not valid before"), "{reply}");
}

#[tokio::test]
async fn a_time_claim_that_is_not_a_number_is_refused() {
    let gw = TestGateway::start().await;
    let exp = unix_now() + 600;
    for claims in [
        json!({"sub": "u1", "exp": exp, "nbf": "soon"}),
        json!({"sub": "u1", "exp": exp, "iat": "yesterday"}),
        json!({"sub": "u1", "exp": exp.to_string()}),
    ] {
        let (code, message) = refused(&gw, &claims).await;
        assert_eq!(code, 4003, "{claims}");
        assert!(message.contains("must be a number"), "{claims}: {message}");
    }
    // An array where a time belongs trips jsonwebtoken's own claims pass first (its message is
    // a JSON syntax error); refused all the same.
    let (code, _) = refused(&gw, &json!({"sub": "u1", "exp": exp, "nbf": [1]})).await;
    assert_eq!(code, 4003);
}
