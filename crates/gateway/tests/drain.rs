//! The real binary: SIGTERM closes every client with 1012 over the drain window and exits 0;
//! a bad configuration stops start-up with one line naming the setting.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestGateway;

fn roomcast() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomcast"));
    cmd.env_clear().env("ROOMCAST_LOG", "info");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_1012_and_exits() {
    let mut child = roomcast()
        .env("ROOMCAST_LISTEN", "127.0.0.1:0")
        .env("ROOMCAST_JWT_SECRET", common::SECRET)
        .env("ROOMCAST_DRAIN_WINDOW", "1s")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the node logs its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining the log so the node never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let gw = TestGateway::attach(addr);
    let mut clients = Vec::new();
    for user in ["a", "b", "c"] {
        clients.push(gw.connect(user, None).await);
    }
    let start = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    for c in &mut clients {
        assert_eq!(c.recv_close().await.0, 1012);
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(15));
    let log = log.join().unwrap();
    assert_eq!(
        log.iter().filter(|l| l.contains("reason=\"shutdown\"") || l.contains("reason=shutdown")).count(),
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
        .env("ROOMCAST_JWT_SECRET", common::SECRET)
        .args(["token", "--sub", "u1", "--org", "o1", "--ttl", "5m"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let verifier =
        roomcast_gateway::auth::TokenVerifier::new(&roomcast_gateway::Config::with_secret(common::SECRET).jwt).unwrap();
    let claims = verifier.verify_connection(token.trim()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.org.as_deref()), ("u1", Some("o1")));
}
