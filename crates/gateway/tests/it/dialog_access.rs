//! `dialog:<id>` is joined when the member registry lists the user or a subscription token
//! names the user and the room; otherwise `forbidden` (or `unauthorized` for a bad token).

use crate::common::{SECRET, TestGateway};
use roomcast_gateway::auth::{mint_hs256, unix_now};
use serde_json::json;

fn subscription_token(sub: &str, room: &str) -> String {
    mint_hs256(SECRET, &json!({"sub": sub, "room": room, "exp": unix_now() + 60}))
}

#[tokio::test]
async fn a_member_may_subscribe_and_receives_events() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:42", &["u1"]).await;
    let mut client = gw.connect("u1", None).await;
    let ok = client.subscribe("dialog:42").await;
    assert_eq!(ok["room"], "dialog:42");
    assert_eq!(ok["id"], 1);
    assert_eq!(ok["offset"], 0);
    assert!(ok["epoch"].is_string());

    gw.publish(json!({"room": "dialog:42", "event": "message:new", "data": {"text": "hi"}})).await;
    let event = client.recv().await;
    assert_eq!(event["event"], "message:new");
    assert_eq!(event["offset"], 1);
    assert_eq!(event["epoch"], ok["epoch"]);
}

#[tokio::test]
async fn a_non_member_is_forbidden() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:42", &["u1"]).await;
    let mut client = gw.connect("u2", None).await;
    let reply = client.request(json!({"type": "subscribe", "id": 3, "room": "dialog:42"})).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str(), reply["id"].as_u64()),
        (Some("error"), Some("forbidden"), Some(3))
    );
    gw.publish(json!({"room": "dialog:42", "event": "message:new"})).await;
    client.roundtrip().await;
}

#[tokio::test]
async fn a_subscription_token_admits_its_user_to_its_room() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u7", None).await;
    let reply = client
        .request(
            json!({"type": "subscribe", "id": 1, "room": "dialog:9", "token": subscription_token("u7", "dialog:9")}),
        )
        .await;
    assert_eq!(reply["type"], "ok", "{reply}");
    gw.publish(json!({"room": "dialog:9", "event": "message:new"})).await;
    assert_eq!(client.recv().await["room"], "dialog:9");
}

#[tokio::test]
async fn a_subscription_token_for_another_user_or_room_is_forbidden() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u7", None).await;
    for token in [subscription_token("u8", "dialog:9"), subscription_token("u7", "dialog:10")] {
        let reply = client.request(json!({"type": "subscribe", "id": 2, "room": "dialog:9", "token": token})).await;
        assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("forbidden")), "{reply}");
    }
}

#[tokio::test]
async fn a_badly_signed_or_expired_subscription_token_is_unauthorized() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u7", None).await;
    let bad = mint_hs256("other", &json!({"sub": "u7", "room": "dialog:9", "exp": unix_now() + 60}));
    let old = mint_hs256(SECRET, &json!({"sub": "u7", "room": "dialog:9", "exp": unix_now() - 60}));
    for token in [bad, old] {
        let reply = client.request(json!({"type": "subscribe", "id": 2, "room": "dialog:9", "token": token})).await;
        assert_eq!(reply["code"], "unauthorized", "{reply}");
    }
}

#[tokio::test]
async fn invalid_room_names_are_bad_requests() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u1", None).await;
    let long = format!("dialog:{}", "x".repeat(130));
    for room in ["", "dialog 1", "dialog:ä", long.as_str()] {
        let reply = client.request(json!({"type": "subscribe", "id": 4, "room": room})).await;
        assert_eq!(reply["code"], "bad_request", "{room}: {reply}");
    }
}

#[tokio::test]
async fn rooms_per_connection_are_limited() {
    let gw = TestGateway::start_with(|c| c.max_rooms_per_connection = 3).await;
    gw.add_members("dialog:1", &["u1"]).await;
    gw.add_members("dialog:2", &["u1"]).await;
    let mut client = gw.connect("u1", None).await; // in user:u1
    client.subscribe("dialog:1").await;
    client.subscribe("dialog:1").await; // joining again is not another room
    let reply = client.request(json!({"type": "subscribe", "id": 1, "room": "dialog:2"})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    gw.add_members("dialog:3", &["u1"]).await;
    let reply = client.request(json!({"type": "subscribe", "id": 7, "room": "dialog:3"})).await;
    assert_eq!((reply["code"].as_str(), reply["id"].as_u64()), (Some("too_large"), Some(7)), "{reply}");
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_a_second_one_is_not_found() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:5", &["u1"]).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("dialog:5").await;
    let reply = client.request(json!({"type": "unsubscribe", "id": 8, "room": "dialog:5"})).await;
    assert_eq!(reply, json!({"type": "ok", "id": 8, "room": "dialog:5"}));
    gw.publish(json!({"room": "dialog:5", "event": "message:new"})).await;
    client.roundtrip().await;
    let reply = client.request(json!({"type": "unsubscribe", "id": 9, "room": "dialog:5"})).await;
    assert_eq!(reply["code"], "not_found");
}
