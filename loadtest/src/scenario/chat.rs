//! `chat` (and `cross-node`): a population of users in 2-10-member dialogs, org rooms and their
//! personal rooms; dialog messages at a fixed open-loop rate, one org broadcast per second, and
//! subscribe/unsubscribe churn. Reports publish→deliver latency, lost and duplicated counts.
//!
//! With several nodes, users are spread round-robin over them and publishes go to the nodes in
//! turn, so most deliveries cross Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{PublishConn, Spec, add_members, close_all, open_all, publish_body, receive_all, run_tag, wait_deliveries};
use crate::client::Client;
use crate::procstat::CpuWindow;
use crate::progress::{Counters, Progress};
use crate::redisstats::CommandStats;
use crate::report::{Better, ScenarioResult};
use crate::target::{Node, Target, source_for};
use crate::tokens::{Alg, Minter};
use crate::tracker::{LatencySummary, Tracker, now_us, payload};

/// Parameters of `chat` and `cross-node`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct ChatParams {
    /// Users, one connection each.
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Dialog rooms.
    #[arg(long, default_value_t = 1000)]
    pub dialogs: usize,
    /// Org rooms (users are spread over them evenly).
    #[arg(long, default_value_t = 10)]
    pub orgs: usize,
    /// Dialog messages per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Joins plus leaves per second, on rooms that carry no measured traffic.
    #[arg(long, default_value_t = 100.0)]
    pub churn_rate: f64,
    /// HTTP publish connections per node.
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Connections opening at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

impl Default for ChatParams {
    fn default() -> Self {
        Self {
            users: 2000,
            dialogs: 1000,
            orgs: 10,
            rate: 1000.0,
            duration_secs: 10,
            payload: 100,
            churn_rate: 100.0,
            publishers: 8,
            concurrency: 256,
        }
    }
}

const CHURN_CLIENTS: usize = 10;

/// Runs the chat shape against `nodes` of `target` (one node: `chat`; two: `cross-node`).
pub async fn run(target: &Target, nodes: &[Node], p: &ChatParams) -> anyhow::Result<ScenarioResult> {
    anyhow::ensure!(!nodes.is_empty(), "target {} has no nodes for this scenario", target.name);
    let pids: Vec<u32> = nodes.iter().filter_map(|n| n.pid).collect();
    let redis = if nodes.len() > 1 { target.redis_pid } else { None };
    let redis_addr = if nodes.len() > 1 { target.redis_addr } else { None };
    let redis_stats = async || match redis_addr {
        Some(addr) => CommandStats::read(addr).await.map(Some),
        None => Ok(None),
    };
    let tag = run_tag();
    let minter = Minter::new(target, Alg::Hs256)?;
    let user = |i: usize| format!("c{tag}u{i}");
    let node_of = |i: usize| nodes[i % nodes.len()].addr;

    // Dialog membership: uniform 2..=10 distinct users per dialog.
    let mut rng = StdRng::from_os_rng();
    let mut dialogs: Vec<Vec<usize>> = Vec::with_capacity(p.dialogs);
    let mut rooms_of: Vec<Vec<String>> = vec![Vec::new(); p.users];
    for d in 0..p.dialogs {
        let size = rng.random_range(2..=10).min(p.users);
        let members = sample(&mut rng, p.users, size).into_vec();
        for &m in &members {
            rooms_of[m].push(format!("dialog:c{tag}-{d}"));
        }
        dialogs.push(members);
    }
    for (d, members) in dialogs.iter().enumerate() {
        let names: Vec<String> = members.iter().map(|&m| user(m)).collect();
        add_members(target, nodes[0].addr, &format!("dialog:c{tag}-{d}"), &names).await?;
    }
    let churn_rooms: Vec<String> = (0..CHURN_CLIENTS).map(|j| format!("dialog:c{tag}-churn{j}")).collect();
    for (j, room) in churn_rooms.iter().enumerate() {
        add_members(target, nodes[0].addr, room, &[format!("c{tag}churn{j}")]).await?;
    }
    let org_members: Vec<u32> =
        (0..p.orgs).map(|k| (0..p.users).filter(|i| i % p.orgs.max(1) == k).count() as u32).collect();
    let specs: Vec<Spec> = (0..p.users)
        .map(|i| Spec {
            addr: node_of(i),
            token: minter.mint(&user(i), Some(&format!("c{tag}-{}", i % p.orgs.max(1)))),
            rooms: std::mem::take(&mut rooms_of[i]),
        })
        .collect();

    let nodes_label = if nodes.len() == 1 { "1 node".to_owned() } else { format!("{} nodes", nodes.len()) };
    let label = format!("chat {} msg/s, {nodes_label}", crate::report::fmt_value(p.rate));
    let messages = (p.rate * p.duration_secs as f64).ceil() as usize;
    let org_messages = p.duration_secs as usize;
    let tracker = Arc::new(Tracker::new(messages + org_messages));
    let counters = Arc::new(Counters::default());
    let progress = {
        let t = Arc::clone(&tracker);
        Progress::start(format!("{label} {}", target.name), Arc::clone(&counters), move || t.delivered())
    };
    // Every user joins its dialogs and its own two rooms (user and org) as it connects.
    let joins: usize = specs.iter().map(|s| s.rooms.len() + 2).sum();
    let before_joins = redis_stats().await?;
    let clients = open_all(specs, target.protocol, p.concurrency, &counters).await?;
    let after_joins = redis_stats().await?;
    anyhow::ensure!(clients.len() == p.users, "only {} of {} users connected", clients.len(), p.users);
    let mut churners = Vec::new();
    for j in 0..CHURN_CLIENTS {
        let addr = node_of(j);
        churners.push(
            Client::connect(addr, source_for(addr, j), target.protocol, &minter.mint(&format!("c{tag}churn{j}"), None))
                .await?,
        );
    }
    let stop = CancellationToken::new();
    let receivers = receive_all(clients, &tracker, &stop, &counters, None);

    // HTTP publishers: `publishers` keep-alive connections per node, fed round-robin.
    let errors = Arc::new(AtomicU64::new(0));
    let mut queues = Vec::new();
    let mut workers = tokio::task::JoinSet::new();
    for node in nodes {
        for _ in 0..p.publishers.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            let mut conn = PublishConn::new(target, node.addr);
            let errors = Arc::clone(&errors);
            workers.spawn(async move {
                while let Some(body) = rx.recv().await {
                    if let Err(e) = conn.publish(&body).await {
                        tracing::debug!(error = %e, "publish failed");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            queues.push(tx);
        }
    }
    let churn_ops = Arc::new(AtomicU64::new(0));
    let churn = spawn_churn(churners, churn_rooms, p.churn_rate, stop.clone(), Arc::clone(&churn_ops));

    let cpu = CpuWindow::start(&pids, redis);
    // The schedule runs on its own OS thread: `std::thread::sleep` wakes within tens of µs,
    // where tokio's timer wheel has 1 ms ticks and would add up to 1 ms to every latency.
    let start = now_us();
    let schedule = {
        let (tracker, counters, tag, org_members) =
            (Arc::clone(&tracker), Arc::clone(&counters), tag.clone(), org_members.clone());
        let (rate, payload_size, orgs) = (p.rate, p.payload, p.orgs.max(1));
        std::thread::spawn(move || {
            let mut expected = 0u64;
            let mut next_org = 0;
            for seq in 0..messages {
                let intended = start + (seq as f64 * 1e6 / rate) as u64;
                let now = now_us();
                if intended > now {
                    std::thread::sleep(Duration::from_micros(intended - now));
                }
                let d = rng.random_range(0..dialogs.len());
                let recipients = dialogs[d].len() as u32;
                tracker.published(seq as u64, intended, recipients);
                expected += u64::from(recipients);
                let body = publish_body(&format!("dialog:c{tag}-{d}"), &payload(seq as u64, intended, payload_size));
                let _ = queues[seq % queues.len()].send(body);
                // One org-wide broadcast per second of traffic.
                if next_org < org_messages && intended >= start + next_org as u64 * 1_000_000 {
                    let k = next_org % orgs;
                    let oseq = (messages + next_org) as u64;
                    tracker.published(oseq, intended, org_members[k]);
                    expected += u64::from(org_members[k]);
                    let body = publish_body(&format!("org:c{tag}-{k}"), &payload(oseq, intended, payload_size));
                    let _ = queues[(seq + 1) % queues.len()].send(body);
                    next_org += 1;
                }
                counters.published.fetch_add(1, Ordering::Relaxed);
            }
            (expected, next_org)
        })
    };
    let (expected, next_org) = tokio::task::spawn_blocking(move || schedule.join())
        .await?
        .map_err(|_| anyhow::anyhow!("publish schedule panicked"))?;
    let sent_secs = (now_us() - start) as f64 / 1e6;
    while workers.join_next().await.is_some() {}
    wait_deliveries(&tracker, expected, Duration::from_secs(3)).await;
    let (server_cpu, own_cpu, redis_cpu) = cpu.elapsed(&pids, redis);
    let after_window = redis_stats().await?;
    let churned = churn_ops.load(Ordering::Relaxed);
    drop(progress);
    stop.cancel();
    let _ = churn.await;
    close_all(stop, receivers, &counters).await;

    let outcome = tracker.outcome();
    let window = outcome.last_delivery_us.saturating_sub(start).max(1) as f64 / 1e6;
    let latency = LatencySummary::of(&outcome.latency);
    let mut r = ScenarioResult::new(if nodes.len() > 1 { "cross-node" } else { "chat" }, label, &target.name);
    r.figure("messages per second sent", (messages + next_org) as f64 / sent_secs, "/s", Better::Higher);
    r.figure("deliveries per second", outcome.delivered as f64 / window, "/s", Better::Higher);
    r.latency_figures("delivery latency", &latency);
    r.figure("delivery latency max", latency.max_ms, "ms", Better::Lower);
    r.figure("lost", outcome.lost as f64, "", Better::Zero);
    r.figure("duplicated", outcome.duplicated as f64, "", Better::Zero);
    r.figure("publish errors", errors.load(Ordering::Relaxed) as f64, "", Better::Zero);
    r.figure("server CPU", server_cpu, "s", Better::Lower);
    if server_cpu > 0.0 {
        r.figure("deliveries per server CPU-second", outcome.delivered as f64 / server_cpu, "", Better::Higher);
    }
    // What one message cost the servers, all nodes together, and what it fanned out to: the
    // capacity planner splits the first into a part per publish and a part per delivery.
    let sent = (messages + next_org).max(1) as f64;
    r.figure("server CPU per message", server_cpu * 1e6 / sent, "µs", Better::Lower);
    r.figure("deliveries per message", outcome.delivered as f64 / sent, "", Better::Higher);
    if redis.is_some() {
        r.figure("Redis CPU", redis_cpu, "s", Better::Lower);
        // Everything Redis did (publishes, their fan-out, joins and leaves) per message sent:
        // what sets a deployment's ceiling, since Redis is the part every node shares.
        r.figure("Redis CPU per message", redis_cpu * 1e6 / sent, "µs", Better::Lower);
    }
    if let (Some(b), Some(a), Some(w)) = (&before_joins, &after_joins, &after_window) {
        // Redis' own command time (INFO commandstats), without its event loop: per message
        // sent in the window (churn included) and per room joined while the users connected,
        // every command counted once (a script's inner commands under their names, the script's
        // own overhead left out), and per script call (roomcast's publish script, for the most
        // part, with what it called).
        let (joined, window) = (a.since(b), w.since(a));
        r.figure("Redis µs per publish", window.total_usec() as f64 / sent, "µs", Better::Lower);
        r.figure("Redis µs per subscribe", joined.total_usec() as f64 / joins.max(1) as f64, "µs", Better::Lower);
        if let (calls @ 1.., usec) = window.scripts() {
            r.figure("Redis µs per script call", usec as f64 / calls as f64, "µs", Better::Lower);
        }
    }
    r.figure("load tester CPU", own_cpu, "s", Better::Lower);
    r.figure("joins+leaves per second", churned as f64 / sent_secs, "/s", Better::Higher);
    if own_cpu > server_cpu {
        r.notes.push(format!("the load tester used more CPU than the servers ({own_cpu:.2} s vs {server_cpu:.2} s)"));
    }
    r.latency = Some(latency);
    Ok(r)
}

/// Churn: each churn client joins and leaves its own room in turn, `rate` operations per second
/// in all, until `stop`.
fn spawn_churn(
    clients: Vec<Client>,
    rooms: Vec<String>,
    rate: f64,
    stop: CancellationToken,
    ops: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if rate <= 0.0 {
            return;
        }
        let per_client = Duration::from_secs_f64(clients.len() as f64 / rate);
        let mut tasks = tokio::task::JoinSet::new();
        for (mut client, room) in clients.into_iter().zip(rooms) {
            let (stop, ops) = (stop.clone(), Arc::clone(&ops));
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(per_client);
                let mut joined = false;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = stop.cancelled() => return,
                    }
                    let result = if joined { client.unsubscribe(&room).await } else { client.subscribe(&room).await };
                    if result.is_err() {
                        return;
                    }
                    joined = !joined;
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    })
}

/// Addresses of `nodes`, for logs.
pub fn addrs(nodes: &[Node]) -> Vec<SocketAddr> {
    nodes.iter().map(|n| n.addr).collect()
}
