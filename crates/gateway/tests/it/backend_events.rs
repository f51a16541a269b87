//! What the backend hears back: `user_online` / `user_offline` (with the offline grace),
//! `subscribed` / `unsubscribed`, reported `emit`s and coalesced `delivered` receipts, through
//! a real webhook that fails its first answers (every event arrives once or more, signed) and
//! through the Redis Stream read with a consumer group (also across a backend restart); and a
//! node killed with SIGKILL: its users `leave` once and go offline once, within the ttl.

use std::time::{Duration, Instant};

use roomcast_gateway::config::RoomPrefixes;
use roomcast_publisher::{Publisher, Target};
use roomcast_testkit::{RedisServer, eventually};
use serde_json::{Value, json};

use crate::common::{NodeProcess, TestGateway};
use crate::webhook_sink::WebhookSink;

const HOOK_SECRET: &str = "hook-secret";

/// Every event in the Redis stream, oldest first.
fn stream(redis: &RedisServer) -> Vec<Value> {
    let mut c = redis.connection().unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("roomcast:events").arg("-").arg("+").query(&mut c).unwrap_or_default();
    entries
        .into_iter()
        .filter_map(|(_, fields)| fields.into_iter().find(|(k, _)| k == "event"))
        .map(|(_, json)| serde_json::from_str(&json).unwrap())
        .collect()
}

/// Polls the stream until `check` holds of its events; on timeout, fails showing them.
async fn stream_shows(redis: &RedisServer, what: &str, check: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + roomcast_testkit::PATIENCE;
    loop {
        let events = stream(redis);
        if check(&events) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the stream holds {events:?}; presence keys: {}",
            presence_keys(redis)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The online-status keys in Redis, for a failure message.
fn presence_keys(redis: &RedisServer) -> String {
    let mut c = redis.connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("{roomcast:events}*").query(&mut c).unwrap_or_default();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut c).unwrap_or_default();
        let value: Vec<String> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut c).unwrap_or_default(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query(&mut c).unwrap_or_default(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut c).unwrap_or_default(),
            _ => Vec::new(),
        };
        out.push(format!("{key} ({kind}) {value:?}"));
    }
    out.join("; ")
}

fn count(events: &[Value], kind: &str, user: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind && e["user"] == user).count()
}

fn position(events: &[Value], kind: &str, user: &str) -> Option<usize> {
    events.iter().position(|e| e["type"] == kind && e["user"] == user)
}

#[tokio::test]
async fn a_failing_webhook_gets_every_event_signed_once_or_more_in_order_per_user() {
    let sink = WebhookSink::start(3, HOOK_SECRET).await;
    let url = sink.url();
    let gw = TestGateway::start_with(move |c| {
        c.presence.offline_grace = Duration::from_millis(200);
        c.events.subscription_rooms = RoomPrefixes::new(vec!["dialog:".into()]);
        c.events.reported_emits = vec!["messages:read".into()];
        c.events.webhook_url = Some(url);
        c.events.webhook_secret = Some(HOOK_SECRET.into());
        c.events.webhook_batch = 2;
    })
    .await;
    gw.add_members("dialog:w", &["u1", "u2"]).await;
    let mut u1 = gw.connect("u1", None).await;
    let mut u2 = gw.connect("u2", None).await;
    u1.subscribe("dialog:w").await;
    u2.subscribe("dialog:w").await;
    let reply = u1
        .request(json!({"type": "emit", "id": 3, "room": "dialog:w", "event": "messages:read", "data": {"upTo": 3}}))
        .await;
    assert_eq!(reply["type"], "ok", "{reply}");
    // Reported, not relayed: it is not in emit_events.
    u2.roundtrip().await;
    // Connections that come and go within one presence flush (20 ms) are never written: the
    // events below need these to be seen first.
    eventually("both users subscribed", async || {
        let got = sink.events();
        count(&got, "subscribed", "u1") == 1 && count(&got, "subscribed", "u2") == 1
    })
    .await;
    drop((u1, u2));

    let expected = [
        ("user_online", "u1"),
        ("user_online", "u2"),
        ("subscribed", "u1"),
        ("subscribed", "u2"),
        ("emit", "u1"),
        ("unsubscribed", "u1"),
        ("unsubscribed", "u2"),
        ("user_offline", "u1"),
        ("user_offline", "u2"),
    ];
    eventually("every event at the webhook", async || {
        let got = sink.events();
        expected.iter().all(|(kind, user)| count(&got, kind, user) >= 1)
    })
    .await;
    let got = sink.events();
    assert_eq!(sink.refused(), 3);
    assert!(sink.all_signed(), "every POST taken carries a valid signature");
    assert!(got.iter().all(|e| e["id"].is_string()), "{got:?}");
    for user in ["u1", "u2"] {
        assert!(position(&got, "user_online", user) < position(&got, "user_offline", user), "{got:?}");
    }
    let emit = &got[position(&got, "emit", "u1").unwrap()];
    assert_eq!((emit["event"].as_str(), emit["room"].as_str()), (Some("messages:read"), Some("dialog:w")));
    assert_eq!(emit["data"], json!({"upTo": 3}));
    assert_eq!(gw.metric(r#"roomcast_webhook_posts_total{result="failed"}"#).await, 3.0);
}

#[tokio::test]
async fn receipts_in_one_window_are_one_delivered_with_the_message_ids() {
    let sink = WebhookSink::start(0, HOOK_SECRET).await;
    let url = sink.url();
    let gw = TestGateway::start_with(move |c| {
        c.events.receipt_rooms = RoomPrefixes::new(vec!["dialog:".into()]);
        c.events.receipt_window = Duration::from_millis(300);
        c.events.webhook_url = Some(url);
        c.events.webhook_secret = Some(HOOK_SECRET.into());
    })
    .await;
    gw.add_members("dialog:r", &["u1"]).await;
    let mut u1 = gw.connect("u1", None).await;
    u1.subscribe("dialog:r").await;
    for n in 1..=10 {
        gw.publish(json!({"room": "dialog:r", "event": "message:new", "data": {"n": n}, "id": format!("m{n}")})).await;
    }
    for n in 1..=10u64 {
        assert_eq!(u1.recv().await["offset"], n);
        u1.send(json!({"type": "ack", "room": "dialog:r", "offset": n})).await;
    }
    let past = u1.request(json!({"type": "ack", "id": 5, "room": "dialog:r", "offset": 11})).await;
    assert_eq!(past["code"], "bad_request", "{past}");
    let elsewhere = u1.request(json!({"type": "ack", "id": 6, "room": "user:u1", "offset": 0})).await;
    assert_eq!(elsewhere["code"], "bad_request", "not a receipt room: {elsewhere}");
    eventually("the receipt of offset 10", async || {
        sink.events().iter().any(|e| e["type"] == "delivered" && e["offset"] == 10)
    })
    .await;
    let receipts: Vec<Value> = sink.events().into_iter().filter(|e| e["type"] == "delivered").collect();
    // Ten acks sent within one window, give or take its edge.
    assert!(receipts.len() <= 2, "{receipts:?}");
    let ids: Vec<&str> = receipts.iter().flat_map(|r| r["ids"].as_array().unwrap()).filter_map(Value::as_str).collect();
    assert_eq!(ids, (1..=10).map(|n| format!("m{n}")).collect::<Vec<_>>());
    assert!(receipts.iter().all(|r| r["user"] == "u1" && r["room"] == "dialog:r"));
}

/// The ack bound is what this connection was sent, recovered events included (a client that
/// reconnected to a node where the room had no live event yet acks what it recovered), in the
/// connection's epoch.
#[tokio::test]
async fn recovered_events_can_be_acked_and_an_ack_of_another_epoch_is_refused() {
    let sink = WebhookSink::start(0, HOOK_SECRET).await;
    let url = sink.url();
    let gw = TestGateway::start_with(move |c| {
        c.events.receipt_rooms = RoomPrefixes::new(vec!["dialog:".into()]);
        c.events.receipt_window = Duration::from_millis(100);
        c.events.webhook_url = Some(url);
        c.events.webhook_secret = Some(HOOK_SECRET.into());
    })
    .await;
    gw.add_members("dialog:rr", &["u1"]).await;
    let mut u1 = gw.connect("u1", None).await;
    let ok = u1.subscribe("dialog:rr").await;
    let epoch = ok["epoch"].as_str().unwrap().to_owned();
    drop(u1);
    for n in 1..=3 {
        gw.publish(json!({"room": "dialog:rr", "event": "message:new", "id": format!("r{n}")})).await;
    }
    let mut back = gw.connect("u1", None).await;
    let reply = back.subscribe_since("dialog:rr", 0, &epoch).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    for n in 1..=3u64 {
        assert_eq!(back.recv().await["offset"], n);
    }
    let ack = back.request(json!({"type": "ack", "id": 1, "room": "dialog:rr", "offset": 3, "epoch": epoch})).await;
    assert_eq!(ack["type"], "ok", "an ack of recovered events: {ack}");
    let stale = back.request(json!({"type": "ack", "id": 2, "room": "dialog:rr", "offset": 1, "epoch": "old"})).await;
    assert_eq!(stale["code"], "bad_request", "{stale}");
    let other = back.request(json!({"type": "ack", "id": 3, "room": "dialog:nope", "offset": 1})).await;
    assert_eq!(other["code"], "forbidden", "{other}");
    eventually("the receipt of the recovered events", async || {
        sink.events().iter().any(|e| e["type"] == "delivered" && e["offset"] == 3 && e["user"] == "u1")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_to_another_node_within_the_grace_is_no_offline() {
    let redis = RedisServer::start();
    let setup = |id: &'static str| {
        move |c: &mut roomcast_gateway::Config| {
            c.node_id = id.into();
            c.presence.offline_grace = Duration::from_secs(1);
            c.events.stream = true;
        }
    };
    let a = TestGateway::on_redis(&redis, setup("a")).await;
    let b = TestGateway::on_redis(&redis, setup("b")).await;
    let first = a.connect("u5", None).await;
    eventually("u5 online", async || count(&stream(&redis), "user_online", "u5") == 1).await;
    drop(first);
    let _back = b.connect("u5", None).await;
    // A later user's whole grace period passes after u5's would have.
    let u6 = a.connect("u6", None).await;
    eventually("u6 online", async || count(&stream(&redis), "user_online", "u6") == 1).await;
    drop(u6);
    eventually("u6 offline", async || count(&stream(&redis), "user_offline", "u6") == 1).await;
    let events = stream(&redis);
    assert_eq!(count(&events, "user_offline", "u5"), 0, "{events:?}");
    assert_eq!(count(&events, "user_online", "u5"), 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reading_the_stream_with_a_consumer_group_misses_nothing_across_its_restart() {
    let redis = RedisServer::start();
    let gw = TestGateway::on_redis(&redis, |c| {
        c.presence.offline_grace = Duration::from_millis(200);
        c.events.stream = true;
    })
    .await;
    let backend = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    backend.create_event_group("backend", "0").await.unwrap();
    let u7 = gw.connect("u7", None).await;
    let mut read = Vec::new();
    eventually("the backend reads u7 online", async || {
        read.extend(backend.read_event_group("backend", "worker", 10, false).await.unwrap());
        !read.is_empty()
    })
    .await;
    // The backend dies before it acknowledges; meanwhile more happens.
    drop(backend);
    drop(u7);
    let _u8 = gw.connect("u8", None).await;
    stream_shows(&redis, "u7 offline and u8 online", |events| {
        count(events, "user_offline", "u7") == 1 && count(events, "user_online", "u8") == 1
    })
    .await;
    let restarted = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let pending = restarted.read_event_group("backend", "worker", 10, true).await.unwrap();
    assert_eq!(pending.iter().map(|e| &e.id).collect::<Vec<_>>(), read.iter().map(|e| &e.id).collect::<Vec<_>>());
    let ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
    assert_eq!(restarted.ack_events("backend", &ids).await.unwrap(), ids.len() as u64);
    let new = restarted.read_event_group("backend", "worker", 10, false).await.unwrap();
    let all: Vec<Value> = pending.iter().chain(&new).map(|e| serde_json::from_str(&e.json).unwrap()).collect();
    for (kind, user) in [("user_online", "u7"), ("user_offline", "u7"), ("user_online", "u8")] {
        assert_eq!(count(&all, kind, user), 1, "{kind} {user}: {all:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_leaves_its_rooms_once_and_its_users_go_offline_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let node = |id: &str| {
        NodeProcess::start(&[
            ("ROOMCAST_REDIS_URL", &url),
            ("ROOMCAST_NODE_ID", id),
            ("ROOMCAST_PRESENCE_TTL", "2s"),
            ("ROOMCAST_OFFLINE_GRACE", "1s"),
            ("ROOMCAST_EVENTS_STREAM", "true"),
            ("ROOMCAST_SUBSCRIPTION_EVENTS", "dialog:"),
        ])
    };
    let (a, b, mut c) = (node("a"), node("b"), node("c"));
    a.gateway.add_members("dialog:k", &["u1", "u2", "u3", "u4"]).await;
    let mut u1 = a.gateway.connect("u1", None).await;
    let reply = u1.request(json!({"type": "subscribe", "id": 1, "room": "dialog:k", "presence": true})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let mut u2 = b.gateway.connect("u2", None).await;
    u2.subscribe("dialog:k").await;
    let mut u3 = c.gateway.connect("u3", None).await;
    u3.subscribe("dialog:k").await;
    let mut joined = vec![u1.recv().await, u1.recv().await];
    joined.sort_by_key(|f| f["user"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        joined,
        [json!({"type":"join","room":"dialog:k","user":"u2"}), json!({"type":"join","room":"dialog:k","user":"u3"})]
    );
    // Each node writes its presence in batches: u1's own entry may come after the others' joins.
    eventually("all three users in the room's presence", async || {
        let (_, presence) = b.gateway.api("presence", &json!({"room": "dialog:k"})).await;
        presence["users"].as_object().map(|u| u.len()) == Some(3)
    })
    .await;
    let (status, info) = a.gateway.get("/api/info").await;
    assert_eq!(status, 401, "{info}");

    c.kill();
    let killed = Instant::now();
    assert_eq!(u1.recv().await, json!({"type": "leave", "room": "dialog:k", "user": "u3"}));
    let took = killed.elapsed();
    // The ttl, the sweep interval and a flush: the configured bound plus one sweep.
    assert!(took < Duration::from_secs(2 + 1 + 1), "the leave took {took:?}");
    eventually("u3 offline", async || count(&stream(&redis), "user_offline", "u3") == 1).await;

    // Whatever comes later comes after the one leave and the one offline.
    let mut u4 = a.gateway.connect("u4", None).await;
    u4.subscribe("dialog:k").await;
    assert_eq!(u1.recv().await, json!({"type": "join", "room": "dialog:k", "user": "u4"}), "no second leave of u3");
    eventually("u4 online", async || count(&stream(&redis), "user_online", "u4") == 1).await;
    let events = stream(&redis);
    assert_eq!(count(&events, "user_offline", "u3"), 1, "{events:?}");
    assert_eq!(count(&events, "unsubscribed", "u3"), 1, "{events:?}");
    assert_eq!(count(&events, "user_offline", "u1") + count(&events, "user_offline", "u2"), 0, "{events:?}");
    let (_, presence) = a.gateway.api("presence", &json!({"room": "dialog:k"})).await;
    let users: Vec<&String> = presence["users"].as_object().unwrap().keys().collect();
    assert_eq!(users, ["u1", "u2", "u4"], "{presence}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_the_webhook_is_relayed_from_the_stream_by_one_node_through_failures() {
    let redis = RedisServer::start();
    let sink = WebhookSink::start(2, HOOK_SECRET).await;
    let setup = |id: &'static str, url: String| {
        move |c: &mut roomcast_gateway::Config| {
            c.node_id = id.into();
            c.presence.offline_grace = Duration::from_millis(200);
            c.events.webhook_url = Some(url);
            c.events.webhook_secret = Some(HOOK_SECRET.into());
        }
    };
    let a = TestGateway::on_redis(&redis, setup("a", sink.url())).await;
    let b = TestGateway::on_redis(&redis, setup("b", sink.url())).await;
    let users = ["w1", "w2", "w3", "w4"];
    for (i, user) in users.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let client = node.connect(user, None).await;
        // Connections that come and go within one presence flush (20 ms) are never written.
        eventually("the user online", async || {
            node.api("online", &json!({"users": [user]})).await.1["users"][user]["online"] == true
        })
        .await;
        drop(client);
    }
    eventually("every user online then offline at the webhook", async || {
        let got = sink.events();
        users.iter().all(|u| count(&got, "user_online", u) >= 1 && count(&got, "user_offline", u) >= 1)
    })
    .await;
    let got = sink.events();
    assert_eq!(sink.refused(), 2);
    assert!(sink.all_signed());
    for user in users {
        assert!(position(&got, "user_online", user) < position(&got, "user_offline", user), "{got:?}");
    }
    let failed = a.metric(r#"roomcast_webhook_posts_total{result="failed"}"#).await
        + b.metric(r#"roomcast_webhook_posts_total{result="failed"}"#).await;
    assert_eq!(failed, 2.0, "one relay posts at a time");
}
