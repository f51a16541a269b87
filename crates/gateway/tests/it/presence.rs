//! Presence on one node (the embedded broker): who is in a room, counted once per user with
//! their connections, `join` / `leave` frames to the members that asked for them, online
//! status with its grace period, and the API that reads them, whose bad requests are 400s
//! naming the field.

use std::time::Duration;

use roomcast_testkit::eventually;
use serde_json::{Value, json};

use crate::common::{TestClient, TestGateway};

async fn presence(client: &mut TestClient, room: &str) -> Value {
    let reply = client.request(json!({"type": "presence", "id": 7, "room": room})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    reply["presence"].clone()
}

#[tokio::test]
async fn a_presence_room_counts_each_user_once_and_tells_the_watchers_of_first_and_last() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:p", &["u1", "u2"]).await;
    let mut a = gw.connect("u1", None).await;
    let reply = a.request(json!({"type": "subscribe", "id": 1, "room": "dialog:p", "presence": true})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let mut b1 = gw.connect("u2", None).await;
    b1.subscribe("dialog:p").await;
    assert_eq!(a.recv().await, json!({"type": "join", "room": "dialog:p", "user": "u2"}));

    // A second connection of the same user is no second join, only one more connection.
    let mut b2 = gw.connect("u2", None).await;
    b2.subscribe("dialog:p").await;
    eventually("u2's second connection to count", async || {
        presence(&mut a, "dialog:p").await == json!({"u1": {"connections": 1}, "u2": {"connections": 2}})
    })
    .await;
    let stats = a.request(json!({"type": "presence_stats", "id": 8, "room": "dialog:p"})).await;
    assert_eq!((stats["users"].as_u64(), stats["connections"].as_u64()), (Some(2), Some(3)), "{stats}");
    let (status, api) = gw.api("presence", &json!({"room": "dialog:p"})).await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(api["users"]["u2"]["connections"], 2);

    // The first of u2's connections goes: still there. The last: `leave`, once.
    drop(b1);
    eventually("u2 down to one connection", async || presence(&mut a, "dialog:p").await["u2"]["connections"] == 1)
        .await;
    drop(b2);
    assert_eq!(a.recv().await, json!({"type": "leave", "room": "dialog:p", "user": "u2"}));
    assert_eq!(presence(&mut a, "dialog:p").await, json!({"u1": {"connections": 1}}));

    // Presence is asked of a room one is in, and only where it is kept.
    let refused = a.request(json!({"type": "presence", "id": 9, "room": "dialog:other"})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let off = a.request(json!({"type": "subscribe", "id": 10, "room": "user:u1", "presence": true})).await;
    assert_eq!(off["code"], "bad_request", "{off}");
}

#[tokio::test]
async fn online_status_goes_offline_after_the_grace_unless_a_connection_comes_back() {
    let gw = TestGateway::start_with(|c| c.presence.offline_grace = Duration::from_millis(300)).await;
    let online = async |user: &str| {
        let (status, reply) = gw.api("online", &json!({"users": [user, "nobody"]})).await;
        assert_eq!(status, 200, "{reply}");
        (reply["users"][user].clone(), reply["users"]["nobody"].clone())
    };
    let client = gw.connect("u1", None).await;
    eventually("u1 online", async || online("u1").await.0["status"] == "online").await;
    let (u1, nobody) = online("u1").await;
    assert_eq!((u1["online"].as_bool(), u1["connections"].as_u64()), (Some(true), Some(1)), "{u1}");
    assert_eq!(nobody, json!({"online": false, "status": "offline", "connections": 0}));

    drop(client);
    eventually("u1 leaving", async || online("u1").await.0["status"] == "leaving").await;
    let back = gw.connect("u1", None).await;
    eventually("u1 online again", async || online("u1").await.0["status"] == "online").await;
    drop(back);
    eventually("u1 offline after the grace", async || online("u1").await.0["status"] == "offline").await;
    let (u1, _) = online("u1").await;
    assert!(u1["last_seen"].as_u64().is_some_and(|t| t > 1_700_000_000_000), "{u1}");
}

#[tokio::test]
async fn bad_presence_and_online_requests_are_400s_naming_the_field() {
    let gw = TestGateway::start().await;
    let cases = [
        ("online", json!({"users": []}), "users: is empty"),
        ("online", json!({"users": ["a", "u 1"]}), "users[1]:"),
        ("online", json!({"users": vec!["u"; 1001]}), "users: 1001 users, the limit is 1000"),
        ("online", json!(["u1"]), "body:"),
        ("online", json!({"users": ["a"], "extra": 1}), "body:"),
        ("presence", json!({"room": "org:o1"}), "room: presence is not kept for org:o1"),
        ("presence", json!({"room": "bad room"}), "room:"),
        ("presence", json!({}), "body:"),
    ];
    for (path, body, expected) in cases {
        let (status, reply) = gw.api(path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert_eq!(reply["error"], "bad_request");
        assert!(reply["message"].as_str().unwrap().starts_with(expected), "{path} {body}: {reply}");
    }
    let (status, info) = gw.get("/api/info").await;
    assert_eq!(status, 401, "the API key is needed: {info}");
}

#[tokio::test]
async fn with_presence_off_nothing_is_counted_and_the_api_says_so() {
    let gw = TestGateway::start_with(|c| c.presence.enabled = false).await;
    gw.add_members("dialog:off", &["u1"]).await;
    let mut a = gw.connect("u1", None).await;
    let refused = a.request(json!({"type": "subscribe", "id": 1, "room": "dialog:off", "presence": true})).await;
    assert_eq!(refused["code"], "bad_request", "{refused}");
    a.subscribe("dialog:off").await;
    let (status, online) = gw.api("online", &json!({"users": ["u1"]})).await;
    assert_eq!(status, 400, "{online}");
    assert!(online["message"].as_str().unwrap().contains("presence=false"), "{online}");
    let (status, presence) = gw.api("presence", &json!({"room": "dialog:off"})).await;
    assert_eq!(status, 400, "{presence}");
    assert!(presence["message"].as_str().unwrap().contains("presence=false"), "{presence}");
}
