//! The first event of a room to reach a node is checked against its members' positions: a
//! message lost on pub/sub just before it is repaired from history like any other gap. Its own
//! file, so that the repair counter it reads counts only its own repair.

mod common;

use common::{TestGateway, lose_one};
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::{Event, Publisher, Target};
use roomcast_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_before_the_rooms_first_event_on_the_node_is_repaired() {
    let redis = RedisServer::start();
    let url = redis.url();
    let gw = TestGateway::start_with(move |c| c.broker = BrokerConfig::Redis(url)).await;
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
