//! `churn`: delivery while every client drops its connection at random (about every
//! `drop_every_secs`), the shape of AnyCable's published benchmark. Users in dialogs of 2-6
//! members get a steady stream of messages; each dialog's messages are published in order, one
//! every `dialogs / rate` seconds, each retried until a node acknowledges it. `make soak`
//! (bench/soak.sh) runs it against three nodes on one Redis behind nginx and kills a node and
//! Redis meanwhile; this scenario only generates the load and counts.
//!
//! Every message acknowledged by a node is expected once by every member of its dialog.
//! Reported: delivered / expected (unique deliveries), duplicates, reordered (a message arriving
//! after a later one of its dialog), and for roomcast `recovered:false` replies.
//!
//! # Layout
//! - `mod.rs`: parameters, population, the publish schedule, the accounting.
//! - `client.rs`: one reconnecting user; `publish.rs`: ordered, retried publishers.

mod client;
mod publish;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{add_members, run_tag};
use crate::report::{Better, ScenarioResult};
use crate::target::Target;
use crate::tokens::{Alg, Minter};
use crate::tracker::{now_us, payload};
use client::{Plan, Seen};
use publish::Ledger;

/// Parameters of `churn`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnParams {
    /// Users, one connection each (at a time).
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Dialogs of 2-6 members.
    #[arg(long, default_value_t = 100)]
    pub dialogs: usize,
    /// Messages per second, over all dialogs.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seconds of publishing (and of dropping connections).
    #[arg(long, default_value_t = 120)]
    pub duration_secs: u64,
    /// Mean seconds between two drops of one client (each lifetime is 0.5-1.5 times it).
    #[arg(long, default_value_t = 15.0)]
    pub drop_every_secs: f64,
    /// Seconds after the last publish for clients to reconnect and catch up, without drops.
    #[arg(long, default_value_t = 20)]
    pub settle_secs: u64,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Seed of the population and of every client's drops: the same for every target.
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
}

impl Default for ChurnParams {
    fn default() -> Self {
        Self {
            users: 300,
            dialogs: 100,
            rate: 50.0,
            duration_secs: 120,
            drop_every_secs: 15.0,
            settle_secs: 20,
            payload: 100,
            seed: 17,
        }
    }
}

/// Runs `churn`: clients connect to `target.single` (the load balancer), messages are published
/// to `target.cluster` (or `single` when the target lists no cluster).
pub async fn run(target: &Target, p: &ChurnParams) -> anyhow::Result<ScenarioResult> {
    anyhow::ensure!(p.users >= 2 && p.dialogs >= 1 && p.rate > 0.0, "churn needs users >= 2, dialogs >= 1, rate > 0");
    let tag = run_tag();
    let minter = Minter::new(target, Alg::Hs256)?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let user = |i: usize| format!("k{tag}u{i}");
    let room = |d: usize| format!("dialog:k{tag}-{d}");
    let mut members: Vec<Vec<usize>> = Vec::with_capacity(p.dialogs);
    let mut rooms_of: Vec<Vec<(u32, String)>> = vec![Vec::new(); p.users];
    for d in 0..p.dialogs {
        let mut all: Vec<usize> = (0..p.users).collect();
        all.shuffle(&mut rng);
        all.truncate(rng.random_range(2..=6usize).min(p.users));
        for &m in &all {
            rooms_of[m].push((d as u32, room(d)));
        }
        let names: Vec<String> = all.iter().map(|&m| user(m)).collect();
        let admin = target.cluster.first().unwrap_or(&target.single).addr;
        add_members(target, admin, &room(d), &names).await?;
        members.push(all);
    }
    let publish_nodes: Vec<_> = if target.cluster.is_empty() {
        vec![target.single.addr]
    } else {
        target.cluster.iter().map(|n| n.addr).collect()
    };

    let calm = CancellationToken::new();
    let stop = CancellationToken::new();
    let mut clients = tokio::task::JoinSet::new();
    for (i, rooms) in rooms_of.iter_mut().enumerate() {
        let plan = Plan {
            index: i,
            addr: target.single.addr,
            protocol: target.protocol,
            token: minter.mint(&user(i), None),
            rooms: std::mem::take(rooms),
            drop_every: p.drop_every_secs,
            seed: p.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        };
        clients.spawn(client::run(plan, calm.clone(), stop.clone()));
        // Spread the first connects over a second rather than all at once.
        tokio::time::sleep(Duration::from_micros(1_000_000 / p.users as u64)).await;
    }
    // Let the first sessions subscribe before the first message.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let messages = (p.rate * p.duration_secs as f64).ceil() as usize;
    let ledger = Arc::new(Ledger::new(messages));
    let (queues, mut publishers) = publish::start(target, &publish_nodes, p.dialogs, &ledger);
    // Dialogs take turns in a fixed shuffled order: each gets one message every dialogs / rate s.
    let mut order: Vec<usize> = (0..p.dialogs).collect();
    order.shuffle(&mut rng);
    let dialog_of: Vec<usize> = (0..messages).map(|seq| order[seq % p.dialogs]).collect();
    // Nodes and Redis are killed and restarted meanwhile, so only the load tester's own CPU is
    // measured (a restarted process has a new pid).
    let own_cpu_before = crate::procstat::own_cpu_seconds();
    let start = now_us();
    for (seq, &d) in dialog_of.iter().enumerate() {
        let intended = start + (seq as f64 * 1e6 / p.rate) as u64;
        let now = now_us();
        if intended > now {
            tokio::time::sleep(Duration::from_micros(intended - now)).await;
        }
        let data = payload(seq as u64, intended, p.payload).replacen("\"p\":", &format!("\"r\":{d},\"p\":"), 1);
        let body = format!(r#"{{"room":"{}","event":"message:new","data":{data},"id":"k{tag}-{seq}"}}"#, room(d));
        let _ = queues[d].send((seq as u64, body.into_bytes(), tokio::time::Instant::now()));
    }
    drop(queues);
    calm.cancel();
    while publishers.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(p.settle_secs)).await;
    let own_cpu = crate::procstat::own_cpu_seconds() - own_cpu_before;
    stop.cancel();
    let mut seen_by: Vec<Seen> = Vec::with_capacity(p.users);
    let mut by_index = Vec::new();
    while let Some(done) = clients.join_next().await {
        by_index.push(done?);
    }
    seen_by.extend(by_index);

    // Accounting: every acknowledged message, once per member of its dialog.
    let acked = |seq: usize| ledger.acked[seq].load(Ordering::Relaxed);
    let mut expected = 0u64;
    for (seq, &d) in dialog_of.iter().enumerate() {
        if acked(seq) {
            expected += members[d].len() as u64;
        }
    }
    let (
        mut delivered,
        mut duplicates,
        mut reordered,
        mut recovered_false,
        mut resubscribes,
        mut reconnects,
        mut failures,
    ) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for seen in &seen_by {
        for (&seq, &count) in &seen.counts {
            if (seq as usize) < messages && acked(seq as usize) {
                delivered += 1;
            }
            duplicates += u64::from(count.saturating_sub(1));
        }
        reordered += seen.reordered;
        recovered_false += seen.recovered_false;
        resubscribes += seen.resubscribes;
        reconnects += seen.reconnects;
        failures += seen.connect_failures;
    }
    let label = format!(
        "churn {} users, {} msg/s, a drop every ~{} s",
        p.users,
        crate::report::fmt_value(p.rate),
        crate::report::fmt_value(p.drop_every_secs)
    );
    let mut r = ScenarioResult::new("churn", label, &target.name);
    r.figure("delivered / expected", 100.0 * delivered as f64 / expected.max(1) as f64, "%", Better::Higher);
    r.figure("expected deliveries", expected as f64, "", Better::Higher);
    r.figure("delivered (unique)", delivered as f64, "", Better::Higher);
    r.figure("duplicates", duplicates as f64, "", Better::Zero);
    r.figure("reordered", reordered as f64, "", Better::Zero);
    if target.protocol == crate::target::Protocol::Roomcast {
        r.figure("recovered:false", recovered_false as f64, "", Better::Zero);
        r.figure("resubscribes (left, refused subscribe)", resubscribes as f64, "", Better::Lower);
    }
    r.figure("reconnects", reconnects as f64, "", Better::Higher);
    r.figure("failed connects", failures as f64, "", Better::Lower);
    r.figure("messages acknowledged", (0..messages).filter(|&s| acked(s)).count() as f64, "", Better::Higher);
    r.figure("publish retries", ledger.retries.load(Ordering::Relaxed) as f64, "", Better::Lower);
    r.figure("publishes never acknowledged", ledger.abandoned.load(Ordering::Relaxed) as f64, "", Better::Zero);
    r.figure("load tester CPU", own_cpu, "s", Better::Lower);
    Ok(r)
}
