//! Only JSON objects are commands and API bodies, nesting is bounded, and every id field has
//! the limits of a token's `sub` (issue 17, faults 3 and 8). Whatever is refused changes nothing.

use crate::common::TestGateway;
use serde_json::{Value, json};

/// `depth` nested arrays around a 1, as JSON text.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn arrays_are_not_commands() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:pos", &["u1"]).await;
    let mut c = gw.connect("u1", Some("o1")).await;
    let mut other = gw.connect("u2", Some("o1")).await;
    for text in
        [r#"["ping",31]"#, r#"["subscribe",32,"dialog:pos"]"#, r#"["emit",34,"org:o1",null,null,"typing:start"]"#]
    {
        c.send_text(text).await;
        let reply = c.recv().await;
        assert_eq!(reply["code"], "bad_request", "{text}: {reply}");
    }
    // A nested object given as an array is refused as well.
    c.send_text(r#"{"type":"subscribe","id":35,"room":"dialog:pos","since":[0,"e"]}"#).await;
    assert_eq!(c.recv().await["code"], "bad_request");
    // Nothing happened: not subscribed, nothing emitted.
    let reply = c.request(json!({"type": "unsubscribe", "id": 36, "room": "dialog:pos"})).await;
    assert_eq!(reply["code"], "not_found", "{reply}");
    c.send(json!({"type": "emit", "room": "org:o1", "event": "typing:stop"})).await;
    assert_eq!(other.recv().await["event"], "typing:stop", "the first event the other member gets");
}

#[tokio::test]
async fn api_bodies_must_be_objects_and_nothing_is_written() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:api", &["u1"]).await;
    let mut c = gw.connect("u1", None).await;
    c.subscribe("dialog:api").await;
    let mut pa2 = gw.connect("pa2", None).await;

    for (path, body) in [
        ("publish", r#"["dialog:api","arr:event",{"x":1}]"#),
        ("members", r#"["dialog:api",["pa2"],[]]"#),
        ("disconnect", r#"["pa2",4000]"#),
        ("publish", r#"{"room":"dialog:api","event":"e","data":null,"id":"m","exclude_user":["u1"]}"#),
        ("publish", "42"),
    ] {
        let (status, reply) = gw.api_raw(path, body, Some(crate::common::API_KEY)).await;
        assert_eq!((status, reply["error"].as_str()), (400, Some("bad_request")), "{path} {body}: {reply}");
    }
    // Not published: the next event is offset 1.
    let reply = gw.publish(json!({"room": "dialog:api", "event": "marker"})).await;
    assert_eq!(reply["offset"], 1, "{reply}");
    assert_eq!(c.recv().await["event"], "marker");
    // Not added, not disconnected.
    let refused = pa2.request(json!({"type": "subscribe", "id": 1, "room": "dialog:api"})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    pa2.roundtrip().await;
}

#[tokio::test]
async fn deep_nesting_is_refused_from_clients_and_backends() {
    let gw = TestGateway::start().await;
    gw.add_members("dialog:deep", &["u1", "u2"]).await;
    let mut c = gw.connect("u1", None).await;
    let mut other = gw.connect("u2", None).await;
    c.subscribe("dialog:deep").await;
    other.subscribe("dialog:deep").await;

    let deep = nested(10_000);
    c.send_text(&format!(r#"{{"type":"emit","id":5,"room":"dialog:deep","event":"typing:start","data":{deep}}}"#))
        .await;
    let reply = c.recv().await;
    assert_eq!((reply["code"].as_str(), reply["id"].as_u64()), (Some("bad_request"), Some(5)), "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("max_json_depth"), "{reply}");

    let body = format!(r#"{{"room":"dialog:deep","event":"deep","data":{deep}}}"#);
    let (status, reply) = gw.api_raw("publish", &body, Some(crate::common::API_KEY)).await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("max_json_depth"), "{reply}");

    // At the limit (64, the frame itself counting as one level) everything passes.
    let data: Value = serde_json::from_str(&nested(63)).unwrap();
    let reply =
        c.request(json!({"type": "emit", "id": 6, "room": "dialog:deep", "event": "typing:start", "data": data})).await;
    assert_eq!(reply, json!({"type": "ok", "id": 6}));
    let first = other.recv().await;
    assert_eq!(first["data"], data, "the first event the other member gets is the one at the limit");
    let published = gw.publish(json!({"room": "dialog:deep", "event": "deep", "data": data})).await;
    assert_eq!(published["offset"], 1, "the refused publish wrote nothing");
}

#[tokio::test]
async fn every_user_id_field_has_the_limits_of_a_sub() {
    let gw = TestGateway::start().await;
    let long = "u".repeat(300);
    for (path, body, field) in [
        ("publish", json!({"room": "dialog:1", "event": "e", "exclude_user": long}), "exclude_user"),
        ("publish", json!({"room": "dialog:1", "event": "e", "exclude_user": "u 1"}), "exclude_user"),
        ("members", json!({"room": "dialog:1", "add": ["u 1"]}), "add"),
        ("members", json!({"room": "dialog:1", "add": ["ok", "u/../x"]}), "add"),
        ("members", json!({"room": "dialog:1", "remove": [long]}), "remove"),
        ("disconnect", json!({"user": "u 1"}), "user"),
        ("disconnect", json!({"user": long}), "user"),
    ] {
        let (status, reply) = gw.api(path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert!(reply["message"].as_str().unwrap().starts_with(field), "{path} {body}: {reply}");
    }
    // Nothing of the refused member change was applied.
    let (_, reply) = gw.api("members", &json!({"room": "dialog:1", "add": ["ok"]})).await;
    assert_eq!(reply, json!({"added": 1, "removed": 0}));
    // The longest valid user id: a `user:` room of 128 bytes.
    let longest = "u".repeat(123);
    let (status, reply) = gw.api("disconnect", &json!({"user": longest})).await;
    assert_eq!(status, 200, "{reply}");
}
