//! Redis Sentinel with real processes: a master, a replica and three sentinels. Two nodes and
//! the publisher crate find the master through the sentinels; the master is killed with
//! SIGKILL while numbered events go to several rooms, and after the promotion every client
//! has every acknowledged event, or was told (`left: resubscribe`, then `recovered: false`).
//! Never silence, never an offset of one epoch delivered for two events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{TestClient, TestGateway};
use roomcast_gateway::config::BrokerConfig;
use roomcast_publisher::{Event, Publisher, RedisOptions, Target};
use roomcast_testkit::{PATIENCE, SENTINEL_MASTER, SentinelGroup, eventually};
use serde_json::json;

const ROOMS: [&str; 3] = ["dialog:s0", "dialog:s1", "dialog:s2"];
const EVENTS: usize = 240;
const USERS: [&str; 4] = ["u1", "u2", "u3", "u4"];

/// What one client saw, per room.
#[derive(Debug, Default)]
struct Seen {
    ids: HashMap<String, Vec<String>>,
    /// `recovered: false` answers: the app must reload the room.
    told: HashMap<String, usize>,
    /// (room, epoch, offset) → the id delivered there.
    positions: HashMap<(String, String, u64), String>,
}

/// Reads until it has an end marker (`end-*`, published after the numbered events until
/// every client has one) in every room, resubscribing with `since` whenever the node says
/// continuity was lost; then counts itself in `finished`.
async fn collect(mut c: TestClient, finished: Arc<AtomicUsize>) -> Seen {
    let mut seen = Seen::default();
    let mut at: HashMap<String, (u64, String)> = HashMap::new();
    loop {
        let ended = |seen: &Seen| {
            ROOMS.iter().all(|r| seen.ids.get(*r).is_some_and(|ids| ids.iter().any(|id| id.starts_with("end-"))))
        };
        if ended(&seen) {
            finished.fetch_add(1, Ordering::AcqRel);
            return seen;
        }
        let Ok(frame) = tokio::time::timeout(PATIENCE - Duration::from_secs(1), c.recv()).await else {
            let last: Vec<_> = seen.ids.iter().map(|(r, ids)| (r, ids.len(), ids.last())).collect();
            panic!("no frame for a while; last per room {last:?}, told {:?}", seen.told);
        };
        let room = frame["room"].as_str().unwrap_or_default().to_owned();
        match frame["type"].as_str() {
            Some("event") => {
                let id = frame["id"].as_str().unwrap().to_owned();
                let (offset, epoch) = (frame["offset"].as_u64().unwrap(), frame["epoch"].as_str().unwrap().to_owned());
                if let Some(other) = seen.positions.insert((room.clone(), epoch.clone(), offset), id.clone()) {
                    panic!("{room} {epoch}:{offset} delivered for {other} and again for {id}");
                }
                seen.ids.entry(room.clone()).or_default().push(id);
                at.insert(room, (offset, epoch));
            }
            Some("left") => {
                assert_eq!(frame["reason"], "resubscribe", "{frame}");
                let mut queue = std::collections::VecDeque::from([room]);
                while let Some(room) = queue.pop_front() {
                    resubscribe(&mut c, &room, &mut seen, &mut at, &mut queue).await;
                }
            }
            _ => {}
        }
    }
}

/// Resubscribes `room` with `since` its last position, until the node answers `ok` (Redis
/// may still be failing over). Events of other rooms that arrive meanwhile are kept, and their
/// `left`s queued.
async fn resubscribe(
    c: &mut TestClient,
    room: &str,
    seen: &mut Seen,
    at: &mut HashMap<String, (u64, String)>,
    queue: &mut std::collections::VecDeque<String>,
) {
    let (offset, epoch) = at.get(room).cloned().unwrap_or_default();
    let since = json!({"offset": offset, "epoch": epoch});
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    loop {
        c.send(json!({"type": "subscribe", "id": 9, "room": room, "since": since})).await;
        let reply = loop {
            let f = c.recv().await;
            let r = f["room"].as_str().unwrap_or_default().to_owned();
            match f["type"].as_str() {
                Some("ok" | "error") => break f,
                Some("event") => {
                    let id = f["id"].as_str().unwrap().to_owned();
                    let pos = (r.clone(), f["epoch"].as_str().unwrap().to_owned(), f["offset"].as_u64().unwrap());
                    at.insert(r.clone(), (pos.2, pos.1.clone()));
                    if let Some(other) = seen.positions.insert(pos, id.clone()) {
                        panic!("{r}: one offset delivered for {other} and for {id}");
                    }
                    seen.ids.entry(r).or_default().push(id);
                }
                Some("left") if !queue.contains(&r) && r != room => queue.push_back(r),
                _ => {}
            }
        };
        if reply["type"] == "ok" {
            if reply["recovered"] == false {
                *seen.told.entry(room.to_owned()).or_default() += 1;
            }
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "could not resubscribe: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the failover with `options` on the nodes and the crate; returns the acknowledged ids
/// per room and what each client saw.
/// With `lose_writes` the replica is stopped (SIGSTOP) and its link cut for the last
/// acknowledged events before the kill, so the promoted replica lacks them, as after a real asynchronous failover
/// under load.
async fn fail_over(
    options: RedisOptions,
    lose_writes: bool,
    restart_old_master: bool,
) -> (HashMap<String, Vec<String>>, Vec<Seen>) {
    let mut group = tokio::task::spawn_blocking(SentinelGroup::start).await.unwrap();
    let sentinels = group.seeds();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let (sentinels, options) = (sentinels.clone(), options.clone());
        nodes.push(
            TestGateway::start_with(move |c| {
                c.broker = BrokerConfig::Sentinel { sentinels, master: SENTINEL_MASTER.to_owned() };
                c.redis = options;
                c.node_id = name.to_owned();
            })
            .await,
        );
    }
    for room in ROOMS {
        nodes[0].add_members(room, &USERS).await;
    }
    let finished = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for (i, user) in USERS.iter().enumerate() {
        let mut c = nodes[i % 2].connect(user, None).await;
        for room in ROOMS {
            c.subscribe(room).await;
        }
        clients.push(tokio::spawn(collect(c, Arc::clone(&finished))));
    }

    let target = Target::Sentinel { sentinels, master: SENTINEL_MASTER.to_owned() };
    let publisher = Publisher::connect_with_options(target, &options, "", "").await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let marker_publisher = publisher.clone();
    let ghost_publisher = publisher.clone();
    let publishing = tokio::spawn(async move {
        let mut acked: HashMap<String, Vec<String>> = HashMap::new();
        for i in 0..EVENTS {
            let room = ROOMS[i % ROOMS.len()];
            let id = format!("m-{i}");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
            // A failed publish is retried with the same id: at most once in the room.
            while let Err(e) = publisher.publish(Event::new(room, "message:new", &json!({"i": i})).id(&id)).await {
                assert!(e.is_retryable(), "{e}");
                assert!(tokio::time::Instant::now() < deadline, "no master came back: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acked.entry(room.to_owned()).or_default().push(id);
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acked
    });

    eventually("the first events to be acknowledged", async || count.load(Ordering::Relaxed) >= 60).await;
    if lose_writes {
        // Stopped, and cut off: what the master acknowledges from now on never reaches it.
        group.replica.pause();
        let mut master = group.master.connection().unwrap();
        let _: u64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica").query(&mut master).unwrap();
        if options.wait_replicas == 0 {
            eventually("events the replica never gets", async || count.load(Ordering::Relaxed) >= 75).await;
        } else {
            // Publishes that no replica can confirm now: each fails, none may reach a client
            // (their offsets go to acknowledged events on the promoted replica).
            let ghosts = ROOMS.iter().map(|room| ghost_publisher.publish(Event::new(room, "ghost", &0)));
            for result in futures::future::join_all(ghosts).await {
                assert!(result.is_err_and(|e| e.is_retryable()), "no replica can have it");
            }
        }
    }
    group.master.kill();
    if lose_writes {
        group.replica.resume();
    }
    let group = tokio::task::spawn_blocking(move || {
        group.wait_for_failover();
        if restart_old_master {
            // Back as the new master's replica, so that WAIT can succeed again.
            group.restart_old_master_as_replica();
        }
        group
    })
    .await
    .unwrap();
    let acked = publishing.await.unwrap();
    // Markers until every client has one in every room: a client told to reload misses what
    // was published before it resubscribed, so only events after that can end its reading.
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    for k in 0.. {
        if finished.load(Ordering::Acquire) == USERS.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the clients never all read an end marker");
        for room in ROOMS {
            let id = format!("end-{k}");
            let event = Event::new(room, "end", &k).id(&id);
            let _ = marker_publisher.publish(event).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen = Vec::new();
    for client in clients {
        seen.push(tokio::time::timeout(Duration::from_secs(40), client).await.unwrap().unwrap());
    }
    for gw in &nodes {
        assert_eq!(gw.get("/readyz").await.0, 200, "the node follows the new master");
    }
    drop(group);
    (acked, seen)
}

/// Every acknowledged event reached the client or the client was told in that room; nothing
/// arrived twice or out of order.
fn check_nothing_lost_silently(acked: &HashMap<String, Vec<String>>, seen: &Seen) {
    for (room, ids) in acked {
        let got: Vec<String> =
            seen.ids.get(room).into_iter().flatten().filter(|id| !id.starts_with("end-")).cloned().collect();
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "no duplicates in {room}");
        let order: Vec<&String> = ids.iter().filter(|id| unique.contains(id)).collect();
        assert_eq!(order, got.iter().collect::<Vec<_>>(), "in publish order, and only acknowledged ones, in {room}");
        let missing = ids.iter().filter(|id| !unique.contains(id)).count();
        assert!(missing == 0 || seen.told.get(room).copied().unwrap_or(0) > 0, "{missing} lost silently in {room}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_that_lost_acknowledged_writes_every_room_starts_a_new_epoch_and_clients_are_told() {
    let (acked, seen) = fail_over(RedisOptions::default(), true, false).await;
    for client in &seen {
        check_nothing_lost_silently(&acked, client);
        for room in ROOMS {
            // The promoted replica may lack acknowledged writes: no offset of the old epoch is
            // handed out again, and every subscriber hears that continuity ended.
            assert!(client.told.get(room).copied().unwrap_or(0) >= 1, "told in {room}: {client:?}");
            let epochs: HashSet<&String> =
                client.positions.keys().filter(|(r, ..)| r == room).map(|(_, epoch, _)| epoch).collect();
            assert_eq!(epochs.len(), 2, "one epoch before the failover and one after, in {room}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_a_failover_that_lost_writes_keeps_every_acknowledged_event_and_the_epoch() {
    let options = RedisOptions { wait_replicas: 1, ..RedisOptions::default() };
    let (acked, seen) = fail_over(options, true, true).await;
    for client in &seen {
        check_nothing_lost_silently(&acked, client);
        assert!(client.told.is_empty(), "nobody told to reload: {client:?}");
        for (room, ids) in &acked {
            let got: Vec<&String> = client.ids[room].iter().filter(|id| !id.starts_with("end-")).collect();
            assert_eq!(got, ids.iter().collect::<Vec<_>>(), "every acknowledged event once, in {room}");
        }
    }
}
