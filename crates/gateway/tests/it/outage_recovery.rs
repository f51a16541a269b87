//! Redis (persistent, as production runs it) killed for a few seconds under steady publishing
//! through the crate, with failed publishes retried under the same id: afterwards every client
//! has every acknowledged event exactly once, whether the node repaired the gap from history
//! or told the client to resubscribe and the client recovered with `since`. The nodes and the
//! crate are told that this Redis keeps every acknowledged write across a restart
//! (`redis_durable`); without it, a restarted Redis starts every room's epoch anew.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{TestClient, TestGateway};
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::{Event, Publisher, RedisOptions, Retention, Target};
use roomcast_testkit::{PATIENCE, RedisServer, eventually};
use serde_json::json;
use tokio::sync::watch;

const ROOM: &str = "dialog:outage";
const EVENTS: usize = 400;
/// Enough history to cover the outage plus the subscriber's reconnect backoff (up to a few
/// seconds at 200 publishes per second): this test is about the outage, not about trimming.
const HISTORY: usize = 10_000;

/// Reads until it has every id in `acked` (once publishing is over), resubscribing with
/// `since` whenever the node says continuity was lost. Returns the ids in arrival order.
async fn collect(mut c: TestClient, mut acked: watch::Receiver<Option<Vec<String>>>) -> (Vec<String>, usize) {
    let (mut ids, mut resubscribes) = (Vec::new(), 0);
    let (mut offset, mut epoch) = (0u64, String::new());
    loop {
        if let Some(all) = &*acked.borrow()
            && ids.len() >= all.len()
        {
            return (ids, resubscribes);
        }
        let frame = tokio::select! {
            frame = c.recv() => frame,
            _ = acked.changed() => continue,
        };
        match frame["type"].as_str() {
            Some("event") => {
                ids.push(frame["id"].as_str().unwrap().to_owned());
                offset = frame["offset"].as_u64().unwrap();
                epoch = frame["epoch"].as_str().unwrap().to_owned();
            }
            Some("left") if frame["room"] == ROOM => {
                assert_eq!(frame["reason"], "resubscribe", "{frame}");
                resubscribes += 1;
                let since = json!({"offset": offset, "epoch": epoch});
                let deadline = tokio::time::Instant::now() + PATIENCE;
                loop {
                    // Redis may still be down: the subscribe fails with an error; try again.
                    c.send(json!({"type": "subscribe", "id": 9, "room": ROOM, "since": since})).await;
                    let reply = c.recv().await;
                    if reply["type"] == "ok" {
                        assert_eq!(reply["recovered"], true, "persistent Redis keeps history: {reply}");
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "could not resubscribe: {reply}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            _ => {}
        }
    }
}

/// A publisher told that `redis` keeps every acknowledged write across a restart.
async fn durable_publisher(redis: &RedisServer) -> Publisher {
    let options = RedisOptions { durable_restarts: true, ..RedisOptions::default() };
    Publisher::connect_with_options(Target::Redis(redis.url()), &options, "", "").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_arrives_once_across_a_redis_outage() {
    let mut redis = RedisServer::start_persistent();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let url = redis.url();
        nodes.push(
            TestGateway::start_with(move |c| {
                c.broker = BrokerConfig::Redis(url);
                c.node_id = name.to_owned();
                c.retention.history_size = HISTORY;
                c.redis.durable_restarts = true;
            })
            .await,
        );
    }
    let users = ["u1", "u2", "u3", "u4"];
    nodes[0].add_members(ROOM, &users).await;
    let (done, acked_rx) = watch::channel(None);
    let mut clients = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut c = nodes[i % 2].connect(user, None).await;
        c.subscribe(ROOM).await;
        clients.push(tokio::spawn(collect(c, acked_rx.clone())));
    }

    let retention = Retention { history_size: HISTORY, ..Retention::default() };
    let publisher = durable_publisher(&redis).await.with_retention(retention);
    let publishing = tokio::spawn(async move {
        let (mut acked, mut failures) = (Vec::new(), 0);
        for i in 0..EVENTS {
            let id = format!("m-{i}");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let event = Event::new(ROOM, "message:new", &json!({"i": i})).id(&id);
                match publisher.publish(event).await {
                    Ok(_) => break,
                    Err(e) => {
                        assert!(e.is_retryable(), "{e}");
                        assert!(tokio::time::Instant::now() < deadline, "Redis did not come back: {e}");
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            acked.push(id);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (acked, failures)
    });

    tokio::time::sleep(Duration::from_millis(600)).await;
    redis.kill();
    for gw in &nodes {
        eventually("the node to notice Redis is gone", async || gw.get("/readyz").await.0 == 503).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();

    let (acked, failures) = publishing.await.unwrap();
    assert!(failures > 0, "the outage must have made some publishes fail");
    done.send(Some(acked.clone())).unwrap();
    let expected: HashSet<&String> = acked.iter().collect();
    for client in clients {
        let (ids, _resubscribes) = tokio::time::timeout(Duration::from_secs(30), client).await.unwrap().unwrap();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no duplicates");
        assert_eq!(unique, expected, "every acknowledged event, and only those");
        assert_eq!(ids, acked, "in publish order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_before_the_node_resubscribed_are_repaired_without_a_later_event() {
    let mut redis = RedisServer::start_persistent();
    let gw = TestGateway::on_redis(&redis, |c| c.redis.durable_restarts = true).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let publisher = durable_publisher(&redis).await;
    publisher.publish(Event::new("user:u1", "before", &1)).await.unwrap();
    assert_eq!(client.recv().await["offset"], 1);

    redis.kill();
    eventually("the node to notice Redis is gone", async || gw.get("/readyz").await.0 == 503).await;
    // Let the subscriber's reconnect backoff grow past a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    // Published at once, most likely before the node is subscribed again, and nothing after
    // them reveals a gap: only the repair that follows the resubscription can deliver them.
    for i in 0..5 {
        let id = format!("late-{i}");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while publisher.publish(Event::new("user:u1", "late", &i).id(&id)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "Redis did not come back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for offset in 2..=6 {
        let e = client.recv().await;
        assert_eq!((e["event"].as_str(), e["offset"].as_u64()), (Some("late"), Some(offset)), "{e}");
    }
    client.roundtrip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_durable_a_restarted_redis_starts_a_new_epoch_and_the_client_is_told() {
    // Persistent as above, but the node and the crate are not told so: a restart may have lost
    // the last acknowledged writes (a snapshot, `appendfsync everysec`), so no offset of the
    // old epoch may be handed out again.
    let mut redis = RedisServer::start_persistent();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let before = publisher.publish(Event::new("user:u1", "before", &1)).await.unwrap();
    assert_eq!(client.recv().await["offset"], 1);

    redis.kill();
    eventually("the node to notice Redis is gone", async || gw.get("/readyz").await.0 == 503).await;
    redis.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        match publisher.publish(Event::new("user:u1", "after", &2).id("after-1")).await {
            Ok(published) => break published,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "Redis did not come back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(after.epoch, before.epoch, "a new epoch: offset 1 of the old one is never reused");
    assert_eq!(after.offset, 1);
    let left = client.recv().await;
    assert_eq!((left["type"].as_str(), left["reason"].as_str()), (Some("left"), Some("resubscribe")), "{left}");
    let reply = client.subscribe_since("user:u1", 1, &before.epoch).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    assert_eq!(reply["epoch"], after.epoch.as_str(), "{reply}");
}
