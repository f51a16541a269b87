//! Engine.IO v4 as the gateway serves it (`/engine.io/` of the conformance servers, which
//! echoes): every behaviour the Engine.IO project's protocol suite checks, in our words.

use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;

use crate::conformance::{closed, get, next, open_polling, say, say_binary, send, servers, start, text, ws};

const E: &str = "/engine.io/";

#[tokio::test]
async fn a_polling_handshake_names_the_session_and_its_settings() {
    let addr = start().await;
    let (sid, handshake) = open_polling(addr, E).await;
    assert!(!sid.is_empty());
    let mut keys: Vec<&str> = handshake.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
    assert_eq!(handshake["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!((handshake["pingInterval"].as_u64(), handshake["pingTimeout"].as_u64()), (Some(300), Some(200)));
    assert_eq!(handshake["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn a_bad_version_transport_or_method_is_400() {
    let addr = start().await;
    for query in [
        "?transport=polling",
        "?EIO=abc&transport=polling",
        "?EIO=3&transport=polling",
        "?EIO=4",
        "?EIO=4&transport=abc",
    ] {
        assert_eq!(get(addr, &format!("{E}{query}")).await.0, 400, "{query}");
    }
    for method in ["POST", "PUT"] {
        assert_eq!(send(addr, method, &format!("{E}?EIO=4&transport=polling"), b"").await.0, 400, "{method}");
    }
    let (status, body) = get(addr, &format!("{E}?EIO=4&transport=polling&sid=nope")).await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["code"], 1, "unknown sid: {body}");
}

#[tokio::test]
async fn a_websocket_handshake_offers_no_upgrade_and_a_bad_one_is_refused() {
    let addr = start().await;
    let mut socket = ws(addr, &format!("{E}?EIO=4&transport=websocket")).await;
    let open = text(&mut socket).await;
    let handshake: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(handshake["upgrades"], serde_json::json!([]));
    for query in ["?transport=websocket", "?EIO=abc&transport=websocket", "?EIO=4", "?EIO=4&transport=abc"] {
        let refused = tokio_tungstenite::connect_async(format!("ws://{addr}{E}{query}")).await;
        assert!(refused.is_err(), "{query} was upgraded");
    }
}

#[tokio::test]
async fn polling_carries_text_several_packets_and_base64_binary() {
    let addr = start().await;
    for payload in ["4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA=="] {
        let (sid, _) = open_polling(addr, E).await;
        let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
        assert_eq!(send(addr, "POST", &url, payload.as_bytes()).await, (200, "ok".to_owned()));
        assert_eq!(get(addr, &url).await, (200, payload.to_owned()), "echoed as sent");
    }
}

#[tokio::test]
async fn an_invalid_polling_packet_closes_the_session() {
    let addr = start().await;
    let (sid, _) = open_polling(addr, E).await;
    let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
    assert_eq!(send(addr, "POST", &url, b"abc").await.0, 400);
    assert_eq!(get(addr, &url).await.0, 400, "the session is gone");
}

#[tokio::test]
async fn a_second_concurrent_poll_closes_the_session() {
    let s = servers().await;
    let addr = s.addr;
    let (sid, _) = open_polling(addr, E).await;
    let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
    let first = tokio::spawn({
        let url = url.clone();
        async move { get(addr, &url).await }
    });
    s.poll_waiting(&sid).await;
    assert_eq!(get(addr, &format!("{url}&t=burst")).await.0, 400);
    assert_eq!(first.await.unwrap(), (200, "1".to_owned()), "the waiting poll is told the session closed");
    assert_eq!(get(addr, &url).await.0, 400);
}

#[tokio::test]
async fn a_push_over_max_payload_is_413_and_ends_the_session() {
    let addr = start().await;
    let (sid, _) = open_polling(addr, E).await;
    let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
    let big = format!("4{}", "x".repeat(1_000_001));
    assert_eq!(send(addr, "POST", &url, big.as_bytes()).await.0, 413);
    assert_eq!(get(addr, &url).await.0, 400);
}

#[tokio::test]
async fn websocket_carries_text_and_binary_and_closes_on_an_invalid_packet() {
    let addr = start().await;
    let mut socket = ws(addr, &format!("{E}?EIO=4&transport=websocket")).await;
    text(&mut socket).await;
    say(&mut socket, "4hello").await;
    assert_eq!(text(&mut socket).await, "4hello");
    say_binary(&mut socket, &[1, 2, 3, 4]).await;
    assert_eq!(next(&mut socket).await, Some(Message::binary(vec![1, 2, 3, 4])));
    say(&mut socket, "abc").await;
    closed(&mut socket).await;
}

#[tokio::test]
async fn heartbeats_go_both_ways_and_a_missing_pong_ends_the_session() {
    let addr = start().await;
    // Polling: three pings, each answered; then a session left alone is gone after
    // pingInterval + pingTimeout.
    let (sid, _) = open_polling(addr, E).await;
    let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
    for _ in 0..3 {
        assert_eq!(get(addr, &url).await, (200, "2".to_owned()));
        assert_eq!(send(addr, "POST", &url, b"3").await.0, 200);
    }
    let (sid, _) = open_polling(addr, E).await;
    tokio::time::sleep(Duration::from_millis(300 + 200 + 50)).await;
    assert_eq!(get(addr, &format!("{E}?EIO=4&transport=polling&sid={sid}")).await.0, 400);

    // WebSocket: the same.
    let mut socket = ws(addr, &format!("{E}?EIO=4&transport=websocket")).await;
    text(&mut socket).await;
    for _ in 0..3 {
        assert_eq!(text(&mut socket).await, "2");
        say(&mut socket, "3").await;
    }
    let mut silent = ws(addr, &format!("{E}?EIO=4&transport=websocket")).await;
    text(&mut silent).await;
    assert_eq!(text(&mut silent).await, "2");
    closed(&mut silent).await;
}

#[tokio::test]
async fn a_client_close_ends_the_session_on_either_transport() {
    let s = servers().await;
    let addr = s.addr;
    let (sid, _) = open_polling(addr, E).await;
    let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
    let poll = tokio::spawn({
        let url = url.clone();
        async move { get(addr, &url).await }
    });
    s.poll_waiting(&sid).await;
    assert_eq!(send(addr, "POST", &url, b"1").await.0, 200);
    assert_eq!(poll.await.unwrap(), (200, "6".to_owned()), "the waiting poll ends with a noop");
    assert_eq!(get(addr, &url).await.0, 400);

    let mut socket = ws(addr, &format!("{E}?EIO=4&transport=websocket")).await;
    text(&mut socket).await;
    say(&mut socket, "1").await;
    closed(&mut socket).await;
}

#[tokio::test]
async fn a_polling_session_upgrades_to_websocket_and_then_refuses_polling_and_a_second_socket() {
    let s = servers().await;
    let addr = s.addr;
    let (sid, _) = open_polling(addr, E).await;
    let url = format!("{E}?EIO=4&transport=polling&sid={sid}");
    let mut socket = ws(addr, &format!("{E}?EIO=4&transport=websocket&sid={sid}")).await;
    let poll = tokio::spawn({
        let url = url.clone();
        async move { get(addr, &url).await }
    });
    s.poll_waiting(&sid).await;
    say(&mut socket, "2probe").await;
    assert_eq!(text(&mut socket).await, "3probe");
    assert_eq!(poll.await.unwrap(), (200, "6".to_owned()), "the waiting poll ends with a noop");
    say(&mut socket, "5").await;
    say(&mut socket, "4hello").await;
    assert_eq!(text(&mut socket).await, "4hello", "the session now runs over the socket");
    assert_eq!(get(addr, &url).await.0, 400, "polling after the upgrade");
    let mut second = ws(addr, &format!("{E}?EIO=4&transport=websocket&sid={sid}")).await;
    closed(&mut second).await;
    say(&mut socket, "4still").await;
    assert_eq!(text(&mut socket).await, "4still", "the first socket is unaffected");
}
