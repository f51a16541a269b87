//! `capacity`: the highest publish rate one server broadcasts at while p99 stays under a bound.
//!
//! One room of N subscribers (the `broadcast` shape), published to at a fixed rate for a few
//! seconds, then at a rate `factor` times higher, and so on, in one run over the same
//! connections. A step passes when its every-recipient p99 is under `p99_limit_ms` and nothing
//! was lost; a step that fails is run once more (one stall of a shared machine, a peer's
//! garbage collection, must not end the run), and stepping ends when a rate fails twice (or at
//! `max_rate`). Publishes leave on
//! schedule from an OS thread over several keep-alive connections (open loop: a server that
//! answers late shows it as latency), so the publisher is not what limits the rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{OrgRoom, PublishConn, open_all, publish_body, receive_all, wait_deliveries};
use crate::procstat::CpuWindow;
use crate::progress::{Counters, Progress};
use crate::report::{Better, ScenarioResult, fmt_value};
use crate::scenario::idle::thousands;
use crate::target::Target;
use crate::tokens::{Alg, Minter};
use crate::tracker::{LatencySummary, Tracker, now_us, payload};

/// Keep-alive publish connections.
const PUBLISHERS: usize = 4;

/// Parameters of `capacity`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct CapacityParams {
    /// Subscribers in the room.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Publishes per second of the first step.
    #[arg(long, default_value_t = 20.0)]
    pub start_rate: f64,
    /// Each step's rate over the previous one's.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 5000.0)]
    pub max_rate: f64,
    /// Seconds of publishing per step.
    #[arg(long, default_value_t = 3.0)]
    pub step_secs: f64,
    /// The p99 a step must stay under (ms).
    #[arg(long, default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    /// Connections opening at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

impl Default for CapacityParams {
    fn default() -> Self {
        Self {
            subscribers: 1000,
            payload: 100,
            start_rate: 20.0,
            factor: 1.5,
            max_rate: 5000.0,
            step_secs: 3.0,
            p99_limit_ms: 50.0,
            concurrency: 256,
        }
    }
}

/// What one step measured.
struct Step {
    rate: f64,
    latency: LatencySummary,
    lost: u64,
    duplicated: u64,
    server_cpu: f64,
    delivered: u64,
    /// p99 under the bound, nothing lost or duplicated, every client still connected.
    passed: bool,
}

/// Runs `capacity` against `target`.
pub async fn run(target: &Target, p: &CapacityParams) -> anyhow::Result<ScenarioResult> {
    anyhow::ensure!(p.factor > 1.0 && p.start_rate > 0.0 && p.step_secs > 0.0, "capacity needs rates that grow");
    let node = &target.single;
    let pids: Vec<u32> = node.pid.into_iter().collect();
    let org = OrgRoom::new("k", node.addr);
    let room = org.room.clone();
    let minter = Minter::new(target, Alg::Hs256)?;
    let specs = org.members(&minter, "u", p.subscribers);
    let label = format!("capacity 1→{} {} B, p99 under {} ms", thousands(p.subscribers), p.payload, p.p99_limit_ms);
    let counters = Arc::new(Counters::default());
    let step_delivered = Arc::new(AtomicU64::new(0));
    let progress = {
        let d = Arc::clone(&step_delivered);
        Progress::start(format!("{label} {}", target.name), Arc::clone(&counters), move || d.load(Ordering::Relaxed))
    };
    let mut clients = open_all(specs, target.protocol, p.concurrency, &counters).await?;
    let recipients = clients.len() as u32;
    let publishers = Publishers::start(target, &counters);

    let mut steps = Vec::new();
    let mut rate = p.start_rate;
    let mut failed_once = false;
    let mut next_seq = 0usize;
    while rate <= p.max_rate {
        let publishes = (rate * p.step_secs).ceil().max(1.0) as usize;
        // Sequence numbers run on across steps, so that a straggler of an earlier step is not
        // counted in this one.
        let first = next_seq;
        next_seq += publishes;
        let tracker = Arc::new(Tracker::new(next_seq).from_seq(first as u64));
        let stop = CancellationToken::new();
        let receivers = receive_all(clients, &tracker, &stop, &counters, None);
        // The progress line follows this step's tracker.
        let d = Arc::clone(&tracker);
        let watch = tokio::spawn({
            let step_delivered = Arc::clone(&step_delivered);
            async move {
                loop {
                    step_delivered.store(d.delivered(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        let cpu = CpuWindow::start(&pids, None);
        let schedule = publishers.schedule(&room, rate, first..next_seq, p.payload, &tracker, recipients);
        tokio::task::spawn_blocking(move || schedule.join())
            .await?
            .map_err(|_| anyhow::anyhow!("publish schedule panicked"))?;
        // Every publish of the step answered before the next step starts (a slow server's
        // backlog must not be published into the next one), within a bound.
        publishers.drained(next_seq as u64, Duration::from_secs(30)).await;
        let expected = u64::from(recipients) * publishes as u64;
        wait_deliveries(&tracker, expected, Duration::from_secs(3)).await;
        watch.abort();
        let (server_cpu, _, _) = cpu.elapsed(&pids, None);
        stop.cancel();
        clients = Vec::with_capacity(recipients as usize);
        let mut receivers = receivers;
        while let Some(done) = receivers.join_next().await {
            clients.extend(done.ok().flatten());
        }
        let outcome = tracker.outcome();
        let latency = LatencySummary::of(&outcome.latency);
        let passed = outcome.lost == 0
            && outcome.duplicated == 0
            && latency.p99_ms < p.p99_limit_ms
            && clients.len() == recipients as usize;
        let step = Step {
            rate,
            latency,
            lost: outcome.lost,
            duplicated: outcome.duplicated,
            server_cpu,
            delivered: outcome.delivered,
            passed,
        };
        steps.push(step);
        match (passed, failed_once) {
            (true, _) => {
                failed_once = false;
                rate *= p.factor;
            }
            (false, false) => failed_once = true,
            (false, true) => break,
        }
    }
    drop(progress);
    drop(clients);
    counters.connections.store(0, Ordering::Relaxed);
    let errors = publishers.errors.load(Ordering::Relaxed);

    let mut r = ScenarioResult::new("capacity", label, &target.name);
    let best = steps.iter().rfind(|s| s.passed);
    r.figure("capacity (publishes per second)", best.map_or(0.0, |s| s.rate), "/s", Better::Higher);
    r.figure(
        "deliveries per second at capacity",
        best.map_or(0.0, |s| s.rate * f64::from(recipients)),
        "/s",
        Better::Higher,
    );
    if let Some(best) = best {
        r.figure("delivery latency p99 at capacity", best.latency.p99_ms, "ms", Better::Lower);
        if best.server_cpu > 0.0 {
            r.figure(
                "deliveries per server CPU-second at capacity",
                best.delivered as f64 / best.server_cpu,
                "",
                Better::Higher,
            );
        }
    }
    for step in &steps {
        r.notes.push(format!(
            "{}/s: p99 {:.1} ms, p50 {:.1} ms, lost {}, duplicated {}, server CPU {:.2} s",
            fmt_value(step.rate),
            step.latency.p99_ms,
            step.latency.p50_ms,
            step.lost,
            step.duplicated,
            step.server_cpu
        ));
    }
    if errors > 0 {
        r.figure("publish errors", errors as f64, "", Better::Zero);
    }
    Ok(r)
}

/// Keep-alive publish connections fed round-robin.
struct Publishers {
    queues: Vec<mpsc::UnboundedSender<Vec<u8>>>,
    errors: Arc<AtomicU64>,
    /// Publishes answered (or failed), all steps together.
    answered: Arc<AtomicU64>,
}

impl Publishers {
    fn start(target: &Target, counters: &Arc<Counters>) -> Self {
        let errors = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let queues = (0..PUBLISHERS)
            .map(|_| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
                let mut conn = PublishConn::new(target, target.single.addr);
                let (errors, counters, answered) = (Arc::clone(&errors), Arc::clone(counters), Arc::clone(&answered));
                tokio::spawn(async move {
                    while let Some(body) = rx.recv().await {
                        if conn.publish(&body).await.is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        counters.published.fetch_add(1, Ordering::Relaxed);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                });
                tx
            })
            .collect();
        Self { queues, errors, answered }
    }

    /// Waits until `total` publishes were answered, or `bound` passed.
    async fn drained(&self, total: u64, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        while self.answered.load(Ordering::Relaxed) < total && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Publishes messages `seqs` to `room` at `rate` from an OS thread (tokio's 1 ms
    /// timer ticks would add up to 1 ms to every latency), stamped for `tracker`.
    fn schedule(
        &self,
        room: &str,
        rate: f64,
        seqs: std::ops::Range<usize>,
        size: usize,
        tracker: &Arc<Tracker>,
        recipients: u32,
    ) -> std::thread::JoinHandle<()> {
        let (queues, tracker, room) = (self.queues.clone(), Arc::clone(tracker), room.to_owned());
        std::thread::spawn(move || {
            let start = now_us();
            let first = seqs.start;
            for seq in seqs {
                let intended = start + ((seq - first) as f64 * 1e6 / rate) as u64;
                let now = now_us();
                if intended > now {
                    std::thread::sleep(Duration::from_micros(intended - now));
                }
                tracker.published(seq as u64, intended, recipients);
                let _ = queues[seq % queues.len()].send(publish_body(&room, &payload(seq as u64, intended, size)));
            }
        })
    }
}
