//! A node on a three-master Redis Cluster: sharded delivery for rooms spread over slots, and a
//! slot migration of a subscribed room keeps delivery going.

use crate::common::TestGateway;
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::{Event, Publisher, Target};
use roomcast_testkit::{RedisCluster, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_delivery_survives_a_slot_migration() {
    let cluster = RedisCluster::start();
    let seeds = cluster.seeds();
    let gw = TestGateway::start_with(move |c| c.broker = BrokerConfig::Cluster(seeds)).await;
    let publisher = Publisher::connect(Target::Cluster(cluster.seeds())).await.unwrap();
    assert_eq!(publisher.publish_command(), "SPUBLISH");
    publisher.update_members("dialog:1", &["u1"], &[]).await.unwrap();
    let mut client = gw.connect("u1", Some("o1")).await;
    client.subscribe("dialog:1").await;

    let rooms = ["dialog:1", "org:o1", "user:u1"];
    let owners: Vec<usize> = rooms.iter().map(|r| cluster.owner(r).1).collect();
    assert!(owners.iter().any(|o| *o != owners[0]), "the rooms live on more than one master: {owners:?}");
    for room in rooms {
        gw.publish(json!({"room": room, "event": "message:new", "data": room})).await;
        assert_eq!(client.recv().await["room"], room);
    }

    let (slot, from) = cluster.owner("dialog:1");
    let to = (from + 1) % 3;
    cluster.migrate(slot, from, to);
    eventually("the node to follow dialog:1 to its new master", async || {
        cluster.nodes[to].shardnumsub("dialog:1") == 1
    })
    .await;
    let after = publisher.publish(Event::new("dialog:1", "message:new", &json!("after"))).await.unwrap();
    assert_eq!(after.offset, 2, "the room's keys moved with the slot");
    let event = client.recv().await;
    assert_eq!((event["data"].as_str(), event["offset"].as_u64()), (Some("after"), Some(2)));
}
