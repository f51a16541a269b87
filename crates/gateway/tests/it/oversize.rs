//! A client message over `max_message_size` (after reassembly) closes the connection with 4009.

use crate::common::TestGateway;
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

#[tokio::test]
async fn a_message_over_the_limit_closes_4009_and_one_at_it_does_not() {
    let gw = TestGateway::start().await; // 64 KiB
    let mut c = gw.connect("u1", None).await;
    let at_limit = format!("{{\"type\":\"ping\",\"id\":1,\"pad\":\"{}\"}}", "a".repeat(64 * 1024 - 30));
    let at_limit = &at_limit[..64 * 1024 - 2];
    let at_limit = format!("{at_limit}\"}}");
    assert_eq!(at_limit.len(), 64 * 1024);
    assert_eq!(c.request(serde_json::from_str(&at_limit).unwrap()).await, json!({"type": "pong", "id": 1}));

    c.send_text(&"a".repeat(64 * 1024 + 1)).await;
    assert_eq!(c.recv_close().await.0, 4009);
}

#[tokio::test]
async fn fragments_that_add_up_over_the_limit_close_4009() {
    let gw = TestGateway::start_with(|c| c.max_message_size = 4096).await;
    let mut c = gw.connect("u1", None).await;
    let fragment = |opcode, fin| {
        let header = FrameHeader { is_final: fin, opcode, ..FrameHeader::default() };
        Message::Frame(Frame::from_payload(header, vec![b' '; 3000].into()))
    };
    c.ws.send(fragment(OpCode::Data(Data::Text), false)).await.unwrap();
    c.ws.send(fragment(OpCode::Data(Data::Continue), true)).await.unwrap();
    assert_eq!(c.recv_close().await.0, 4009);
}
