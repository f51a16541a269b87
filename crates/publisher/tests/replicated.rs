//! `wait_replicas` against a real master and replica: a publish no replica confirmed fails as
//! unavailable and stays out of history reads and off the channel; once confirmed (a retry
//! with the same id, after the replica is back) it is read and published, at its first offset.

use std::time::Duration;

use roomcast_proto::RoomName;
use roomcast_publisher::{Event, Publisher, RedisOptions, Target};
use roomcast_testkit::{PATIENCE, RedisServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_publish_is_neither_read_nor_delivered_until_a_retry_confirms_it() {
    let master = RedisServer::start_with_extra(&["--repl-diskless-sync-delay", "0"]);
    let port = master.port.to_string();
    let replica =
        RedisServer::start_with_extra(&["--replicaof", "127.0.0.1", &port, "--repl-diskless-sync-delay", "0"]);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut replica.connection().unwrap()).unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the replica never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let options = RedisOptions { wait_replicas: 1, ..RedisOptions::default() };
    let publisher = Publisher::connect_with_options(Target::Redis(master.url()), &options, "", "").await.unwrap();
    let room = RoomName::parse("dialog:w").unwrap();
    let mut channel = redis::Client::open(master.url()).unwrap().get_connection().unwrap();
    let mut pubsub = channel.as_pubsub();
    pubsub.subscribe("dialog:w").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_millis(300))).unwrap();

    let first = publisher.publish(Event::new("dialog:w", "e", &json!(1)).id("a")).await.unwrap();
    assert_eq!(first.offset, 1);
    assert!(pubsub.get_message().is_ok(), "a confirmed publish reaches the channel");

    // The replica stopped and cut off: nothing can be confirmed.
    replica.pause();
    let _: u64 =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica").query(&mut master.connection().unwrap()).unwrap();
    let refused = publisher.publish(Event::new("dialog:w", "e", &json!(2)).id("b")).await;
    assert!(refused.is_err_and(|e| e.is_retryable()), "unconfirmed: unavailable");
    let history = publisher.history(&room, Some((1, &first.epoch))).await.unwrap();
    assert_eq!((history.offset, history.events.len()), (1, 0), "history stops at the confirmed offset");
    let page = publisher.history_page(&room, None, 10).await.unwrap();
    assert_eq!((page.offset, page.events.len()), (1, 1), "so does a history page");
    assert!(pubsub.get_message().is_err(), "nothing on the channel");

    replica.resume();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let retried = loop {
        match publisher.publish(Event::new("dialog:w", "e", &json!(2)).id("b")).await {
            Ok(published) => break published,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "the replica never came back: {e}"),
        }
    };
    assert_eq!((retried.offset, retried.duplicate), (2, true), "confirmed at its first offset");
    let history = publisher.history(&room, Some((1, &first.epoch))).await.unwrap();
    assert_eq!((history.offset, history.events.len()), (2, 1));
    assert!(pubsub.get_message().is_ok(), "published once confirmed");
}
