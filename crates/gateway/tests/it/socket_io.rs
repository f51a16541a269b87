//! Socket.IO v5 as the gateway serves it (`/socket.io/` of the conformance servers): every
//! behaviour the Socket.IO project's protocol suite checks, in our words.

use tokio_tungstenite::tungstenite::Message;

use crate::conformance::{Ws, closed, next, open_polling, say, say_binary, start, text, text_not_ping, ws};

const S: &str = "/socket.io/?EIO=4&transport=websocket";

/// A socket past the Engine.IO handshake.
async fn opened(addr: std::net::SocketAddr) -> Ws {
    let mut socket = ws(addr, S).await;
    assert!(text(&mut socket).await.starts_with('0'), "the Engine.IO open packet");
    socket
}

/// A socket connected to the main namespace (its handshake and `auth` read).
async fn connected(addr: std::net::SocketAddr) -> Ws {
    let mut socket = opened(addr).await;
    say(&mut socket, "40").await;
    assert!(text_not_ping(&mut socket).await.starts_with("40"));
    assert_eq!(text_not_ping(&mut socket).await, r#"42["auth",{}]"#);
    socket
}

/// The sid of a CONNECT reply (`40[<ns>,]{"sid":...}`) after `prefix`, which must be all it has.
fn connect_sid(reply: &str, prefix: &str) -> String {
    let body: serde_json::Value = serde_json::from_str(reply.strip_prefix(prefix).expect(prefix)).unwrap();
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["sid"], "{reply}");
    body["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_polling_and_websocket_handshakes_are_engine_ios() {
    let addr = start().await;
    let (_, handshake) = open_polling(addr, "/socket.io/").await;
    assert_eq!(handshake["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(handshake["pingInterval"], 300);
    let mut socket = ws(addr, S).await;
    let open: serde_json::Value = serde_json::from_str(&text(&mut socket).await[1..]).unwrap();
    assert_eq!(open["upgrades"], serde_json::json!([]));
}

#[tokio::test]
async fn a_namespace_connects_with_or_without_a_payload_and_an_unknown_one_is_refused() {
    let addr = start().await;
    for (connect, prefix, auth) in [
        ("40", "40", r#"42["auth",{}]"#),
        (r#"40{"token":"123"}"#, "40", r#"42["auth",{"token":"123"}]"#),
        ("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#),
        (r#"40/custom,{"token":"abc"}"#, "40/custom,", r#"42/custom,["auth",{"token":"abc"}]"#),
    ] {
        let mut socket = opened(addr).await;
        say(&mut socket, connect).await;
        assert!(!connect_sid(&text_not_ping(&mut socket).await, prefix).is_empty());
        assert_eq!(text_not_ping(&mut socket).await, auth, "after {connect}");
    }
    let mut socket = opened(addr).await;
    say(&mut socket, "40/random").await;
    assert_eq!(text_not_ping(&mut socket).await, r#"44/random,{"message":"Invalid namespace"}"#);
}

#[tokio::test]
async fn an_invalid_handshake_or_none_at_all_closes_the_connection() {
    let addr = start().await;
    let mut socket = opened(addr).await;
    say(&mut socket, "4abc").await;
    closed(&mut socket).await;
    // No CONNECT within the connect timeout (1 s).
    let mut socket = opened(addr).await;
    closed(&mut socket).await;
}

#[tokio::test]
async fn leaving_a_namespace_keeps_the_connection_and_the_other_namespaces() {
    let addr = start().await;
    let mut socket = connected(addr).await;
    say(&mut socket, "41").await;
    assert_eq!(text(&mut socket).await, "2", "the session lives on: the next packet is a ping");

    let mut socket = connected(addr).await;
    say(&mut socket, "40/custom").await;
    assert!(text_not_ping(&mut socket).await.starts_with("40/custom,"));
    assert_eq!(text_not_ping(&mut socket).await, r#"42/custom,["auth",{}]"#);
    say(&mut socket, "41/custom").await;
    say(&mut socket, r#"42["message","message to main namespace"]"#).await;
    assert_eq!(text_not_ping(&mut socket).await, r#"42["message-back","message to main namespace"]"#);
}

#[tokio::test]
async fn events_acks_and_binary_attachments_come_back_as_sent() {
    let addr = start().await;
    let mut socket = connected(addr).await;
    say(&mut socket, r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(text_not_ping(&mut socket).await, r#"42["message-back",1,"2",{"3":[true]}]"#);

    say(&mut socket, r#"42456["message-with-ack",1,"2",{"3":[false]}]"#).await;
    assert_eq!(text_not_ping(&mut socket).await, r#"43456[1,"2",{"3":[false]}]"#);

    let placeholders = r#"{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}"#;
    say(&mut socket, &format!(r#"452-["message",{placeholders}]"#)).await;
    say_binary(&mut socket, &[1, 2, 3]).await;
    say_binary(&mut socket, &[4, 5, 6]).await;
    assert_eq!(text_not_ping(&mut socket).await, format!(r#"452-["message-back",{placeholders}]"#));
    assert_eq!(next(&mut socket).await, Some(Message::binary(vec![1, 2, 3])));
    assert_eq!(next(&mut socket).await, Some(Message::binary(vec![4, 5, 6])));

    say(&mut socket, &format!(r#"452-789["message-with-ack",{placeholders}]"#)).await;
    say_binary(&mut socket, &[1, 2, 3]).await;
    say_binary(&mut socket, &[4, 5, 6]).await;
    assert_eq!(text_not_ping(&mut socket).await, format!("462-789[{placeholders}]"));
    assert_eq!(next(&mut socket).await, Some(Message::binary(vec![1, 2, 3])));
    assert_eq!(next(&mut socket).await, Some(Message::binary(vec![4, 5, 6])));
}

#[tokio::test]
async fn a_packet_of_an_unknown_type_a_bad_payload_or_a_bad_ack_id_closes_the_connection() {
    let addr = start().await;
    for bad in ["4abc", "42{}", r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#] {
        let mut socket = connected(addr).await;
        say(&mut socket, bad).await;
        closed(&mut socket).await;
    }
}
