//! Removing a user from a room's member set ends their live subscriptions with `left`.

use crate::common::TestGateway;
use serde_json::json;

#[tokio::test]
async fn a_removed_member_gets_left_and_no_more_events() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:42", &["u1", "u2"]).await;
    let mut removed = gw.connect("u1", None).await;
    let mut second_tab = gw.connect("u1", None).await;
    let mut stays = gw.connect("u2", None).await;
    for client in [&mut removed, &mut second_tab, &mut stays] {
        client.subscribe("dialog:42").await;
    }

    let (status, reply) = gw.api("members", &json!({"room": "dialog:42", "remove": ["u1"]})).await;
    assert_eq!((status, reply), (200, json!({"added": 0, "removed": 1})));
    for client in [&mut removed, &mut second_tab] {
        assert_eq!(client.recv().await, json!({"type": "left", "room": "dialog:42", "reason": "removed"}));
    }

    gw.publish(json!({"room": "dialog:42", "event": "message:new", "data": 1})).await;
    assert_eq!(stays.recv().await["data"], 1);
    // The removed user's next frame is the pong, not the event.
    removed.roundtrip().await;

    // And they cannot come back without being added again.
    let reply = removed.request(json!({"type": "subscribe", "id": 1, "room": "dialog:42"})).await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
}

#[tokio::test]
async fn adding_twice_counts_once() {
    let gw = TestGateway::start().await;
    let (_, reply) = gw.api("members", &json!({"room": "dialog:1", "add": ["a", "b"]})).await;
    assert_eq!(reply, json!({"added": 2, "removed": 0}));
    let (_, reply) = gw.api("members", &json!({"room": "dialog:1", "add": ["a"], "remove": ["c"]})).await;
    assert_eq!(reply, json!({"added": 0, "removed": 0}));
}
