//! Redis over TLS (`rediss://`) with real processes: a `redis-server` with a TLS port and a CA
//! the test makes, a real `roomcast` node and the publisher crate. Mutual TLS works, and a
//! certificate that does not check out (wrong CA, wrong host name, none when one is required)
//! stops start-up with one line naming the setting.

use roomcast_publisher::{ClientCert, Event, Publisher, RedisOptions, Target, Tls};
use roomcast_testkit::{RedisServer, TestPki};
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
