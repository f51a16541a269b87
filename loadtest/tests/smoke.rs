//! Smoke test: tiny runs of every single-node scenario against an in-process roomcast node.

use std::sync::Arc;

use roomcast_gateway::config::BrokerConfig;
use roomcast_gateway::{Config, Server};
use roomcast_loadtest::scenario::broadcast::BroadcastParams;
use roomcast_loadtest::scenario::capacity::CapacityParams;
use roomcast_loadtest::scenario::chat::ChatParams;
use roomcast_loadtest::scenario::churn::ChurnParams;
use roomcast_loadtest::scenario::connect::ConnectParams;
use roomcast_loadtest::scenario::cycles::CyclesParams;
use roomcast_loadtest::scenario::idle::IdleParams;
use roomcast_loadtest::suite::{Run, run_one};
use roomcast_loadtest::target::{Node, Protocol, Target};

/// An in-process node on a free port, on `redis` or on the embedded broker.
async fn start(redis: Option<String>) -> Node {
    let mut config = Config::with_secret("smoke");
    config.api_key = Some("key".into());
    if let Some(url) = redis {
        config.broker = BrokerConfig::Redis(url);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(config).await.unwrap();
    let _node = Arc::clone(server.node());
    tokio::spawn(server.serve(listener, std::future::pending()));
    Node { addr, pid: Some(std::process::id()) }
}

async fn node() -> Target {
    let single = start(None).await;
    Target {
        name: "roomcast".into(),
        protocol: Protocol::Roomcast,
        secret: "smoke".into(),
        api_key: Some("key".into()),
        es256_key: None,
        single,
        cluster: vec![],
        es256: None,
        redis_pid: None,
        redis_addr: None,
    }
}

fn figure(results: &[roomcast_loadtest::report::ScenarioResult], name: &str) -> f64 {
    results[0].value(name).unwrap_or_else(|| panic!("no figure {name:?} in {results:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_a_real_node_without_losses() {
    let target = node().await;

    let run = Run::Broadcast(BroadcastParams {
        subscribers: 20,
        publishes: 10,
        concurrency: 8,
        ..BroadcastParams::default()
    });
    let r = run_one(&run, &target).await.unwrap();
    assert_eq!(figure(&r, "lost"), 0.0);
    assert_eq!(figure(&r, "duplicated"), 0.0);
    assert_eq!(r[0].latency.as_ref().unwrap().count, 200, "20 subscribers × 10 publishes: {r:?}");

    // Capacity steps 50, 100, 200/s and stops at the highest rate; a bound nothing meets stops
    // it after the first rate failed twice, with no capacity.
    let capacity = CapacityParams {
        subscribers: 20,
        start_rate: 50.0,
        factor: 2.0,
        max_rate: 200.0,
        step_secs: 0.5,
        concurrency: 8,
        ..CapacityParams::default()
    };
    let r = run_one(&Run::Capacity(capacity.clone()), &target).await.unwrap();
    assert_eq!(figure(&r, "capacity (publishes per second)"), 200.0, "{r:?}");
    assert_eq!(figure(&r, "deliveries per second at capacity"), 4000.0);
    assert_eq!(r[0].notes.len(), 3, "one line per step: {r:?}");
    let r = run_one(&Run::Capacity(CapacityParams { p99_limit_ms: 0.0001, ..capacity }), &target).await.unwrap();
    assert_eq!((figure(&r, "capacity (publishes per second)"), r[0].notes.len()), (0.0, 2), "{r:?}");

    let chat = ChatParams {
        users: 30,
        dialogs: 10,
        orgs: 2,
        rate: 200.0,
        duration_secs: 1,
        churn_rate: 20.0,
        publishers: 2,
        ..ChatParams::default()
    };
    let r = run_one(&Run::Chat(chat), &target).await.unwrap();
    assert_eq!((figure(&r, "lost"), figure(&r, "duplicated"), figure(&r, "publish errors")), (0.0, 0.0, 0.0));
    assert!(figure(&r, "deliveries per second") > 0.0);

    let r =
        run_one(&Run::Connect(ConnectParams { connections: 40, concurrency: 8, ..ConnectParams::default() }), &target)
            .await
            .unwrap();
    assert_eq!(figure(&r, "failed"), 0.0);
    assert_eq!(r[0].latency.as_ref().unwrap().count, 40);

    let r =
        run_one(&Run::Idle(IdleParams { steps: vec![10, 30], hold_secs: 0, concurrency: 8 }), &target).await.unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].value("connections held"), Some(30.0));

    // A slow reader in the room is not counted, and the others still get everything.
    let run = Run::Broadcast(BroadcastParams {
        subscribers: 10,
        publishes: 10,
        concurrency: 8,
        slow_readers: 1,
        ..BroadcastParams::default()
    });
    let r = run_one(&run, &target).await.unwrap();
    assert_eq!((figure(&r, "lost"), figure(&r, "expected deliveries")), (0.0, 100.0));

    let r = run_one(&Run::Cycles(CyclesParams { cycles: 200, warmup: 20, concurrency: 4, settle_secs: 0 }), &target)
        .await
        .unwrap();
    assert_eq!(figure(&r, "failed cycles"), 0.0);
    assert!(figure(&r, "RSS after warm-up") > 0.0);
}

/// Clients that drop their connections every second or so, reconnect and subscribe with
/// `since`: on one node every acknowledged message reaches every member once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_clients_recover_every_message() {
    let target = node().await;
    let churn = ChurnParams {
        users: 12,
        dialogs: 6,
        rate: 20.0,
        duration_secs: 4,
        drop_every_secs: 1.0,
        settle_secs: 3,
        ..ChurnParams::default()
    };
    let r = run_one(&Run::Churn(churn), &target).await.unwrap();
    assert!(figure(&r, "reconnects") >= 24.0, "the clients churned: {r:?}");
    assert_eq!(figure(&r, "messages acknowledged"), 80.0, "{r:?}");
    assert_eq!(figure(&r, "delivered / expected"), 100.0, "{r:?}");
    assert_eq!((figure(&r, "duplicates"), figure(&r, "reordered"), figure(&r, "recovered:false")), (0.0, 0.0, 0.0));
}

/// Two nodes on one real Redis: the cross-node figures include Redis' own cost per publish and
/// per subscribe, read from its command counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_chat_reports_what_redis_spent_per_publish_and_per_subscribe() {
    let redis = roomcast_testkit::RedisServer::start();
    let a = start(Some(redis.url())).await;
    let b = start(Some(redis.url())).await;
    let mut target = node().await;
    target.cluster = vec![a, b];
    target.redis_addr = Some(format!("127.0.0.1:{}", redis.client_port()).parse().unwrap());
    let chat = ChatParams {
        users: 20,
        dialogs: 8,
        orgs: 2,
        rate: 100.0,
        duration_secs: 1,
        churn_rate: 0.0,
        publishers: 1,
        ..ChatParams::default()
    };
    let r = run_one(&Run::CrossNode(chat), &target).await.unwrap();
    assert_eq!((figure(&r, "lost"), figure(&r, "duplicated")), (0.0, 0.0), "{r:?}");
    // A publish runs the publish script at least (a few µs on any machine), a subscribe reads
    // the room's position; neither can be free, and neither takes a millisecond.
    for name in ["Redis µs per publish", "Redis µs per subscribe", "Redis µs per script call"] {
        let us = figure(&r, name);
        assert!(us > 1.0 && us < 1000.0, "{name}: {us} µs");
    }
}
