//! `POST /api/publish` reaches every member of the room but the excluded user, with offsets in
//! order; bad requests get 400 naming the problem, a wrong key 401.

use crate::common::{API_KEY, TestGateway};
use serde_json::json;

#[tokio::test]
async fn every_member_receives_in_offset_order_except_the_excluded_user() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:7", &["u1", "u2", "u3"]).await;
    let mut clients = Vec::new();
    for user in ["u1", "u2", "u3"] {
        let mut c = gw.connect(user, None).await;
        c.subscribe("dialog:7").await;
        clients.push(c);
    }
    let first = gw.publish(json!({"room": "dialog:7", "event": "message:new", "data": {"n": 1}, "id": "m-1"})).await;
    assert_eq!((first["offset"].as_u64(), first["id"].as_str()), (Some(1), Some("m-1")));
    let second =
        gw.publish(json!({"room": "dialog:7", "event": "message:new", "data": {"n": 2}, "exclude_user": "u1"})).await;
    assert_eq!(second["offset"], 2);
    assert_eq!(second["epoch"], first["epoch"]);
    assert!(second["id"].as_str().is_some_and(|id| !id.is_empty()), "an id is made when none is given");
    let third = gw.publish(json!({"room": "dialog:7", "event": "message:status", "data": {"n": 3}})).await;

    let e = clients[0].recv().await;
    assert_eq!(
        e,
        json!({"type": "event", "room": "dialog:7", "event": "message:new", "data": {"n": 1}, "id": "m-1", "offset": 1, "epoch": first["epoch"]})
    );
    // u1 skips offset 2: its next event is the third.
    assert_eq!(clients[0].recv().await["offset"], 3);
    for c in &mut clients[1..] {
        let offsets: Vec<_> =
            [c.recv().await, c.recv().await, c.recv().await].iter().map(|e| e["offset"].clone()).collect();
        assert_eq!(offsets, [json!(1), json!(2), json!(3)]);
    }
    assert_eq!(third["offset"], 3);
}

#[tokio::test]
async fn publishing_to_an_empty_room_still_assigns_offsets() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.publish(json!({"room": "dialog:empty", "event": "x"})).await["offset"], 1);
    assert_eq!(gw.publish(json!({"room": "dialog:empty", "event": "x"})).await["offset"], 2);
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_problem() {
    let gw = TestGateway::start().await;
    let cases = [
        ("{not json", "body"),
        (r#"{"event":"x"}"#, "room"),
        (r#"{"room":"dialog:1"}"#, "event"),
        (r#"{"room":"dialog 1","event":"x"}"#, "room"),
        (r#"{"room":"dialog:1","event":""}"#, "event"),
        (r#"{"room":"dialog:1","event":"x","colour":"red"}"#, "colour"),
        (r#"{"room":"dialog:1","event":"x","data":{"a":}}"#, "body"),
    ];
    for (body, named) in cases {
        let (status, reply) = gw.api_raw("publish", body, Some(API_KEY)).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["error"], "bad_request");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message:?} should name {named}");
    }
    // Nothing was published by the refused requests.
    assert_eq!(gw.publish(json!({"room": "dialog:1", "event": "x"})).await["offset"], 1);
}

#[tokio::test]
async fn wrong_or_missing_key_is_401() {
    let gw = TestGateway::start().await;
    let body = r#"{"room":"dialog:1","event":"x"}"#;
    for key in [None, Some("wrong")] {
        let (status, reply) = gw.api_raw("publish", body, key).await;
        assert_eq!(status, 401, "{reply}");
        assert_eq!(reply["error"], "unauthorized");
    }
}

#[tokio::test]
async fn the_api_is_closed_while_no_key_is_configured() {
    let gw = TestGateway::start_with(|c| c.api_key = None).await;
    let (status, reply) = gw.api_raw("publish", r#"{"room":"dialog:1","event":"x"}"#, Some("anything")).await;
    assert_eq!(status, 401);
    assert!(reply["message"].as_str().unwrap().contains("ROOMCAST_API_KEY"), "{reply}");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let gw = TestGateway::start_with(|c| c.max_api_body = 1024).await;
    let body = json!({"room": "dialog:1", "event": "x", "data": "a".repeat(2000)}).to_string();
    let (status, reply) = gw.api_raw("publish", &body, Some(API_KEY)).await;
    assert_eq!(status, 413, "{reply}");
}

#[tokio::test]
async fn members_apply_to_member_rooms_only() {
    let gw = TestGateway::start().await;
    let (status, reply) = gw.api("members", &json!({"room": "user:u1", "add": ["u2"]})).await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = gw.api("members", &json!({"room": "dialog:1", "add": [""]})).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("user"), "{reply}");
}

#[tokio::test]
async fn disconnect_closes_every_connection_of_the_user() {
    let gw = TestGateway::start().await;
    let mut a = gw.connect("u3", None).await;
    let mut b = gw.connect("u3", None).await;
    let mut other = gw.connect("u4", None).await;
    let (status, reply) = gw.api("disconnect", &json!({"user": "u3"})).await;
    assert_eq!((status, reply), (200, json!({"closed": 2})));
    assert_eq!(a.recv_close().await.0, 4003);
    assert_eq!(b.recv_close().await.0, 4003);
    other.roundtrip().await;

    let mut c = gw.connect("u4", None).await;
    let (_, reply) = gw.api("disconnect", &json!({"user": "u4", "code": 4000})).await;
    assert_eq!(reply["closed"], 2);
    assert_eq!(c.recv_close().await.0, 4000);

    let (status, reply) = gw.api("disconnect", &json!({"user": "u4", "code": 1006})).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("code"), "{reply}");
}
