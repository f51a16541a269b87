//! `emit` relays allow-listed ephemeral events to the other members of a joined room, never to
//! the sender, and is rate limited per connection.

use crate::common::TestGateway;
use serde_json::json;

#[tokio::test]
async fn emit_reaches_the_others_and_not_the_sender() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:3", &["u1", "u2", "u3"]).await;
    let mut sender = gw.connect("u1", None).await;
    let mut others = vec![gw.connect("u2", None).await, gw.connect("u3", None).await];
    sender.subscribe("dialog:3").await;
    for o in &mut others {
        o.subscribe("dialog:3").await;
    }
    let ack = sender
        .request(json!({"type": "emit", "id": 11, "room": "dialog:3", "event": "typing:start", "data": {"x": 1}}))
        .await;
    // The emit is delivered before it is acknowledged, so had the sender been a recipient, the
    // event would have come first.
    assert_eq!(ack, json!({"type": "ok", "id": 11}));
    for o in &mut others {
        assert_eq!(
            o.recv().await,
            json!({"type": "event", "room": "dialog:3", "event": "typing:start", "data": {"x": 1}, "from": "u1"})
        );
    }
    // Without an id, success is silent: the next frame is the pong.
    sender.send(json!({"type": "emit", "room": "dialog:3", "event": "typing:stop"})).await;
    sender.roundtrip().await;
    assert_eq!(others[0].recv().await["data"], json!(null));
}

#[tokio::test]
async fn emit_outside_the_allow_list_or_a_joined_room_is_forbidden() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:3", &["u1"]).await;
    let mut c = gw.connect("u1", None).await;
    c.subscribe("dialog:3").await;
    let reply = c.request(json!({"type": "emit", "id": 1, "room": "dialog:3", "event": "message:new"})).await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let reply = c.request(json!({"type": "emit", "id": 2, "room": "dialog:4", "event": "typing:start"})).await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    // A failing emit without an id is still reported.
    c.send(json!({"type": "emit", "room": "dialog:4", "event": "typing:start"})).await;
    assert_eq!(c.recv().await["code"], "forbidden");
}

#[tokio::test]
async fn emit_is_rate_limited_per_connection() {
    let gw = TestGateway::start_with(|c| {
        c.emit_burst = 5;
        c.emit_rate = 0.01;
    })
    .await;
    gw.add_members("dialog:3", &["u1", "u2"]).await;
    let mut fast = gw.connect("u1", None).await;
    let mut calm = gw.connect("u1", None).await;
    fast.subscribe("dialog:3").await;
    calm.subscribe("dialog:3").await;
    let mut codes = Vec::new();
    for id in 0..8 {
        let reply = fast.request(json!({"type": "emit", "id": id, "room": "dialog:3", "event": "typing:start"})).await;
        codes.push(reply["code"].as_str().unwrap_or("ok").to_owned());
    }
    assert_eq!(codes, ["ok", "ok", "ok", "ok", "ok", "rate_limited", "rate_limited", "rate_limited"]);
    // The limit is per connection: another connection of the same user still has its burst.
    let reply = calm.request(json!({"type": "emit", "id": 1, "room": "dialog:3", "event": "typing:start"})).await;
    assert_eq!(reply["type"], "ok");
}
