//! A message lost between Redis and a node (in history, never seen on the channel) is found by
//! the jump in offsets, fetched from history and delivered in order before the newer event;
//! a gap history cannot fill ends with `left: resubscribe`, never with silence. The first event
//! of a room to reach a node is checked against its members' positions too. A Redis that holds
//! less of a room than a node delivered gives the room a new epoch.

use crate::common::{TestGateway, lose_one};
use roomcast_publisher::{Event, Publisher, Target, layout};
use roomcast_testkit::{RedisServer, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_on_pub_sub_is_repaired_from_history() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
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
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_before_the_rooms_first_event_on_the_node_is_repaired() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    let mut client = gw.connect("u1", None).await;
    // The member is positioned at offset 0 and nothing has reached the node yet.
    let ok = client.subscribe("user:u1").await;
    assert_eq!(ok["offset"], 0, "{ok}");
    let epoch = ok["epoch"].as_str().unwrap();

    assert_eq!(lose_one(&redis, "user:u1", epoch, true), 1);
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    publisher.publish(Event::new("user:u1", "after", &2)).await.unwrap();
    let lost = client.recv().await;
    assert_eq!((lost["event"].as_str(), lost["offset"].as_u64()), (Some("lost"), Some(1)), "{lost}");
    let after = client.recv().await;
    assert_eq!((after["event"].as_str(), after["offset"].as_u64()), (Some("after"), Some(2)));
    assert_eq!(gw.metric("roomcast_gap_repairs_total{outcome=\"repaired\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_writes_a_node_delivered_gives_the_room_a_new_epoch() {
    // What a Cluster shard's asynchronous failover leaves: the room's keys survive, short of
    // the last writes the node already delivered.
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let mut epoch = String::new();
    for i in 1..=5 {
        epoch = publisher.publish(Event::new("user:u1", "e", &i)).await.unwrap().epoch;
        assert_eq!(client.recv().await["offset"], i);
    }
    let mut c = redis.connection().unwrap();
    let channel = layout::channel("", "user:u1");
    let _: () = redis::cmd("HSET").arg(layout::position_key(&channel)).arg("offset").arg(3).query(&mut c).unwrap();
    let _: u64 = redis::cmd("XDEL").arg(layout::history_key(&channel)).arg("4-0").arg("5-0").query(&mut c).unwrap();
    // The node's subscriber connection drops, so it resubscribes and checks the room.
    let _: u64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query(&mut c).unwrap();

    let left = client.recv().await;
    assert_eq!((left["type"].as_str(), left["reason"].as_str()), (Some("left"), Some("resubscribe")), "{left}");
    eventually("the room's new epoch", async || {
        let now: String = redis::cmd("HGET").arg(layout::position_key(&channel)).arg("epoch").query(&mut c).unwrap();
        now != epoch
    })
    .await;
    // A client that was away at offset 5 is told too, instead of being served offsets 4 and 5
    // of other events as if they continued its history.
    let reply = client.subscribe_since("user:u1", 5, &epoch).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    let next = publisher.publish(Event::new("user:u1", "next", &6)).await.unwrap();
    assert_ne!(next.epoch, epoch);
    assert_eq!((client.recv().await["offset"].as_u64(), next.offset), (Some(1), 1));
}
