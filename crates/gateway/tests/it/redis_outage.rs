//! Redis killed and restarted (without persistence) under a node: clients stay connected,
//! /readyz goes false then true, publishes during the outage fail with 503, subscribes get
//! `internal` and new connections are closed with 1012, members are told to resubscribe because the
//! room's history is gone, and events after the restart arrive.

use crate::common::TestGateway;
use roomcast_testkit::{RedisServer, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_survives_a_redis_restart_and_resubscribes() {
    let mut redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    gw.add_members("dialog:9", &["u1"]).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("dialog:9").await;
    gw.publish(json!({"room": "dialog:9", "event": "before"})).await;
    let before = client.recv().await;
    assert_eq!(before["event"], "before");
    assert_eq!(gw.get("/readyz").await.0, 200);

    redis.kill();
    eventually("/readyz to fail while Redis is down", async || gw.get("/readyz").await.0 == 503).await;
    let (status, reply) = gw.api("publish", &json!({"room": "dialog:9", "event": "lost"})).await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"], "unavailable");
    // A subscribe cannot read the room's position: `internal`, and a failed second subscribe
    // to a room the connection is in keeps it in the room (the `left` below proves it).
    let reply = client.request(json!({"type": "subscribe", "id": 5, "room": "user:u1"})).await;
    assert_eq!((reply["type"].as_str(), reply["id"].as_u64()), (Some("error"), Some(5)), "{reply}");
    assert_eq!(reply["code"], "internal", "{reply}");
    client.roundtrip().await;
    // A new connection cannot join its own room: close 1012 (reconnect later), no `connected`.
    let mut late = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u2", None))).await;
    let (code, frames) = late.recv_close().await;
    assert_eq!((code, frames.len()), (1012, 0), "{frames:?}");
    // Counted as what it is, not as a shutdown.
    let closed = r#"roomcast_connections_closed_total{reason="broker_unavailable"}"#;
    eventually("the 1012 close to be counted as broker_unavailable", async || gw.metric(closed).await == 1.0).await;
    assert_eq!(gw.metric(r#"roomcast_connections_closed_total{reason="shutdown"}"#).await, 0.0);

    redis.restart();
    eventually("/readyz to recover", async || gw.get("/readyz").await.0 == 200).await;
    // The restarted Redis kept nothing: the room's history and epoch are gone, so the node
    // cannot vouch for continuity and says so instead of delivering the new epoch silently.
    // That holds for the auto-joined personal room too.
    let mut lefts = vec![client.recv().await, client.recv().await];
    lefts.sort_by_key(|f| f["room"].as_str().map(str::to_owned));
    assert_eq!(
        lefts,
        [
            json!({"type": "left", "room": "dialog:9", "reason": "resubscribe"}),
            json!({"type": "left", "room": "user:u1", "reason": "resubscribe"}),
        ]
    );
    gw.add_members("dialog:9", &["u1"]).await;
    let ok = client.subscribe_since("dialog:9", 1, before["epoch"].as_str().unwrap()).await;
    assert_eq!(ok["recovered"], false, "{ok}");
    assert_ne!(ok["epoch"], before["epoch"]);
    let reply = gw.publish(json!({"room": "dialog:9", "event": "after"})).await;
    assert_eq!(reply["offset"], 1);
    let event = client.recv().await;
    assert_eq!((event["event"].as_str(), event["offset"].as_u64()), (Some("after"), Some(1)));
    assert_eq!(redis.numsub("dialog:9"), 1, "subscribed to the member's room again");
}
