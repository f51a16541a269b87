//! Times read from a token are clamped and enforced to the sub-second: a huge `exp` neither
//! panics the connection task nor keeps it alive after the client leaves, and a token is closed
//! with 4001 at `exp` + leeway, not later (issue 17, faults 1 and 2).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{SECRET, TestGateway};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use roomcast_testkit::eventually;
use serde_json::json;

/// The latest `exp` the gateway honours: 9999-12-31T23:59:59Z, exact in every JSON parser.
const LATEST_EXP: u64 = 253_402_300_799;

fn now_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn token(exp: u64) -> String {
    mint_hs256(SECRET, &json!({"sub": "u1", "exp": exp}))
}

#[tokio::test]
async fn a_huge_exp_at_connect_neither_panics_nor_leaks_the_connection() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect_url(&format!("{}?token={}", gw.ws_url(), token(u64::MAX))).await;
    let connected = c.recv().await;
    assert_eq!(connected["type"], "connected", "{connected}");
    // A task that panicked would have closed the socket (1011) instead of answering.
    c.roundtrip().await;
    assert_eq!(connected["expires_at"], LATEST_EXP, "exp is clamped to the end of year 9999");
    assert_eq!(gw.metric("roomcast_connections_open").await, 1.0);
    c.ws.close(None).await.unwrap();
    eventually("the connection to be released", async || gw.metric("roomcast_connections_open").await == 0.0).await;
}

#[tokio::test]
async fn a_refresh_to_a_huge_exp_neither_panics_nor_leaks_the_connection() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("u1", None).await;
    let reply = c.request(json!({"type": "refresh", "id": 3, "token": token(u64::MAX)})).await;
    c.roundtrip().await;
    assert_eq!(reply, json!({"type": "ok", "id": 3, "expires_at": LATEST_EXP}));
    // Fractional and far-off numeric dates are clamped the same way.
    let far = mint_hs256(SECRET, &json!({"sub": "u1", "exp": 1e300}));
    let reply = c.request(json!({"type": "refresh", "id": 4, "token": far})).await;
    assert_eq!(reply, json!({"type": "ok", "id": 4, "expires_at": LATEST_EXP}));
    c.roundtrip().await;
    c.ws.close(None).await.unwrap();
    eventually("the connection to be released", async || gw.metric("roomcast_connections_open").await == 0.0).await;
}

#[tokio::test]
async fn a_token_inside_the_leeway_is_closed_at_exp_plus_the_leeway() {
    // Default leeway: 5 s. The token expired 3 s ago (whole seconds), so it still connects and
    // must be closed 2 s from now, at exp + 5 s, not 5 s from now.
    let gw = TestGateway::start().await;
    let exp = unix_now() - 3;
    let mut c = gw.connect_url(&format!("{}?token={}", gw.ws_url(), token(exp))).await;
    assert_eq!(c.recv().await["type"], "connected");
    let (code, _) = c.recv_close().await;
    let late = now_f64() - (exp + 5) as f64;
    assert_eq!(code, 4001);
    assert!((-0.05..=0.5).contains(&late), "closed {late:.2} s after exp + leeway");
}

#[tokio::test]
async fn a_live_expiry_is_enforced_to_the_sub_second() {
    let gw = TestGateway::start_with(|c| c.jwt.leeway = Duration::ZERO).await;
    // Connect 0.6 s into a second: a node that counted "now" in whole seconds would then close
    // 0.6 s or more after exp. This waits for the clock, not for anything to be ready.
    let into_second = now_f64().fract();
    tokio::time::sleep(Duration::from_secs_f64((0.6 - into_second).rem_euclid(1.0))).await;
    let exp = unix_now() + 2;
    let mut c = gw.connect_url(&format!("{}?token={}", gw.ws_url(), token(exp))).await;
    assert_eq!(c.recv().await["expires_at"], exp);
    let (code, _) = c.recv_close().await;
    let late = now_f64() - exp as f64;
    assert_eq!(code, 4001);
    assert!((-0.05..=0.5).contains(&late), "closed {late:.2} s after exp");
}
