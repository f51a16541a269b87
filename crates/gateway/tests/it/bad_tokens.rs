//! Refused tokens still get the upgrade, then an `error` frame and a close: 4001 when expired,
//! 4003 for a bad signature, `alg: none`, a wrong issuer or audience, or a missing claim.

use crate::common::{SECRET, TestGateway, unsigned_token};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use serde_json::{Value, json};

async fn close_code_for(gw: &TestGateway, token: &str) -> (u16, Value) {
    let mut client = gw.connect_url(&format!("{}?token={token}", gw.ws_url())).await;
    let (code, frames) = client.recv_close().await;
    assert_eq!(frames.len(), 1, "one error frame before the close: {frames:?}");
    assert_eq!(frames[0]["type"], "error");
    (code, frames[0].clone())
}

#[tokio::test]
async fn expired_token_closes_4001() {
    // The default leeway is 5 s; this token expired a minute ago.
    let gw = TestGateway::start().await;
    let token = mint_hs256(SECRET, &json!({"sub": "u1", "exp": unix_now() - 60}));
    let (code, error) = close_code_for(&gw, &token).await;
    assert_eq!(code, 4001);
    assert_eq!(error["code"], "unauthorized");
    assert!(error["message"].as_str().unwrap().contains("expired"), "{error}");
}

#[tokio::test]
async fn bad_signature_closes_4003() {
    let gw = TestGateway::start().await;
    let token = mint_hs256("another-secret", &json!({"sub": "u1", "exp": unix_now() + 60}));
    assert_eq!(close_code_for(&gw, &token).await.0, 4003);
}

#[tokio::test]
async fn alg_none_closes_4003() {
    let gw = TestGateway::start().await;
    let token = unsigned_token(&json!({"sub": "u1", "exp": unix_now() + 60}));
    assert_eq!(close_code_for(&gw, &token).await.0, 4003);
}

#[tokio::test]
async fn missing_exp_closes_4003() {
    let gw = TestGateway::start().await;
    let token = mint_hs256(SECRET, &json!({"sub": "u1"}));
    assert_eq!(close_code_for(&gw, &token).await.0, 4003);
}

#[tokio::test]
async fn wrong_issuer_or_audience_closes_4003() {
    let gw = TestGateway::start_with(|c| {
        c.jwt.issuer = Some("https://auth.example".into());
        c.jwt.audience = Some("roomcast".into());
    })
    .await;
    let exp = unix_now() + 60;
    let good = mint_hs256(SECRET, &json!({"sub": "u1", "exp": exp, "iss": "https://auth.example", "aud": "roomcast"}));
    let mut client = gw.connect_url(&format!("{}?token={good}", gw.ws_url())).await;
    assert_eq!(client.recv().await["type"], "connected");

    for claims in [
        json!({"sub": "u1", "exp": exp, "iss": "https://evil.example", "aud": "roomcast"}),
        json!({"sub": "u1", "exp": exp, "iss": "https://auth.example", "aud": "other"}),
        json!({"sub": "u1", "exp": exp, "aud": "roomcast"}),
        json!({"sub": "u1", "exp": exp, "iss": "https://auth.example"}),
    ] {
        let token = mint_hs256(SECRET, &claims);
        assert_eq!(close_code_for(&gw, &token).await.0, 4003, "{claims}");
    }
}

#[tokio::test]
async fn refused_tokens_are_counted_by_reason() {
    let gw = TestGateway::start().await;
    let before = gw.metric(r#"roomcast_auth_failures_total{reason="invalid"}"#).await;
    let token = mint_hs256("another-secret", &json!({"sub": "u1", "exp": unix_now() + 60}));
    close_code_for(&gw, &token).await;
    let after = gw.metric(r#"roomcast_auth_failures_total{reason="invalid"}"#).await;
    assert!(after >= before + 1.0, "{before} -> {after}");
}
