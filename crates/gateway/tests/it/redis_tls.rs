//! Redis over TLS (`rediss://`) with real processes: a `redis-server` with a TLS port and a CA
//! the test makes, a real `roomcast` node and the publisher crate. Mutual TLS works, and a
//! certificate that does not check out (wrong CA, wrong host name, none when one is required)
//! stops start-up with one line naming the setting. A TLS Redis Cluster and a TLS Sentinel group
//! (failover included) carry events too.

use roomcast_publisher::{ClientCert, Event, Publisher, RedisOptions, Target, Tls};
use roomcast_testkit::{PATIENCE, RedisCluster, RedisServer, SENTINEL_MASTER, SentinelGroup, TestPki};
use serde_json::json;

use crate::common::{NodeProcess, SECRET, roomcast};

fn path(pki: &TestPki, file: &str) -> String {
    pki.path(file).display().to_string()
}

/// Runs the binary against `url` with `env` and returns its stderr, after checking that it
/// refused to start (status 2) with one line.
fn refused(url: &str, env: &[(&str, String)]) -> String {
    let mut cmd = roomcast();
    cmd.env("ROOMCAST_JWT_SECRET", SECRET).env("ROOMCAST_LISTEN", "127.0.0.1:0").env("ROOMCAST_REDIS_URL", url);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_and_the_publisher_deliver_over_mutual_tls() {
    let pki = TestPki::new();
    let redis = RedisServer::start_tls(&pki, true, false);
    let url = redis.tls_url();
    let (ca, cert, key) = (path(&pki, "ca.crt"), path(&pki, "client.crt"), path(&pki, "client.key"));
    let node = NodeProcess::start(&[
        ("ROOMCAST_REDIS_URL", &url),
        ("ROOMCAST_REDIS_TLS_CA", &ca),
        ("ROOMCAST_REDIS_TLS_CERT", &cert),
        ("ROOMCAST_REDIS_TLS_KEY", &key),
    ]);
    let mut client = node.gateway.connect("u1", None).await;
    client.subscribe("user:u1").await;

    let read = |f: &str| std::fs::read(pki.path(f)).unwrap();
    let options = RedisOptions {
        tls: Some(Tls {
            ca: Some(read("ca.crt")),
            client: Some(ClientCert { cert: read("client.crt"), key: read("client.key") }),
        }),
        ..RedisOptions::default()
    };
    let publisher = Publisher::connect_with_options(Target::Redis(url), &options, "", "").await.unwrap();
    let published = publisher.publish(Event::new("user:u1", "message:new", &json!({"over": "tls"}))).await.unwrap();
    let event = client.recv().await;
    assert_eq!((event["data"]["over"].as_str(), event["offset"].as_u64()), (Some("tls"), Some(published.offset)));

    // Through the node's API as well: its publisher connection is on TLS too.
    let reply = node.gateway.publish(json!({"room": "user:u1", "event": "e", "data": 2})).await;
    assert_eq!(client.recv().await["offset"], reply["offset"]);
}

#[test]
fn a_wrong_ca_stops_start_up_naming_the_ca_setting() {
    let pki = TestPki::new();
    let redis = RedisServer::start_tls(&pki, false, false);
    let stderr = refused(&redis.tls_url(), &[("ROOMCAST_REDIS_TLS_CA", path(&pki, "other-ca.crt"))]);
    assert!(stderr.contains("ROOMCAST_REDIS_TLS_CA"), "{stderr}");
    assert!(stderr.contains("not signed by"), "{stderr}");
}

#[test]
fn the_host_name_is_verified_by_default() {
    let pki = TestPki::new();
    let redis = RedisServer::start_tls(&pki, false, true);
    let stderr = refused(&redis.tls_url(), &[("ROOMCAST_REDIS_TLS_CA", path(&pki, "ca.crt"))]);
    assert!(stderr.contains("ROOMCAST_REDIS_URL"), "{stderr}");
    assert!(stderr.contains("another host name"), "{stderr}");
}

#[test]
fn redis_requiring_a_client_certificate_is_named_when_none_is_given() {
    let pki = TestPki::new();
    let redis = RedisServer::start_tls(&pki, true, false);
    let stderr = refused(&redis.tls_url(), &[("ROOMCAST_REDIS_TLS_CA", path(&pki, "ca.crt"))]);
    assert!(stderr.contains("ROOMCAST_REDIS_TLS_CERT"), "{stderr}");
}

#[test]
fn a_ca_file_that_is_no_certificate_is_named_before_connecting() {
    let pki = TestPki::new();
    let stderr = refused("rediss://127.0.0.1:1", &[("ROOMCAST_REDIS_TLS_CA", path(&pki, "client.key"))]);
    assert!(stderr.contains("ROOMCAST_REDIS_TLS_CA") && stderr.contains("no PEM CERTIFICATE"), "{stderr}");
}

fn ca_only(pki: &TestPki) -> RedisOptions {
    let tls = Tls { ca: Some(std::fs::read(pki.path("ca.crt")).unwrap()), client: None };
    RedisOptions { tls: Some(tls), ..RedisOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_and_the_publisher_deliver_through_a_tls_cluster() {
    let pki = std::sync::Arc::new(TestPki::new());
    let shared = std::sync::Arc::clone(&pki);
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_tls(&shared)).await.unwrap();
    let seeds = cluster.tls_seeds().join(",");
    let ca = path(&pki, "ca.crt");
    let node = NodeProcess::start(&[("ROOMCAST_REDIS_CLUSTER", &seeds), ("ROOMCAST_REDIS_TLS_CA", &ca)]);
    let mut client = node.gateway.connect("u2", Some("o1")).await;
    // Rooms on two masters (slots 245 and 13539): the node follows the cluster's TLS ports.
    let rooms = ["user:u2", "org:o1"];
    for room in rooms {
        client.subscribe(room).await;
    }
    let owners: std::collections::HashSet<usize> =
        rooms.iter().map(|r| cluster.owner(&format!("{{{r}}}:pos")).1).collect();
    assert_eq!(owners.len(), 2, "the rooms live on two masters");
    let publisher =
        Publisher::connect_with_options(Target::Cluster(cluster.tls_seeds()), &ca_only(&pki), "", "").await.unwrap();
    for room in rooms {
        let published = publisher.publish(Event::new(room, "message:new", &json!({"room": room}))).await.unwrap();
        let event = client.recv().await;
        assert_eq!((event["room"].as_str(), event["offset"].as_u64()), (Some(room), Some(published.offset)), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_and_the_publisher_follow_a_sentinel_failover_over_tls() {
    let pki = std::sync::Arc::new(TestPki::new());
    let shared = std::sync::Arc::clone(&pki);
    let mut group = tokio::task::spawn_blocking(move || SentinelGroup::start_tls(&shared)).await.unwrap();
    let sentinels = group.seeds();
    assert!(sentinels.iter().all(|s| s.starts_with("rediss://")), "{sentinels:?}");
    let (seeds, ca) = (sentinels.join(","), path(&pki, "ca.crt"));
    let node = NodeProcess::start(&[
        ("ROOMCAST_REDIS_SENTINELS", &seeds),
        ("ROOMCAST_REDIS_SENTINEL_MASTER", SENTINEL_MASTER),
        ("ROOMCAST_REDIS_TLS_CA", &ca),
    ]);
    let mut client = node.gateway.connect("u1", None).await;
    client.subscribe("user:u1").await;
    let target = Target::Sentinel { sentinels, master: SENTINEL_MASTER.to_owned() };
    let publisher = Publisher::connect_with_options(target, &ca_only(&pki), "", "").await.unwrap();
    let before = publisher.publish(Event::new("user:u1", "before", &1)).await.unwrap();
    assert_eq!(client.recv().await["offset"], before.offset);

    group.master.kill();
    let group = tokio::task::spawn_blocking(move || {
        group.wait_for_failover();
        group
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        match publisher.publish(Event::new("user:u1", "after", &2).id("after-1")).await {
            Ok(published) => break published,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no master over TLS: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // A failover without WAIT may have lost writes: a new epoch, and the client is told.
    assert_ne!(after.epoch, before.epoch);
    let left = client.recv().await;
    assert_eq!((left["type"].as_str(), left["reason"].as_str()), (Some("left"), Some("resubscribe")), "{left}");
    let reply = client.subscribe_since("user:u1", before.offset, &before.epoch).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    let next = node.gateway.publish(json!({"room": "user:u1", "event": "next", "data": 3})).await;
    assert_eq!(client.recv().await["offset"], next["offset"], "delivered through the promoted replica, over TLS");
    drop(group);
}
