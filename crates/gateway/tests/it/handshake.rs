//! The upgrade request is checked as RFC 6455 §4.2.1 asks, and a malformed close frame from a
//! client is answered with 1002 (issue 17, fault 7).

use std::net::SocketAddr;

use crate::common::{PATIENCE, SilentClient, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends `request` and returns the response head (status line and headers), lower-cased.
async fn response_head(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await.expect("a response").unwrap();
        assert_eq!(n, 1, "closed before a whole response head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

fn upgrade(method: &str, version: &str, headers: &[&str]) -> String {
    format!(
        "{method} /ws HTTP/{version}\r\nHost: t\r\n{}\r\n",
        headers.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    )
}

#[tokio::test]
async fn upgrade_requests_are_checked_as_rfc_6455_asks() {
    let gw = TestGateway::start().await;
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let key = key.as_str();
    let good = ["Upgrade: websocket", "Connection: Upgrade", key, "Sec-WebSocket-Version: 13"];
    let cases: &[(&str, &str, Vec<&str>, &str)] = &[
        ("GET", "1.1", good.to_vec(), "101"),
        // Header values are case-insensitive tokens, and Connection is a list.
        (
            "GET",
            "1.1",
            vec!["Upgrade: WebSocket", "Connection: keep-alive, upgrade", key, "Sec-WebSocket-Version: 13"],
            "101",
        ),
        ("GET", "1.1", vec!["Upgrade: h2c", "Connection: Upgrade", key, "Sec-WebSocket-Version: 13"], "400"),
        ("GET", "1.1", vec!["Upgrade: websocket", key, "Sec-WebSocket-Version: 13"], "400"),
        ("GET", "1.1", vec!["Upgrade: websocket", "Connection: keep-alive", key, "Sec-WebSocket-Version: 13"], "400"),
        ("GET", "1.1", vec!["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"], "400"),
        (
            "GET",
            "1.1",
            vec!["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: abc", "Sec-WebSocket-Version: 13"],
            "400",
        ),
        ("HEAD", "1.1", good.to_vec(), "400"),
        ("GET", "1.0", good.to_vec(), "400"),
        ("GET", "1.1", vec!["Upgrade: websocket", "Connection: Upgrade", key, "Sec-WebSocket-Version: 8"], "426"),
        ("GET", "1.1", vec!["Upgrade: websocket", "Connection: Upgrade", key], "426"),
    ];
    for (method, version, headers, status) in cases {
        let head = response_head(gw.addr, &upgrade(method, version, headers)).await;
        // hyper answers in the request's version (HTTP/1.0 gets "HTTP/1.0 400").
        assert_eq!(head.split(' ').nth(1), Some(*status), "{method} HTTP/{version} {headers:?}: {head}");
        if *status == "426" {
            assert!(head.contains("\r\nsec-websocket-version: 13\r\n"), "{head}");
        }
    }
}

/// A masked client close frame with this payload.
fn close_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let mut frame = vec![0x88, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Connects, sends a close frame with `payload` and returns the code of the server's close.
async fn answer_to_close(gw: &TestGateway, payload: &[u8]) -> u16 {
    let mut c = SilentClient::connect(gw.addr, &format!("/ws?token={}", gw.token("u1", None))).await;
    let (opcode, _) = c.frame().await;
    assert_eq!(opcode, 0x1, "connected comes first");
    c.send_raw(&close_frame(payload)).await;
    c.until_close().await.0
}

#[tokio::test]
async fn a_malformed_close_frame_is_answered_1002() {
    let gw = TestGateway::start().await;
    let with_code = |code: u16, reason: &[u8]| [&code.to_be_bytes()[..], reason].concat();
    for (payload, expected) in [
        (vec![0x03], 1002),
        (with_code(999, b""), 1002),
        (with_code(1004, b""), 1002),
        (with_code(1005, b""), 1002),
        (with_code(1006, b""), 1002),
        (with_code(1015, b""), 1002),
        (with_code(2999, b""), 1002),
        (with_code(5000, b""), 1002),
        (with_code(1000, &[0xff, 0xfe]), 1002),
        // Well-formed closes are echoed.
        (vec![], 1000),
        (with_code(1000, b"bye"), 1000),
        (with_code(1001, b""), 1001),
        (with_code(3000, b""), 3000),
        (with_code(4999, "é".as_bytes()), 4999),
    ] {
        assert_eq!(answer_to_close(&gw, &payload).await, expected, "close payload {payload:?}");
    }
}
