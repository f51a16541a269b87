//! The real binary: SIGTERM closes every client with 1012 over the drain window and exits 0;
//! a bad configuration stops start-up with one line naming the setting.

use crate::common::{NodeProcess, SECRET, roomcast};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_1012_and_exits() {
    let mut node = NodeProcess::start_with_env(&[("ROOMCAST_JWT_SECRET", SECRET), ("ROOMCAST_DRAIN_WINDOW", "1s")]);
    let mut clients = Vec::new();
    for user in ["a", "b", "c"] {
        clients.push(node.gateway.connect(user, None).await);
    }
    node.terminate();
    for c in &mut clients {
        assert_eq!(c.recv_close().await.0, 1012);
    }
    let status = node.exited().await;
    assert!(status.success(), "{status}");
    let log = node.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("connection closed") && l.contains("reason=\"shutdown\"")).count(),
        3,
        "{log:#?}"
    );
}

#[test]
fn a_missing_secret_stops_start_up_with_one_line() {
    let out = roomcast().env("ROOMCAST_LISTEN", "127.0.0.1:0").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ROOMCAST_JWT_SECRET"), "{stderr}");
}

#[test]
fn a_malformed_setting_is_named() {
    let out = roomcast().env("ROOMCAST_JWT_SECRET", "s").env("ROOMCAST_PING_INTERVAL", "soon").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("ROOMCAST_PING_INTERVAL"), "{stderr}");
}

#[test]
fn token_prints_a_token_the_node_accepts() {
    let out = roomcast()
        .env("ROOMCAST_JWT_SECRET", crate::common::SECRET)
        .args(["token", "--sub", "u1", "--org", "o1", "--ttl", "5m"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let verifier =
        roomcast_gateway::auth::TokenVerifier::new(&roomcast_gateway::Config::with_secret(crate::common::SECRET).jwt)
            .unwrap();
    let claims = verifier.verify_connection(token.trim()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.org.as_deref()), ("u1", Some("o1")));
}
