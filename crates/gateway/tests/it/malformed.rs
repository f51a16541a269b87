//! Malformed frames get an `error` and the connection lives on; binary frames break the
//! protocol and close it with 4400.

use crate::common::TestGateway;
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_json_unknown_types_and_missing_fields_get_bad_request() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("u1", None).await;

    c.send_text("{not json").await;
    let reply = c.recv().await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("bad_request")), "{reply}");

    c.send(json!({"type": "teleport", "id": 12})).await;
    let reply = c.recv().await;
    assert_eq!((reply["code"].as_str(), reply["id"].as_u64()), (Some("bad_request"), Some(12)));
    assert!(reply["message"].as_str().unwrap().contains("teleport"), "{reply}");

    c.send(json!({"type": "subscribe", "id": 13})).await;
    let reply = c.recv().await;
    assert_eq!(reply["id"], 13);
    assert!(reply["message"].as_str().unwrap().contains("room"), "{reply}");

    for text in ["[]", "42", "\"x\"", "{}", r#"{"type":7}"#, r#"{"type":"ping","id":-1}"#] {
        c.send_text(text).await;
        assert_eq!(c.recv().await["code"], "bad_request", "{text}");
    }

    // Unknown fields are ignored.
    let pong = c.request(json!({"type": "ping", "id": 14, "extra": {"a": 1}})).await;
    assert_eq!(pong, json!({"type": "pong", "id": 14}));

    c.send(json!({"type": "auth", "token": "x"})).await;
    assert_eq!(c.recv().await["code"], "bad_request");
    c.roundtrip().await;
}

#[tokio::test]
async fn a_binary_frame_closes_4400() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("u1", None).await;
    c.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(c.recv_close().await.0, 4400);
}
