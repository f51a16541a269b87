//! Redis ACL users and credentials with real processes: a `roomcast` node and the publisher
//! crate run under exactly the least-privilege users that docs/operations.md gives (read from
//! it), Redis's `ACL LOG` records no refusal, and neither password shows up in the node's log,
//! run at trace level.

use roomcast_publisher::{Event, Publisher, RedisOptions, Target};
use roomcast_testkit::{RedisServer, eventually};
use serde_json::json;

use crate::common::NodeProcess;

const NODE_PASSWORD: &str = "node-pw-5d1c8e77a0";
const PUBLISHER_PASSWORD: &str = "publisher-pw-93b0f1e2c4";

/// The `ACL SETUSER` line under `<!-- acl:NAME -->` in docs/operations.md.
fn documented_acl(name: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(crate::ops::repo().join("docs/operations.md")).unwrap();
    let marker = format!("<!-- acl:{name} -->");
    let after = doc.split_once(&marker).unwrap_or_else(|| panic!("no {marker} in docs/operations.md")).1;
    let line = after.lines().find(|l| l.starts_with("ACL SETUSER")).expect("an ACL SETUSER line");
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

const ADMIN_PASSWORD: &str = "admin-pw-0c7e";

/// Creates the documented users and an `admin`, then turns the `default` user off: nothing
/// gets in without its own user's password.
fn users(redis: &RedisServer) -> redis::Connection {
    let mut default = redis.connection().unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "admin", "on", &format!(">{ADMIN_PASSWORD}"), "~*", "&*", "+@all"][..])
        .query(&mut default)
        .unwrap();
    for (name, password) in [("node", NODE_PASSWORD), ("publisher", PUBLISHER_PASSWORD)] {
        let mut cmd = redis::cmd("ACL");
        for word in documented_acl(name) {
            cmd.arg(if word.starts_with('>') { format!(">{password}") } else { word });
        }
        let _: () = cmd.query(&mut default).unwrap();
    }
    let _: () = redis::cmd("ACL").arg(&["SETUSER", "default", "off"][..]).query(&mut default).unwrap();
    let admin = format!("redis://admin:{ADMIN_PASSWORD}@127.0.0.1:{}", redis.port);
    redis::Client::open(admin).unwrap().get_connection().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_and_the_publisher_work_under_the_documented_acl_users_and_log_no_password() {
    let redis = RedisServer::start();
    let mut admin = users(&redis);
    let port = redis.port.to_string();
    let url = format!("redis://127.0.0.1:{port}");
    let node = NodeProcess::start(&[
        ("ROOMCAST_REDIS_URL", url.as_str()),
        ("ROOMCAST_REDIS_USERNAME", "roomcast-node"),
        ("ROOMCAST_REDIS_PASSWORD", NODE_PASSWORD),
        ("ROOMCAST_REDIS_PREFIX", "rc:"),
        ("ROOMCAST_PRESENCE_ROOMS", "dialog:"),
        ("ROOMCAST_LOG", "trace"),
    ]);
    let gw = &node.gateway;

    // The backend's side through the crate, with the password in the URL this time.
    let publisher_url = format!("redis://roomcast-publisher:{PUBLISHER_PASSWORD}@127.0.0.1:{port}");
    let publisher = Publisher::connect_with_options(Target::Redis(publisher_url), &RedisOptions::default(), "rc:", "")
        .await
        .unwrap();
    publisher.update_members("dialog:acl", &["u1", "u2"], &[]).await.unwrap();

    let mut u1 = gw.connect("u1", None).await;
    let ok = u1.request(json!({"type": "subscribe", "id": 1, "room": "dialog:acl", "presence": true})).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let first = publisher.publish(Event::new("dialog:acl", "message:new", &json!({"n": 1})).id("m-1")).await.unwrap();
    assert_eq!(u1.recv().await["offset"], first.offset);
    let through_api = gw.publish(json!({"room": "dialog:acl", "event": "message:new", "data": {"n": 2}})).await;
    assert_eq!(u1.recv().await["offset"], through_api["offset"]);
    publisher.emit(&"dialog:acl".parse().unwrap(), "typing:start", b"{}", "u2").await.unwrap();
    assert_eq!(u1.recv().await["event"], "typing:start");

    // A second client recovers from history, checked against the member set.
    let mut u2 = gw.connect("u2", None).await;
    let since = u2.subscribe_since("dialog:acl", 0, first.epoch.as_str()).await;
    assert_eq!(since["recovered"], true, "{since}");
    let (a, b) = (u2.recv().await, u2.recv().await);
    assert_eq!((a["offset"].as_u64(), b["offset"].as_u64()), (Some(1), Some(2)));
    // History pages, through the node's API and the crate (XREVRANGE without `since`).
    let (status, page) = gw.api("history", &json!({"room": "dialog:acl"})).await;
    assert_eq!((status, page["events"].as_array().map(Vec::len)), (200, Some(2)), "{page}");
    let room = "dialog:acl".parse().unwrap();
    assert_eq!(publisher.history_page(&room, None, 10).await.unwrap().events.len(), 2);
    eventually("u1 online", async || publisher.online(&["u1"]).await.is_ok_and(|s| s[0].connections == 1)).await;
    eventually("u1 and u2 present in the room", async || {
        publisher.presence("dialog:acl").await.is_ok_and(|p| p.contains_key("u1") && p.contains_key("u2"))
    })
    .await;
    publisher.update_members("dialog:acl", &[], &["u2"]).await.unwrap();
    assert_eq!(u2.recv().await["type"], "left");
    assert_eq!(publisher.disconnect_user("u1", 4000).await.unwrap(), 1);

    let refusals: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    assert!(refusals.is_empty(), "Redis refused something to the documented users: {refusals:#?}");
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(clients.lines().filter(|l| l.contains("user=roomcast-node")).count() >= 2, "{clients}");
    // And the users are really confined: nothing outside the prefix, no subscribing publisher.
    let mut dry = |user: &str, args: &[&str]| -> String {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DRYRUN").arg(user).arg(args);
        cmd.query::<String>(&mut admin).unwrap_or_else(|e| e.to_string())
    };
    assert_ne!(dry("roomcast-node", &["GET", "other:key"]), "OK");
    assert_ne!(dry("roomcast-node", &["FLUSHALL"]), "OK");
    assert_ne!(dry("roomcast-publisher", &["SUBSCRIBE", "rc:dialog:acl"]), "OK");
    assert_eq!(dry("roomcast-publisher", &["PUBLISH", "rc:dialog:acl", "x"]), "OK");

    eventually("u1's close in the log", async || node.log().iter().any(|l| l.contains("connection closed"))).await;
    let log = node.log().join("\n");
    for secret in [NODE_PASSWORD, PUBLISHER_PASSWORD] {
        assert!(!log.contains(secret), "a Redis password is in the node's log");
    }
}

#[test]
fn a_wrong_password_stops_start_up_naming_the_password_setting() {
    let redis = RedisServer::start();
    let _admin = users(&redis);
    let mut node = crate::common::roomcast()
        .env("ROOMCAST_JWT_SECRET", "s")
        .env("ROOMCAST_LISTEN", "127.0.0.1:0")
        .env("ROOMCAST_REDIS_URL", redis.url())
        .env("ROOMCAST_REDIS_PREFIX", "rc:")
        .env("ROOMCAST_REDIS_USERNAME", "roomcast-node")
        .env("ROOMCAST_REDIS_PASSWORD", "not-the-password-61f0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + roomcast_testkit::PATIENCE;
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = node.kill();
            panic!("the node started with a wrong password");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ROOMCAST_REDIS_PASSWORD"), "{stderr}");
    assert!(!stderr.contains("not-the-password-61f0"), "{stderr}");
}
