//! A connection task that panics (here on a test-only command, in the middle of a join)
//! releases everything it held: its rooms, its Redis subscriptions, its place among the node's
//! connections, and its socket, which is closed with 1011; the node goes on serving the others.

use std::time::Duration;

use crate::common::TestGateway;
use roomcast_testkit::{RedisServer, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_connection_releases_its_rooms_subscriptions_and_registration() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |c| c.unsubscribe_delay = Duration::from_millis(100)).await;
    let mut other = gw.connect("other", None).await;
    let gauges = async || {
        (
            gw.metric("roomcast_rooms").await,
            gw.metric("roomcast_subscriptions").await,
            gw.metric("roomcast_connections_open").await,
        )
    };
    let before = gauges().await;
    assert_eq!(before, (1.0, 1.0, 1.0), "user:other only");

    gw.add_members("dialog:p", &["victim"]).await;
    let mut victim = gw.connect("victim", Some("o-victim")).await;
    victim.subscribe("dialog:p").await;
    for channel in ["dialog:p", "user:victim", "org:o-victim"] {
        assert_eq!(redis.numsub(channel), 1, "{channel}");
    }
    assert_eq!(gauges().await, (4.0, 4.0, 2.0));

    // The task panics while it holds a half-done join of dialog:q (subscribed, member joining).
    victim.send(json!({"type": "test:panic", "room": "dialog:q"})).await;
    let (code, _) = victim.recv_close().await;
    assert_eq!(code, 1011, "the writer closes the socket of a panicked task as an internal error");

    eventually("the gauges to return to their values before", async || gauges().await == before).await;
    for channel in ["dialog:p", "dialog:q", "user:victim", "org:o-victim"] {
        eventually(&format!("{channel} to be unsubscribed"), async || redis.numsub(channel) == 0).await;
    }
    assert_eq!(redis.numsub("user:other"), 1);
    assert_eq!(gw.metric(r#"roomcast_connections_closed_total{reason="internal_error"}"#).await, 1.0);

    // The node goes on: the other connection still gets its events, a new one connects.
    gw.publish(json!({"room": "user:other", "event": "still:here"})).await;
    assert_eq!(other.recv().await["event"], "still:here");
    other.roundtrip().await;
    let mut again = gw.connect("victim", Some("o-victim")).await;
    again.subscribe("dialog:p").await;
}
