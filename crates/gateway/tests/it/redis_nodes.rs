//! Three nodes and one real Redis act as one gateway: publishes through the crate or any
//! node's API reach members on every node; exclude_user, member removal and disconnect work
//! across nodes; a node subscribes to a room only while it has members there.

use std::time::Duration;

use crate::common::TestGateway;
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::{Event, Publisher, Target};
use roomcast_testkit::{RedisServer, eventually};
use serde_json::json;

async fn node(redis: &RedisServer, name: &str) -> TestGateway {
    let url = redis.url();
    let name = name.to_owned();
    TestGateway::start_with(move |c| {
        c.broker = BrokerConfig::Redis(url);
        c.node_id = name;
        c.unsubscribe_delay = Duration::from_millis(100);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_three_nodes_receive_every_publish_once() {
    let redis = RedisServer::start();
    let nodes = [node(&redis, "a").await, node(&redis, "b").await, node(&redis, "c").await];
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    publisher.update_members("dialog:1", &["u1", "u2", "u3"], &[]).await.unwrap();
    let mut clients = Vec::new();
    for (node, user) in nodes.iter().zip(["u1", "u2", "u3"]) {
        let mut c = node.connect(user, None).await;
        assert_eq!(c.subscribe("dialog:1").await["offset"], 0);
        clients.push(c);
    }

    let first =
        publisher.publish(Event::new("dialog:1", "message:new", &json!({"via": "crate"})).id("m-1")).await.unwrap();
    assert_eq!(first.offset, 1);
    for (i, node) in nodes.iter().enumerate() {
        let reply = node.publish(json!({"room": "dialog:1", "event": "message:new", "data": {"via": i}})).await;
        assert_eq!(reply["offset"], i + 2);
        assert_eq!(reply["epoch"], first.epoch.as_str());
    }
    for c in &mut clients {
        let e = c.recv().await;
        assert_eq!(
            (e["id"].as_str(), e["offset"].as_u64(), e["data"]["via"].as_str()),
            (Some("m-1"), Some(1), Some("crate"))
        );
        for i in 0..3u64 {
            let e = c.recv().await;
            assert_eq!((e["offset"].as_u64(), e["data"]["via"].as_u64()), (Some(i + 2), Some(i)));
        }
    }

    // exclude_user, published on node a, skips u2 on node b.
    nodes[0].publish(json!({"room": "dialog:1", "event": "message:new", "data": 5, "exclude_user": "u2"})).await;
    nodes[0].publish(json!({"room": "dialog:1", "event": "message:new", "data": 6})).await;
    assert_eq!(clients[0].recv().await["data"], 5);
    assert_eq!(clients[1].recv().await["data"], 6, "u2 skipped the excluded event");
    assert_eq!(clients[2].recv().await["data"], 5);
    assert_eq!(clients[0].recv().await["data"], 6);
    assert_eq!(clients[2].recv().await["data"], 6);

    // Member removal made on node c ends u1's subscription on node a.
    let (status, reply) = nodes[2].api("members", &json!({"room": "dialog:1", "remove": ["u1"]})).await;
    assert_eq!((status, reply), (200, json!({"added": 0, "removed": 1})));
    assert_eq!(clients[0].recv().await, json!({"type": "left", "room": "dialog:1", "reason": "removed"}));

    // Disconnect asked on node a closes u3 on node c.
    let (status, _) = nodes[0].api("disconnect", &json!({"user": "u3"})).await;
    assert_eq!(status, 200);
    assert_eq!(clients[2].recv_close().await.0, 4003);
    clients[1].roundtrip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_subscribes_only_while_it_has_members() {
    let redis = RedisServer::start();
    let a = node(&redis, "a").await;
    let b = node(&redis, "b").await;
    a.add_members("dialog:5", &["u1"]).await;
    let mut member = a.connect("u1", None).await;
    let mut bystander = b.connect("u2", None).await;
    // Only user:u1 and user:u2 are subscribed so far.
    assert_eq!(redis.numsub("dialog:5"), 0);
    member.subscribe("dialog:5").await;
    assert_eq!(redis.numsub("dialog:5"), 1, "node a subscribed before its ok");

    b.publish(json!({"room": "dialog:5", "event": "message:new"})).await;
    assert_eq!(member.recv().await["event"], "message:new");
    // Node b holds no member of dialog:5 and never subscribed to it.
    bystander.roundtrip().await;
    assert_eq!(redis.numsub("dialog:5"), 1);

    member.request(json!({"type": "unsubscribe", "id": 2, "room": "dialog:5"})).await;
    eventually("node a to unsubscribe after its last member left", async || redis.numsub("dialog:5") == 0).await;
    assert_eq!(redis.numsub("user:u1"), 1, "the connection's own room stays subscribed");
    drop(member);
    eventually("user:u1 to be released after the connection closed", async || redis.numsub("user:u1") == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_right_after_connected_reaches_the_connection() {
    // `connected` promises the personal and org rooms: an event published as soon as the client
    // has it, through another node, must not slip in before the node finished joining them.
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    for i in 0..20 {
        let user = format!("fresh{i}");
        let mut c = a.connect(&user, Some("o1")).await;
        b.publish(json!({"room": format!("user:{user}"), "event": "hello", "data": i})).await;
        b.publish(json!({"room": "org:o1", "event": "news", "data": i})).await;
        let (first, second) = (c.recv().await, c.recv().await);
        assert_eq!(
            (first["event"].as_str(), second["event"].as_str()),
            (Some("hello"), Some("news")),
            "{first} {second}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_positions_are_the_rooms_positions_in_redis() {
    // A client that connects to node a after events were published through node b gets, in
    // `connected`, the room's position in Redis: the next event follows it, in the same epoch.
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    for _ in 0..3 {
        b.publish(json!({"room": "user:p1", "event": "before"})).await;
    }
    let mut c = a.connect_url(&format!("{}?token={}", a.ws_url(), a.token("p1", Some("po")))).await;
    let connected = c.recv().await;
    let user = &connected["positions"]["user:p1"];
    assert_eq!(user["offset"], 3, "{connected}");
    assert_eq!(connected["positions"]["org:po"]["offset"], 0, "{connected}");
    let published = b.publish(json!({"room": "user:p1", "event": "after"})).await;
    assert_eq!(published["epoch"], user["epoch"], "{published} {connected}");
    let event = c.recv().await;
    assert_eq!((event["event"].as_str(), event["offset"].as_u64()), (Some("after"), Some(4)), "{event}");
}
