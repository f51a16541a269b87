//! A node keeps answering when clients send half a request, or nothing, and stop: a request's
//! head must arrive within `header_read_timeout` and its body within `body_read_timeout`, and a
//! node out of file descriptors backs off and goes on accepting (issue 17, fault 4). Real
//! `roomcast` processes, one of them under `prlimit --nofile=128`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{NodeProcess, PATIENCE, TestGateway};
use roomcast_testkit::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One bounded `GET /healthz`: whether it got its 200 within a second.
async fn answers_healthz(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await.ok()?;
        Some(response.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(true)))
}

/// Reads until the server closes the socket (bounded); returns what it sent.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the socket open; it sent {:?}", String::from_utf8_lossy(&got));
    got
}

/// A fresh WebSocket connects and gets `connected`.
async fn websocket_works(gw: &TestGateway) {
    let mut c = tokio::time::timeout(PATIENCE, gw.connect("fresh", None)).await.expect("a fresh websocket connects");
    c.roundtrip().await;
}

#[tokio::test]
async fn silent_half_sent_and_idle_keep_alive_sockets_are_closed() {
    let node = NodeProcess::start(&[("ROOMCAST_HEADER_READ_TIMEOUT", "1s")]);
    let addr = node.gateway.addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();

    closed_by_server(&mut silent).await;
    closed_by_server(&mut half).await;
    let answered = closed_by_server(&mut idle).await;
    assert!(answered.starts_with(b"HTTP/1.1 200"), "the complete request was answered first");
    websocket_works(&node.gateway).await;
}

#[tokio::test]
async fn a_half_sent_body_gets_408_and_writes_nothing() {
    let node = NodeProcess::start(&[("ROOMCAST_BODY_READ_TIMEOUT", "1s")]);
    let gw = &node.gateway;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n",
        crate::common::API_KEY
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(br#"{"room":"d"#).await.unwrap();
    let response = closed_by_server(&mut s).await;
    assert!(response.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&response));
    let reply = gw.publish(serde_json::json!({"room": "dialog:1", "event": "after"})).await;
    assert_eq!(reply["offset"], 1, "{reply}");
}

#[tokio::test]
async fn a_node_out_of_descriptors_recovers_once_half_open_sockets_time_out() {
    let node = NodeProcess::start_with_nofile(128, &[("ROOMCAST_HEADER_READ_TIMEOUT", "2s")]);
    let addr = node.gateway.addr;
    let mut half_open = Vec::new();
    for _ in 0..140 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        half_open.push(s);
    }
    // The node holds what its descriptors allow; the rest waits in the listen backlog.
    eventually("/healthz to answer again", async || answers_healthz(addr).await).await;
    websocket_works(&node.gateway).await;
    for s in &mut half_open {
        closed_by_server(s).await;
    }
    let log = node.log();
    let failed = log.iter().filter(|l| l.contains("accept failed")).count();
    assert!(failed >= 1, "the node never ran out of descriptors, so this proved nothing: {log:#?}");
    assert!(failed <= 10, "accept errors logged {failed} times: one line per streak, not per retry");
    assert!(log.iter().any(|l| l.contains("accepting again")), "{log:#?}");
}
