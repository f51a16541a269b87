//! A message lost between Redis and a node (in history, never seen on the channel) is found by
//! the jump in offsets, fetched from history and delivered in order before the newer event;
//! a gap history cannot fill ends with `left: resubscribe`, never with silence.

mod common;

use common::TestGateway;
use prost::Message;
use roomcast_gateway::config::BrokerConfig;
use roomcast_proto::envelope::{self, Envelope, envelope::Body};
use roomcast_publisher::{Event, Publisher, Target};
use roomcast_testkit::RedisServer;
use serde_json::json;

/// Appends an event to the room's history and offset without publishing it: what a node sees
/// when pub/sub drops a message.
fn lose_one(redis: &RedisServer, room: &str, epoch: &str, keep_in_history: bool) -> u64 {
    let mut c = redis.connection().unwrap();
    let offset: u64 = redis::cmd("HINCRBY").arg(format!("{{{room}}}:pos")).arg("offset").arg(1).query(&mut c).unwrap();
    if keep_in_history {
        let body = Body::Event(envelope::Event {
            event: "lost".into(),
            data: b"{\"n\":1}".to_vec().into(),
            id: "lost-1".into(),
            ..Default::default()
        });
        let envelope =
            Envelope { room: room.into(), offset, epoch: epoch.into(), body: Some(body), ..Default::default() };
        let _: String = redis::cmd("XADD")
            .arg(format!("{{{room}}}:history"))
            .arg(format!("{offset}-0"))
            .arg("e")
            .arg(envelope.encode_to_vec())
            .query(&mut c)
            .unwrap();
    }
    offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_on_pub_sub_is_repaired_from_history() {
    let redis = RedisServer::start();
    let url = redis.url();
    let gw = TestGateway::start_with(move |c| c.broker = BrokerConfig::Redis(url)).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let first = publisher.publish(Event::new("user:u1", "first", &1)).await.unwrap();
    assert_eq!(client.recv().await["offset"], 1);

    assert_eq!(lose_one(&redis, "user:u1", &first.epoch, true), 2);
    publisher.publish(Event::new("user:u1", "after", &3)).await.unwrap();
    let lost = client.recv().await;
    assert_eq!(
        (lost["event"].as_str(), lost["offset"].as_u64(), lost["id"].as_str()),
        (Some("lost"), Some(2), Some("lost-1"))
    );
    assert_eq!(lost["data"], json!({"n": 1}));
    let after = client.recv().await;
    assert_eq!((after["event"].as_str(), after["offset"].as_u64()), (Some("after"), Some(3)));
    assert_eq!(gw.metric("roomcast_gap_repairs_total{outcome=\"repaired\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_history_cannot_fill_tells_members_to_resubscribe() {
    let redis = RedisServer::start();
    let url = redis.url();
    let gw = TestGateway::start_with(move |c| c.broker = BrokerConfig::Redis(url)).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let first = publisher.publish(Event::new("user:u1", "first", &1)).await.unwrap();
    assert_eq!(client.recv().await["offset"], 1);

    lose_one(&redis, "user:u1", &first.epoch, false);
    publisher.publish(Event::new("user:u1", "after", &3)).await.unwrap();
    assert_eq!(client.recv().await, json!({"type": "left", "room": "user:u1", "reason": "resubscribe"}));
    let ok = client.subscribe_since("user:u1", 1, &first.epoch).await;
    assert_eq!((ok["recovered"].as_bool(), ok["offset"].as_u64()), (Some(false), Some(3)), "{ok}");
    client.roundtrip().await;
}
