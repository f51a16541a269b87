//! A Redis that stops answering without closing its sockets (a real `redis-server` stopped
//! with SIGSTOP) cannot hide: with the default `redis_stall_timeout` the node turns `/readyz`
//! 503 and `roomcast_broker_up` 0 within 5 s, and once the process goes on (SIGCONT) the events
//! published before the node is subscribed again are repaired from history, in order, once.

use std::time::{Duration, Instant};

use roomcast_publisher::{Event, Publisher, Target};
use roomcast_testkit::{PATIENCE, RedisServer, eventually};

use crate::common::TestGateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_is_noticed_within_five_seconds_and_repaired_after() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |_| {}).await;
    let mut client = gw.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    publisher.publish(Event::new("user:u1", "before", &1)).await.unwrap();
    assert_eq!(client.recv().await["offset"], 1);
    assert_eq!(gw.metric("roomcast_broker_up").await, 1.0);

    redis.pause();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.get("/readyz").await.0 != 503 {
        assert!(Instant::now() < deadline, "/readyz still 200 five seconds after Redis stopped answering");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.metric("roomcast_broker_up").await, 0.0);

    redis.resume();
    // Published at once: most likely before the node is subscribed again.
    for i in 0..5 {
        let id = format!("late-{i}");
        let deadline = Instant::now() + PATIENCE;
        while publisher.publish(Event::new("user:u1", "late", &i).id(&id)).await.is_err() {
            assert!(Instant::now() < deadline, "Redis did not answer after SIGCONT");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for offset in 2..=6 {
        let e = client.recv().await;
        assert_eq!((e["event"].as_str(), e["offset"].as_u64()), (Some("late"), Some(offset)), "{e}");
    }
    client.roundtrip().await;
    eventually("the node ready again", async || gw.get("/readyz").await.0 == 200).await;
    assert_eq!(gw.metric("roomcast_broker_up").await, 1.0);
}
