//! Recovery with `since`, on the embedded broker and across two nodes on one Redis: exactly the
//! missed events in order with `recovered:true`; `recovered:false` and nothing old when history
//! no longer reaches back or the epoch changed; a message id published three times is
//! delivered once and answered with the same offset.

use crate::common::{TestClient, TestGateway};
use roomcast_gateway::Config;
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::layout;
use roomcast_testkit::{RedisServer, eventually};
use serde_json::{Value, json};

/// Two gateways sharing a broker: two nodes on one Redis, or the same embedded node twice.
struct Pair {
    a: TestGateway,
    b: Option<TestGateway>,
    redis: Option<RedisServer>,
}

impl Pair {
    async fn start(redis: bool, adjust: impl Fn(&mut Config) + Clone) -> Self {
        if !redis {
            return Self { a: TestGateway::start_with(adjust).await, b: None, redis: None };
        }
        let server = RedisServer::start();
        let node = |name: &'static str| {
            let (url, adjust) = (server.url(), adjust.clone());
            TestGateway::start_with(move |c| {
                c.broker = BrokerConfig::Redis(url);
                c.node_id = name.to_owned();
                adjust(c);
            })
        };
        let (a, b) = (node("a").await, node("b").await);
        Self { a, b: Some(b), redis: Some(server) }
    }

    fn b(&self) -> &TestGateway {
        self.b.as_ref().unwrap_or(&self.a)
    }
}

async fn publish_n(gw: &TestGateway, room: &str, n: u64) {
    for i in 0..n {
        gw.publish(json!({"room": room, "event": "message:new", "data": {"i": i}})).await;
    }
}

async fn events(client: &mut TestClient, n: u64) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..n {
        let e = client.recv().await;
        assert_eq!(e["type"], "event", "{e}");
        got.push(e);
    }
    got
}

fn offsets(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["offset"].as_u64().unwrap()).collect()
}

async fn exactly_the_missed_events_after_a_reconnect(redis: bool) {
    let pair = Pair::start(redis, |_| {}).await;
    pair.a.add_members("dialog:1", &["u1"]).await;
    let mut client = pair.a.connect("u1", None).await;
    client.subscribe("dialog:1").await;
    publish_n(&pair.a, "dialog:1", 1).await;
    let seen = client.recv().await;
    drop(client);

    publish_n(pair.b(), "dialog:1", 50).await;
    let mut client = pair.b().connect("u1", None).await;
    let ok = client.subscribe_since("dialog:1", 1, seen["epoch"].as_str().unwrap()).await;
    assert_eq!((ok["recovered"].as_bool(), ok["offset"].as_u64()), (Some(true), Some(51)), "{ok}");
    let recovered = events(&mut client, 50).await;
    assert_eq!(offsets(&recovered), (2..=51).collect::<Vec<_>>());
    assert_eq!(recovered[0]["data"], json!({"i": 0}));
    assert!(recovered.iter().all(|e| e["epoch"] == seen["epoch"] && e["id"].is_string()));
    // Then live events, with nothing in between.
    publish_n(&pair.a, "dialog:1", 1).await;
    assert_eq!(client.recv().await["offset"], 52);
    client.roundtrip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_since_recovers_exactly_the_missed_events() {
    exactly_the_missed_events_after_a_reconnect(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_since_on_another_node_recovers_exactly_the_missed_events() {
    exactly_the_missed_events_after_a_reconnect(true).await;
}

async fn history_that_no_longer_reaches_back(redis: bool) {
    let pair = Pair::start(redis, |c| c.retention.history_size = 10).await;
    let mut client = pair.a.connect("u1", None).await;
    let ok = client.subscribe("user:u1").await;
    drop(client);
    publish_n(pair.b(), "user:u1", 20).await;

    let mut client = pair.b().connect("u1", None).await;
    let ok = client.subscribe_since("user:u1", 0, ok["epoch"].as_str().unwrap()).await;
    assert_eq!((ok["recovered"].as_bool(), ok["offset"].as_u64()), (Some(false), Some(20)), "{ok}");
    // Nothing old follows: the next frame is the next live event.
    publish_n(&pair.a, "user:u1", 1).await;
    assert_eq!(client.recv().await["offset"], 21);

    // Within what history keeps, recovery still works.
    let mut other = pair.a.connect("u1", None).await;
    let ok = other.subscribe_since("user:u1", 15, ok["epoch"].as_str().unwrap()).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    assert_eq!(offsets(&events(&mut other, 6).await), [16, 17, 18, 19, 20, 21]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_history_that_no_longer_reaches_back_is_not_recovered() {
    history_that_no_longer_reaches_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_history_that_no_longer_reaches_back_is_not_recovered() {
    history_that_no_longer_reaches_back(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_history_means_a_new_epoch_and_no_recovery() {
    let mut pair = Pair::start(true, |_| {}).await;
    let mut client = pair.a.connect("u1", None).await;
    client.subscribe("user:u1").await;
    publish_n(&pair.a, "user:u1", 3).await;
    let last = events(&mut client, 3).await.pop().unwrap();
    drop(client);

    // Redis restarts without persistence: every key is gone.
    let redis = pair.redis.as_mut().unwrap();
    redis.kill();
    redis.restart();
    for gw in [&pair.a, pair.b()] {
        eventually("the node to be ready again", async || gw.get("/readyz").await.0 == 200).await;
    }
    let mut client = pair.b().connect("u1", None).await;
    let ok = client.subscribe_since("user:u1", 3, last["epoch"].as_str().unwrap()).await;
    assert_eq!(ok["recovered"], false, "{ok}");
    assert_ne!(ok["epoch"], last["epoch"]);
    assert_eq!(ok["offset"], 0);

    // Deleting a room's keys is the same loss, and a since in the old epoch is refused.
    publish_n(&pair.a, "user:u1", 2).await;
    assert_eq!(offsets(&events(&mut client, 2).await), [1, 2]);
    let mut c = pair.redis.as_ref().unwrap().connection().unwrap();
    let channel = layout::channel("", "user:u1");
    let keys = [layout::position_key(&channel), layout::history_key(&channel)];
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut c).unwrap();
    let mut again = pair.a.connect("u1", None).await;
    let fresh = again.subscribe_since("user:u1", 2, ok["epoch"].as_str().unwrap()).await;
    assert_eq!(fresh["recovered"], false, "{fresh}");
    assert_ne!(fresh["epoch"], ok["epoch"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_restart_means_a_new_epoch_and_no_recovery() {
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u1", None).await;
    let ok = client.subscribe("user:u1").await;
    drop((client, gw));
    let gw = TestGateway::start().await;
    let mut client = gw.connect("u1", None).await;
    let again = client.subscribe_since("user:u1", 0, ok["epoch"].as_str().unwrap()).await;
    assert_eq!(again["recovered"], false, "{again}");
    assert_ne!(again["epoch"], ok["epoch"]);
}

async fn one_id_published_three_times_is_delivered_once(redis: bool) {
    let pair = Pair::start(redis, |_| {}).await;
    let mut client = pair.a.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let mut replies = Vec::new();
    for gw in [&pair.a, pair.b(), &pair.a] {
        replies.push(gw.publish(json!({"room": "user:u1", "event": "message:new", "data": 1, "id": "m-7"})).await);
    }
    assert!(replies.iter().all(|r| *r == replies[0]), "{replies:?}");
    assert_eq!(replies[0]["offset"], 1);
    // The same id in another room is another message.
    let other = pair.a.publish(json!({"room": "user:u2", "event": "message:new", "data": 1, "id": "m-7"})).await;
    assert_eq!(other["offset"], 1);
    pair.a.publish(json!({"room": "user:u1", "event": "message:new", "data": 2, "id": "m-8"})).await;
    let got = events(&mut client, 2).await;
    assert_eq!(got.iter().map(|e| e["id"].as_str().unwrap()).collect::<Vec<_>>(), ["m-7", "m-8"]);
    assert_eq!(offsets(&got), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_one_id_published_three_times_is_delivered_once() {
    one_id_published_three_times_is_delivered_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_one_id_published_three_times_is_delivered_once() {
    one_id_published_three_times_is_delivered_once(true).await;
}
