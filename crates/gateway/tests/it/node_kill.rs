//! A gateway node killed with SIGKILL: its clients reconnect to another node with `since` and
//! lose nothing that was published while they were away.

use crate::common::NodeProcess;
use roomcast_testkit::RedisServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_node_recover_everything_on_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut a = NodeProcess::start(&[("ROOMCAST_REDIS_URL", &url), ("ROOMCAST_NODE_ID", "a")]);
    let b = NodeProcess::start(&[("ROOMCAST_REDIS_URL", &url), ("ROOMCAST_NODE_ID", "b")]);
    b.gateway.add_members("dialog:k", &["u1", "u2"]).await;

    let mut clients = Vec::new();
    for user in ["u1", "u2"] {
        let mut c = a.gateway.connect(user, None).await;
        c.subscribe("dialog:k").await;
        clients.push(c);
    }
    for i in 0..10 {
        b.gateway.publish(json!({"room": "dialog:k", "event": "message:new", "data": i})).await;
    }
    let mut last = Vec::new();
    for c in &mut clients {
        let mut e = json!(null);
        for _ in 0..10 {
            e = c.recv().await;
        }
        last.push(e);
    }

    a.kill();
    drop(clients);
    for i in 10..40 {
        b.gateway.publish(json!({"room": "dialog:k", "event": "message:new", "data": i})).await;
    }
    for (user, seen) in ["u1", "u2"].into_iter().zip(&last) {
        let mut c = b.gateway.connect(user, None).await;
        let ok = c.subscribe_since("dialog:k", seen["offset"].as_u64().unwrap(), seen["epoch"].as_str().unwrap()).await;
        assert_eq!((ok["recovered"].as_bool(), ok["offset"].as_u64()), (Some(true), Some(40)), "{ok}");
        for i in 10..40u64 {
            let e = c.recv().await;
            assert_eq!((e["offset"].as_u64(), e["data"].as_u64()), (Some(i + 1), Some(i)), "{e}");
        }
        c.roundtrip().await;
    }
}
