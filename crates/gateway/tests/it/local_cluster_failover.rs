//! `deploy/local/cluster.sh` for real: clients connect through nginx to three `roomcast`
//! processes sharing one Redis; one node is killed (SIGKILL) and its clients reconnect through
//! nginx to the other two and get events again; a second node is drained (SIGTERM) and its
//! clients move to the last one; `cluster.sh stop` ends every process it started.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{PATIENCE, TestClient, TestGateway};
use crate::ops::LocalCluster;
use futures::StreamExt;
use futures::future::join_all;
use serde_json::json;

const CLIENTS: usize = 12;

/// Connects `user` through the load balancer; returns the client and the node that took it.
async fn connect(lb: &TestGateway, user: &str) -> (TestClient, String) {
    let mut client = lb.connect_url(&format!("{}?token={}", lb.ws_url(), lb.token(user, None))).await;
    let connected = client.recv().await;
    assert_eq!(connected["type"], "connected", "{connected}");
    // The pong proves the connection is served end to end (its own rooms were joined before
    // `connected`).
    client.roundtrip().await;
    (client, connected["node"].as_str().unwrap().to_owned())
}

/// Reads until the socket ends (close frame, error or end of stream).
async fn until_closed(client: &mut TestClient) {
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = client.ws.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket of a killed node never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_node_reconnect_through_nginx_to_the_others() {
    let mut cluster = LocalCluster::start("failover");
    let lb = TestGateway::attach(cluster.lb);

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(connect(&lb, &format!("u{i}")).await);
    }
    let mut per_node = BTreeMap::<String, usize>::new();
    for (_, node) in &clients {
        *per_node.entry(node.clone()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "nginx spreads clients over the three nodes: {per_node:?}");

    // Every user gets its event wherever the publish lands: the nodes share Redis.
    for i in 0..CLIENTS {
        lb.publish(json!({"room": format!("user:u{i}"), "event": "before", "data": i})).await;
    }
    for (i, (client, _)) in clients.iter_mut().enumerate() {
        assert_eq!(client.recv().await["data"], i);
    }

    let victim = "b";
    let pid = cluster.pid("node-b");
    let killed = Instant::now();
    let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(status.success());

    let (orphans, mut clients): (Vec<_>, Vec<_>) =
        clients.into_iter().enumerate().partition(|(_, (_, node))| node == victim);
    let orphan_count = orphans.len();
    assert!(orphan_count > 0);
    let reconnects = orphans.into_iter().map(|(i, (mut old, _))| {
        let lb = &lb;
        async move {
            until_closed(&mut old).await;
            // What a client does on an abnormal close: connect again, to the same address.
            let (client, node) = connect(lb, &format!("u{i}")).await;
            (i, client, node, killed.elapsed())
        }
    });
    let reconnected = tokio::time::timeout(PATIENCE, join_all(reconnects)).await.expect("every client reconnects");
    let mut slowest = Duration::ZERO;
    for (i, client, node, took) in reconnected {
        assert_ne!(node, victim, "nginx sent u{i} back to the dead node");
        slowest = slowest.max(took);
        clients.push((i, (client, node)));
    }
    clients.sort_by_key(|(i, _)| *i);
    let _ = writeln!(
        std::io::stderr(),
        "failover: {orphan_count} of {CLIENTS} clients were on node {victim}; all reconnected through nginx within {} ms of the SIGKILL",
        slowest.as_millis()
    );

    for i in 0..CLIENTS {
        lb.publish(json!({"room": format!("user:u{i}"), "event": "after", "data": i})).await;
    }
    for (i, (client, _)) in &mut clients {
        let i = *i;
        let event = client.recv().await;
        assert_eq!((event["event"].as_str(), event["data"].as_u64()), (Some("after"), Some(i as u64)), "{event}");
    }
    // A rolling restart of node c: SIGTERM drains it (1012 over its 2 s window) while nginx,
    // seeing 503 on new upgrades there, sends its clients to a, the last node.
    let draining = cluster.pid("node-c");
    let (on_c, mut clients): (Vec<_>, Vec<_>) = clients.into_iter().partition(|(_, (_, node))| node == "c");
    let drained_count = on_c.len();
    let drained = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &draining.to_string()]).status().unwrap().success());
    let moves = on_c.into_iter().map(|(i, (mut old, _))| {
        let lb = &lb;
        async move {
            assert_eq!(old.recv_close().await.0, 1012, "a drain closes with 1012");
            let (client, node) = connect(lb, &format!("u{i}")).await;
            (i, client, node, drained.elapsed())
        }
    });
    let mut slowest = Duration::ZERO;
    for (i, client, node, took) in join_all(moves).await {
        assert_eq!(node, "a", "u{i} went to the only node that is neither dead nor draining");
        slowest = slowest.max(took);
        clients.push((i, (client, node)));
    }
    let _ = writeln!(
        std::io::stderr(),
        "drain: node c's clients were all on node a {} ms after SIGTERM (drain window 2 s)",
        slowest.as_millis()
    );
    for (i, (client, _)) in &mut clients {
        lb.publish(json!({"room": format!("user:u{i}"), "event": "drained", "data": *i})).await;
        assert_eq!(client.recv().await["event"], "drained");
    }
    assert_eq!(clients.len(), CLIENTS);
    drop(clients);

    // nginx logs a WebSocket when it ends: every upgrade, without the query string's token.
    let log = cluster.dir.join("nginx/access.log");
    let upgrades = || std::fs::read_to_string(&log).unwrap().matches("\"GET /ws\" 101").count();
    let deadline = Instant::now() + PATIENCE;
    while upgrades() < CLIENTS + orphan_count + drained_count {
        assert!(Instant::now() < deadline, "nginx logged {} upgrades", upgrades());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let access = std::fs::read_to_string(&log).unwrap();
    assert!(!access.contains("token=") && !access.contains(crate::common::API_KEY), "{access}");

    let pids: Vec<u32> = cluster.pids().into_iter().filter(|&p| p != pid).collect();
    cluster.stop();
    for pid in pids {
        assert!(!crate::ops::process_alive(pid), "pid {pid} outlived cluster.sh stop");
    }
}
