//! Every `subscribe` with an id gets exactly one reply, also when the user is removed from the
//! room's member set while the node is still reading the room's position from Redis.

use std::time::Duration;

use crate::common::TestGateway;
use roomcast_publisher::{Publisher, Target};
use roomcast_testkit::RedisServer;
use serde_json::{Value, json};

const SUBSCRIBES: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_racing_a_member_removal_gets_exactly_one_reply() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |c| c.unsubscribe_delay = Duration::from_millis(100)).await;
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    publisher.update_members("dialog:7", &["u1"], &[]).await.unwrap();
    let mut client = gw.connect("u1", None).await;

    // Removal and re-adding run back to back for as long as the client subscribes.
    let churn = tokio::spawn(async move {
        loop {
            publisher.update_members("dialog:7", &[], &["u1"]).await.unwrap();
            publisher.update_members("dialog:7", &["u1"], &[]).await.unwrap();
        }
    });

    let (mut ok, mut forbidden, mut lost_mid_join) = (0, 0, 0);
    for id in 1..=SUBSCRIBES {
        client.send(json!({"type": "subscribe", "id": id, "room": "dialog:7"})).await;
        // The ping's pong comes after the subscribe's reply (commands are answered in order),
        // so every frame before it is all the subscribe produced.
        let ping = 1_000_000 + id;
        let frames = frames_until_pong(&mut client, ping).await;
        let replies: Vec<&Value> = frames.iter().filter(|f| f["id"] == id).collect();
        assert_eq!(replies.len(), 1, "subscribe {id} got {} replies; frames: {frames:?}", replies.len());
        match (replies[0]["type"].as_str(), replies[0]["code"].as_str()) {
            (Some("ok"), _) => ok += 1,
            (Some("error"), Some("forbidden")) => {
                forbidden += 1;
                if replies[0]["message"].as_str().is_some_and(|m| m.contains("while subscribing")) {
                    lost_mid_join += 1;
                }
            }
            other => panic!("unexpected reply {other:?}: {}", replies[0]),
        }
    }
    churn.abort();
    // About one subscribe in seven lands in the window here; none would mean the race was
    // never exercised and the test proved nothing.
    assert!(
        ok > 0 && lost_mid_join > 0,
        "the churn should give both outcomes: ok {ok}, forbidden {forbidden} ({lost_mid_join} mid-join)"
    );
}

async fn frames_until_pong(client: &mut crate::common::TestClient, ping: u64) -> Vec<Value> {
    client.send(json!({"type": "ping", "id": ping})).await;
    let mut frames = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame == json!({"type": "pong", "id": ping}) {
            return frames;
        }
        frames.push(frame);
    }
}
