//! Property: four publishers at full speed while twenty clients come and go at random moments,
//! each time on a random node, resubscribing with `since`. Every client must see one
//! contiguous, duplicate-free offset sequence from its first position to the last event
//! published: recovered history and live events meet with no gap and no overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{TestClient, TestGateway};
use rand::Rng;
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::{Event, Publisher, Retention, Target};
use roomcast_testkit::RedisServer;
use serde_json::{Value, json};
use tokio::sync::watch;

const ROOM: &str = "dialog:load";
const CLIENTS: usize = 20;
const PUBLISHERS: usize = 4;
/// How long the publishers run (clients reconnect at random moments meanwhile), unless
/// `ROOMCAST_SOAK_SECS` asks for a longer soak.
fn publishing() -> Duration {
    let secs = std::env::var("ROOMCAST_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    Duration::from_secs(secs)
}
/// Large enough that a client away for a while can always be recovered: this test is about
/// ordering, not about trimming (`recovery.rs` covers that).
const HISTORY: usize = 200_000;

/// What one client checked.
#[derive(Debug, Default)]
struct Seen {
    /// The client's subscribe replies, shown when the property fails.
    replies: Vec<String>,
    events: u64,
    recoveries: u64,
    recovered_events: u64,
    /// Closes with 4008: on a starved machine a client can fall behind four unpaced publishers;
    /// like any client it then reconnects and recovers with `since`.
    slow_closes: u64,
}

/// How a stretch of following ended.
enum Followed {
    /// Up to the last offset published.
    ToTheEnd,
    /// The client drops its connection here (at random), or the node closed it as too slow.
    Reconnect,
}

/// Reads events, asserting each is the next offset, until a random number were read (while
/// publishing goes on) or up to the last offset (once it is known).
async fn follow(
    client: &mut TestClient,
    next: &mut u64,
    epoch: &str,
    last: &mut watch::Receiver<Option<u64>>,
    seen: &mut Seen,
) -> Followed {
    let mut quota = rand::rng().random_range(0..400u32);
    loop {
        let finished = *last.borrow();
        match finished {
            Some(last) if *next > last => return Followed::ToTheEnd,
            None if quota == 0 => return Followed::Reconnect,
            _ => {}
        }
        quota = quota.saturating_sub(1);
        let e = tokio::select! {
            e = client.recv_or_close() => match e {
                Ok(e) => e,
                Err(4008) => {
                    seen.slow_closes += 1;
                    return Followed::Reconnect;
                }
                Err(code) => panic!("closed with {code}; subscribe replies so far: {:?}", seen.replies),
            },
            // Publishing ended while waiting: the next event may never come.
            _ = last.changed() => continue,
        };
        assert_eq!(e["type"], "event", "{e}");
        assert_eq!(e["epoch"], epoch, "{e}");
        let offset = e["offset"].as_u64().unwrap();
        assert_eq!(
            offset, *next,
            "offsets must be contiguous and unique; subscribe replies so far: {:?}",
            seen.replies
        );
        *next += 1;
        seen.events += 1;
    }
}

/// Connects to a random node and subscribes (with `since` when given); `None` when the node
/// closed the connection as too slow before the reply could be read (the backlog sent after
/// it overflowed the send queue of a starved client), which the caller retries like a drop.
async fn subscribe(
    nodes: &[TestGateway],
    user: &str,
    since: Option<(u64, &str)>,
    seen: &mut Seen,
) -> Option<(TestClient, Value)> {
    let node = &nodes[rand::rng().random_range(0..nodes.len())];
    let mut c = node.connect(user, None).await;
    let mut command = json!({"type": "subscribe", "id": 1, "room": ROOM});
    if let Some((offset, epoch)) = since {
        command["since"] = json!({"offset": offset, "epoch": epoch});
    }
    c.send(command).await;
    match c.recv_or_close().await {
        Ok(ok) => {
            assert_eq!(ok["type"], "ok", "{ok}");
            Some((c, ok))
        }
        Err(4008) => {
            seen.slow_closes += 1;
            None
        }
        Err(code) => panic!("closed with {code}; subscribe replies so far: {:?}", seen.replies),
    }
}

async fn client(nodes: Arc<Vec<TestGateway>>, user: String, mut last: watch::Receiver<Option<u64>>) -> Seen {
    let mut seen = Seen::default();
    let pause = || Duration::from_millis(rand::rng().random_range(0..300));
    tokio::time::sleep(pause()).await;
    let (mut c, ok) = loop {
        if let Some(joined) = subscribe(&nodes, &user, None, &mut seen).await {
            break joined;
        }
    };
    seen.replies.push(format!("first {ok}"));
    let epoch = ok["epoch"].as_str().unwrap().to_owned();
    let mut next = ok["offset"].as_u64().unwrap() + 1;
    loop {
        if let Followed::ToTheEnd = follow(&mut c, &mut next, &epoch, &mut last, &mut seen).await {
            return seen;
        }
        drop(c);
        tokio::time::sleep(pause()).await;
        let (again, ok) = loop {
            if let Some(joined) = subscribe(&nodes, &user, Some((next - 1, &epoch)), &mut seen).await {
                break joined;
            }
        };
        c = again;
        seen.replies.push(format!("since {} {ok}", next - 1));
        assert_eq!(ok["recovered"], true, "{ok}");
        let behind = ok["offset"].as_u64().unwrap() + 1 - next;
        seen.recoveries += 1;
        seen.recovered_events += behind;
    }
}

/// Runs the property against `nodes`, publishing through `publish` (which returns the offset).
async fn run<F, Fut>(nodes: Vec<TestGateway>, publish: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = u64> + Send,
{
    let nodes = Arc::new(nodes);
    let users: Vec<String> = (0..CLIENTS).map(|i| format!("u{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    nodes[0].add_members(ROOM, &names).await;
    let (finish, last) = watch::channel(None);
    let clients: Vec<_> =
        users.iter().map(|u| tokio::spawn(client(Arc::clone(&nodes), u.clone(), last.clone()))).collect();

    let highest = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + publishing();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (publish, highest) = (publish.clone(), Arc::clone(&highest));
            tokio::spawn(async move {
                let mut n = 0u64;
                while tokio::time::Instant::now() < deadline {
                    let offset = publish(format!("p{p}-{n}")).await;
                    highest.fetch_max(offset, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let last_offset = highest.load(Ordering::Relaxed);
    finish.send(Some(last_offset)).unwrap();
    let mut totals = Seen::default();
    for c in clients {
        let seen = c.await.unwrap();
        totals.events += seen.events;
        totals.recoveries += seen.recoveries;
        totals.recovered_events += seen.recovered_events;
        totals.slow_closes += seen.slow_closes;
    }
    // The property only means something if it was exercised hard.
    assert!(last_offset >= 300, "only {last_offset} events were published");
    assert!(totals.recoveries >= CLIENTS as u64, "{totals:?}");
    assert!(totals.recovered_events > 0, "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_nodes_concurrent_publishers_and_random_resubscribes() {
    let redis = RedisServer::start();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let url = redis.url();
        nodes.push(
            TestGateway::start_with(move |c| {
                c.broker = BrokerConfig::Redis(url);
                c.node_id = name.to_owned();
                c.retention.history_size = HISTORY;
            })
            .await,
        );
    }
    let retention = Retention { history_size: HISTORY, ..Retention::default() };
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap().with_retention(retention);
    run(nodes, move |id| {
        let publisher = publisher.clone();
        async move {
            let event = Event::new(ROOM, "message:new", &json!({"id": id}));
            publisher.publish(event).await.unwrap().offset
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_concurrent_publishers_and_random_resubscribes() {
    let gw = TestGateway::start_with(|c| c.retention.history_size = HISTORY).await;
    let addr = gw.addr;
    run(vec![gw], move |id| async move {
        let api = TestGateway::attach(addr);
        let reply = api.publish(json!({"room": ROOM, "event": "message:new", "data": {"id": id}})).await;
        reply["offset"].as_u64().unwrap()
    })
    .await;
}
