//! A connection is in `user:<sub>` and `org:<org>` from the start, and can never join another
//! user's or another org's room.

use crate::common::TestGateway;
use serde_json::json;

#[tokio::test]
async fn user_and_org_rooms_are_joined_at_connect() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u1", Some("o1")))).await;
    let connected = client.recv().await;
    assert_eq!(connected["rooms"], json!(["user:u1", "org:o1"]));

    gw.publish(json!({"room": "user:u1", "event": "user:notification", "data": {"n": 1}})).await;
    let event = client.recv().await;
    assert_eq!((event["room"].as_str(), event["event"].as_str()), (Some("user:u1"), Some("user:notification")));
    assert_eq!(event["data"], json!({"n": 1}));

    gw.publish(json!({"room": "org:o1", "event": "chat:updated", "data": {}})).await;
    assert_eq!(client.recv().await["room"], "org:o1");
}

#[tokio::test]
async fn another_users_or_orgs_room_is_forbidden() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u1", Some("o1")).await;
    for room in ["user:u2", "org:o2"] {
        let reply = client.request(json!({"type": "subscribe", "id": 5, "room": room})).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "forbidden");
        assert_eq!(reply["id"], 5);
    }
    // Events for those rooms never arrive: the next frame is the reply to the ping.
    gw.publish(json!({"room": "user:u2", "event": "x"})).await;
    client.roundtrip().await;
}

#[tokio::test]
async fn a_connection_without_org_is_in_its_user_room_only() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u9", None))).await;
    assert_eq!(client.recv().await["rooms"], json!(["user:u9"]));
}

#[tokio::test]
async fn connected_names_the_position_of_each_auto_joined_room() {
    let gw = TestGateway::start().await;
    gw.publish(json!({"room": "user:u1", "event": "before"})).await;
    gw.publish(json!({"room": "user:u1", "event": "before"})).await;
    let mut client = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u1", Some("o1")))).await;
    let connected = client.recv().await;
    let positions = &connected["positions"];
    assert_eq!(positions["user:u1"]["offset"], 2, "{connected}");
    assert_eq!(positions["org:o1"]["offset"], 0, "{connected}");
    let epoch = positions["user:u1"]["epoch"].as_str().expect("an epoch").to_owned();

    // The next event follows the position exactly, in the same epoch.
    gw.publish(json!({"room": "user:u1", "event": "after"})).await;
    let event = client.recv().await;
    assert_eq!((event["offset"].as_u64(), event["epoch"].as_str()), (Some(3), Some(epoch.as_str())), "{event}");
}
