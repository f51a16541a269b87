//! A client that stops reading is closed with 4008 once its send queue overflows, while another
//! client in the same room receives every event in order.

use crate::common::TestGateway;
use serde_json::json;

const EVENTS: u64 = 1000;
const PAYLOAD: usize = 32 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_4008_and_the_others_miss_nothing() {
    let gw = TestGateway::start().await; // 1 MiB send queue
    gw.add_members("dialog:big", &["slow", "fast"]).await;
    let mut slow = gw.connect("slow", None).await;
    let mut fast = gw.connect("fast", None).await;
    slow.subscribe("dialog:big").await;
    fast.subscribe("dialog:big").await;

    let reader = tokio::spawn(async move {
        let mut offsets = Vec::new();
        while (offsets.len() as u64) < EVENTS {
            let event = fast.recv().await;
            assert_eq!(event["data"]["pad"].as_str().map(str::len), Some(PAYLOAD));
            offsets.push(event["offset"].as_u64().unwrap());
        }
        offsets
    });

    let pad = "x".repeat(PAYLOAD);
    let closes_before = gw.metric("roomcast_slow_consumer_closes_total").await;
    let mut published = 0;
    // Publish until the node gives up on the slow client (bounded: the whole run is 32 MiB,
    // far beyond the queue and the socket buffers).
    while published < EVENTS {
        gw.publish(json!({"room": "dialog:big", "event": "message:new", "data": {"pad": pad}})).await;
        published += 1;
        if published % 20 == 0 && gw.metric("roomcast_slow_consumer_closes_total").await > closes_before {
            break;
        }
    }
    assert!(published < EVENTS, "the slow client was never closed");

    // The node waits 5 s for the close frame to get through; reading now lets it.
    let (code, frames) = slow.recv_close().await;
    assert_eq!(code, 4008);
    assert!((frames.len() as u64) < published, "queued frames were dropped: got {} of {published}", frames.len());

    while published < EVENTS {
        gw.publish(json!({"room": "dialog:big", "event": "message:new", "data": {"pad": pad}})).await;
        published += 1;
    }
    let offsets = reader.await.unwrap();
    assert_eq!(offsets, (1..=EVENTS).collect::<Vec<_>>());
    assert_eq!(gw.metric("roomcast_slow_consumer_closes_total").await, closes_before + 1.0);
}
