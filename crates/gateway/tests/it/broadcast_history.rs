//! `POST /api/broadcast` (one event into up to 1000 rooms, each with its own offset, one message
//! id, a retry delivering nothing twice) and `POST /api/history` (pages of what a room keeps),
//! on the embedded broker and on Redis; every bad body a 400 naming the field, nothing written.

use roomcast_testkit::RedisServer;
use serde_json::{Value, json};

use crate::common::TestGateway;

/// A broadcast into 1000 `user:` rooms reaches a member of the first and of the last, each
/// event at its own room's next offset; the same id again is delivered to no one.
async fn broadcast_reaches_every_room_once(gw: &TestGateway) {
    let rooms: Vec<String> = (0..1000).map(|i| format!("user:b{i}")).collect();
    let mut first = gw.connect("b0", None).await;
    let mut last = gw.connect("b999", None).await;
    // b999's room already has an event, so the broadcast is its second.
    gw.publish(json!({"room": "user:b999", "event": "before", "data": 1})).await;
    assert_eq!(last.recv().await["event"], "before");

    let body = json!({"rooms": rooms, "event": "unread:updated", "data": {"n": 1}, "id": "bc-1"});
    let (status, reply) = gw.api("broadcast", &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["id"], "bc-1");
    let entries = reply["rooms"].as_array().unwrap();
    assert_eq!(entries.len(), 1000);
    assert_eq!((entries[0]["room"].as_str(), entries[0]["offset"].as_u64()), (Some("user:b0"), Some(1)));
    assert_eq!((entries[999]["room"].as_str(), entries[999]["offset"].as_u64()), (Some("user:b999"), Some(2)));
    for (client, offset) in [(&mut first, 1), (&mut last, 2)] {
        let event = client.recv().await;
        assert_eq!((event["event"].as_str(), event["id"].as_str()), (Some("unread:updated"), Some("bc-1")), "{event}");
        assert_eq!((event["offset"].as_u64(), &event["data"]), (Some(offset), &json!({"n": 1})), "{event}");
    }

    // A retry with the same id (after a 503, say) lands nowhere again.
    let (status, again) = gw.api("broadcast", &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["rooms"][999]["offset"], 2, "{again}");
    gw.publish(json!({"room": "user:b0", "event": "after"})).await;
    assert_eq!(first.recv().await["event"], "after", "the retried broadcast was delivered again");
}

/// Pages of a room's history: the latest without `since`, the ones after it with it, `more`
/// while events follow, `recovered:false` for another epoch; nothing written by a read.
async fn history_pages_read_what_the_room_keeps(gw: &TestGateway) {
    let (_, empty) = gw.api("history", &json!({"room": "dialog:never"})).await;
    assert_eq!((empty["offset"].as_u64(), empty["events"].as_array().map(Vec::len)), (Some(0), Some(0)), "{empty}");
    for i in 1..=5 {
        gw.publish(json!({"room": "dialog:h", "event": "message:new", "data": {"i": i}, "id": format!("h{i}")})).await;
    }
    let (status, latest) = gw.api("history", &json!({"room": "dialog:h", "limit": 2})).await;
    assert_eq!(status, 200, "{latest}");
    let epoch = latest["epoch"].as_str().unwrap().to_owned();
    assert_eq!(offsets(&latest), [4, 5]);
    assert_eq!((latest["offset"].as_u64(), latest["more"].as_bool()), (Some(5), Some(false)), "{latest}");
    assert_eq!(latest["recovered"], Value::Null, "no since, no recovered");
    let event = &latest["events"][1];
    assert_eq!(
        (event["type"].as_str(), event["room"].as_str(), event["id"].as_str(), &event["data"]),
        (Some("event"), Some("dialog:h"), Some("h5"), &json!({"i": 5})),
        "{event}"
    );

    let (_, page) =
        gw.api("history", &json!({"room": "dialog:h", "since": {"offset": 1, "epoch": epoch}, "limit": 2})).await;
    assert_eq!(
        (offsets(&page), page["more"].as_bool(), page["recovered"].as_bool()),
        (vec![2, 3], Some(true), Some(true))
    );
    let (_, rest) = gw.api("history", &json!({"room": "dialog:h", "since": {"offset": 3, "epoch": epoch}})).await;
    assert_eq!(
        (offsets(&rest), rest["more"].as_bool(), rest["recovered"].as_bool()),
        (vec![4, 5], Some(false), Some(true))
    );
    let (_, caught_up) = gw.api("history", &json!({"room": "dialog:h", "since": {"offset": 5, "epoch": epoch}})).await;
    assert_eq!((offsets(&caught_up), caught_up["recovered"].as_bool()), (vec![], Some(true)));
    // A position past the room's end (a number from outside, up to u64::MAX) is no panic.
    let (status, ahead) =
        gw.api("history", &json!({"room": "dialog:h", "since": {"offset": u64::MAX, "epoch": epoch}})).await;
    assert_eq!((status, offsets(&ahead), ahead["recovered"].as_bool()), (200, vec![], Some(false)), "{ahead}");
    let (_, other) = gw.api("history", &json!({"room": "dialog:h", "since": {"offset": 1, "epoch": "old"}})).await;
    assert_eq!((offsets(&other), other["recovered"].as_bool()), (vec![], Some(false)));
}

fn offsets(page: &Value) -> Vec<u64> {
    page["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn broadcast_and_history_on_the_embedded_broker() {
    let gw = TestGateway::start().await;
    broadcast_reaches_every_room_once(&gw).await;
    history_pages_read_what_the_room_keeps(&gw).await;
}

#[tokio::test]
async fn broadcast_and_history_on_redis() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    broadcast_reaches_every_room_once(&gw).await;
    history_pages_read_what_the_room_keeps(&gw).await;
    let mut c = redis.connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*dialog:never*").query(&mut c).unwrap();
    assert_eq!(keys, Vec::<String>::new(), "a history read wrote keys");
}

#[tokio::test]
async fn bad_broadcast_and_history_bodies_are_400s_naming_the_field_and_write_nothing() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    let many: Vec<String> = (0..1001).map(|i| format!("user:u{i}")).collect();
    let thousand: Vec<String> = (0..1000).map(|i| format!("user:u{i}")).collect();
    let big = "x".repeat(20_000);
    let cases = [
        ("broadcast", json!({"rooms": thousand, "event": "e", "data": big}), "data: 20002 bytes into 1000 rooms"),
        ("broadcast", json!({"rooms": [], "event": "e"}), "rooms: 0 rooms"),
        ("broadcast", json!({"rooms": many, "event": "e"}), "rooms: 1001 rooms"),
        ("broadcast", json!({"rooms": ["user:a", "bad room"], "event": "e"}), "rooms[1]:"),
        (
            "broadcast",
            json!({"rooms": ["user:a", "user:b", "user:a"], "event": "e"}),
            "rooms[2]: user:a is named twice",
        ),
        ("broadcast", json!({"rooms": ["user:a"], "event": ""}), "event: is empty"),
        ("broadcast", json!({"rooms": ["user:a"], "event": "e", "id": "x".repeat(257)}), "id: is 257 bytes"),
        ("broadcast", json!({"rooms": ["user:a"], "event": "e", "exclude_user": "u 1"}), "exclude_user:"),
        ("broadcast", json!(["user:a"]), "body:"),
        ("broadcast", json!({"rooms": ["user:a"]}), "body:"),
        ("history", json!({"room": "dialog:x", "limit": 0}), "limit: 0 is not 1 to 1000"),
        ("history", json!({"room": "dialog:x", "limit": 1001}), "limit: 1001 is not 1 to 1000"),
        ("history", json!({"room": "dialog:x", "since": {"offset": -1, "epoch": "e"}}), "body:"),
        ("history", json!({"room": "dialog:x", "since": {"offset": 1}}), "body:"),
        ("history", json!({"room": "bad room"}), "room:"),
    ];
    for (path, body, expected) in cases {
        let (status, reply) = gw.api(path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert_eq!(reply["error"], "bad_request");
        assert!(reply["message"].as_str().unwrap().starts_with(expected), "{path} {body}: {reply}");
    }
    let mut c = redis.connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*user:a*").query(&mut c).unwrap();
    assert_eq!(keys, Vec::<String>::new(), "a refused broadcast wrote {keys:?}");
}
