//! `broadcast`: one publisher, one room of N subscribers, payload P, at rate R or as fast as
//! the server accepts publishes (the next publish leaves when the previous one was answered).
//! Reports deliveries per second and per server CPU-second, per-delivery and last-recipient
//! latency.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Acks, OrgRoom, PublishConn, close_all, open_all, publish_body, receive_all, wait_deliveries};
use crate::procstat::CpuWindow;
use crate::progress::{Counters, Progress};
use crate::report::{Better, ScenarioResult};
use crate::scenario::idle::thousands;
use crate::target::Target;
use crate::tokens::{Alg, Minter};
use crate::tracker::{LatencySummary, Tracker, now_us, payload};

/// Parameters of `broadcast`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct BroadcastParams {
    /// Subscribers in the room.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Event data size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 1000)]
    pub publishes: usize,
    /// Publishes per second; 0 publishes as fast as the server accepts them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Connections opening at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Extra members of the room that never read their socket (a phone in a tunnel): the
    /// others' latency shows what one slow reader costs them. Not counted in the figures.
    #[arg(long, default_value_t = 0)]
    pub slow_readers: usize,
    /// Every subscriber acknowledges what it received (`ack` with the highest offset, once per
    /// batch read from its socket), as clients with delivery receipts do; roomcast `/ws` only,
    /// for a node with `receipt_rooms` covering `org:`.
    #[arg(long, default_value_t = false)]
    pub acks: bool,
    /// With `acks`: at most one ack per subscriber per this many milliseconds (the JavaScript
    /// client's `receiptInterval` is 200); 0 acks after every batch read.
    #[arg(long, default_value_t = 0)]
    pub ack_interval_ms: u64,
}

impl Default for BroadcastParams {
    fn default() -> Self {
        Self {
            subscribers: 1000,
            payload: 100,
            publishes: 1000,
            rate: 0.0,
            concurrency: 256,
            slow_readers: 0,
            acks: false,
            ack_interval_ms: 0,
        }
    }
}

/// Runs `broadcast` against `target`.
pub async fn run(target: &Target, p: &BroadcastParams) -> anyhow::Result<ScenarioResult> {
    let node = &target.single;
    let pids: Vec<u32> = node.pid.into_iter().collect();
    let org = OrgRoom::new("b", node.addr);
    let room = org.room.clone();
    let minter = Minter::new(target, Alg::Hs256)?;
    let specs = org.members(&minter, "u", p.subscribers);
    let counters = Arc::new(Counters::default());
    let tracker = Arc::new(Tracker::new(p.publishes));
    let size = if p.payload >= 1000 && p.payload.is_multiple_of(1000) {
        format!("{} KB", p.payload / 1000)
    } else {
        format!("{} B", p.payload)
    };
    let pace = if p.rate > 0.0 { format!(" at {}/s", p.rate) } else { String::new() };
    let slow = match p.slow_readers {
        0 => String::new(),
        1 => ", 1 slow reader".to_owned(),
        n => format!(", {n} slow readers"),
    };
    let acks = match (p.acks, p.ack_interval_ms) {
        (false, _) => String::new(),
        (true, 0) => ", acked".to_owned(),
        (true, ms) => format!(", acked every {ms} ms"),
    };
    let label = format!("broadcast 1→{} {size}{pace}{slow}{acks}", thousands(p.subscribers));
    let progress = {
        let t = Arc::clone(&tracker);
        Progress::start(format!("{label} {}", target.name), Arc::clone(&counters), move || t.delivered())
    };
    let clients = open_all(specs, target.protocol, p.concurrency, &counters).await?;
    let recipients = clients.len() as u32;
    // Joined like the others, then never read: the server's writes to them back up.
    let slow_specs = org.members(&minter, "slow", p.slow_readers);
    let slow_readers = open_all(slow_specs, target.protocol, p.concurrency, &Arc::new(Counters::default())).await?;
    let stop = CancellationToken::new();
    let acks = p.acks.then(|| Acks { room: Arc::from(room.as_str()), every: Duration::from_millis(p.ack_interval_ms) });
    let receivers = receive_all(clients, &tracker, &stop, &counters, acks);

    let mut publisher = PublishConn::new(target, node.addr);
    let cpu = CpuWindow::start(&pids, None);
    let first = now_us();
    let mut errors = 0u64;
    for seq in 0..p.publishes as u64 {
        let t = if p.rate > 0.0 {
            let intended = first + (seq as f64 * 1e6 / p.rate) as u64;
            let now = now_us();
            if intended > now {
                tokio::time::sleep(Duration::from_micros(intended - now)).await;
            }
            intended
        } else {
            now_us()
        };
        tracker.published(seq, t, recipients);
        if publisher.publish(&publish_body(&room, &payload(seq, t, p.payload))).await.is_err() {
            errors += 1;
        }
        counters.published.fetch_add(1, Ordering::Relaxed);
    }
    let expected = u64::from(recipients) * p.publishes as u64;
    wait_deliveries(&tracker, expected, Duration::from_secs(3)).await;
    let (server_cpu, own_cpu, _) = cpu.elapsed(&pids, None);
    drop(progress);
    close_all(stop, receivers, &counters).await;
    drop(slow_readers);

    let outcome = tracker.outcome();
    let window = outcome.last_delivery_us.saturating_sub(first).max(1) as f64 / 1e6;
    let latency = LatencySummary::of(&outcome.latency);
    let last = LatencySummary::of(&outcome.last_recipient);
    let mut r = ScenarioResult::new("broadcast", label, &target.name);
    r.figure("deliveries", outcome.delivered as f64, "", Better::Higher);
    r.figure("expected deliveries", expected as f64, "", Better::Higher);
    r.figure("deliveries per second", outcome.delivered as f64 / window, "/s", Better::Higher);
    if server_cpu > 0.0 {
        r.figure("deliveries per server CPU-second", outcome.delivered as f64 / server_cpu, "", Better::Higher);
    }
    r.figure("server CPU", server_cpu, "s", Better::Lower);
    r.figure("load tester CPU", own_cpu, "s", Better::Lower);
    r.latency_figures("delivery latency", &latency);
    r.figure("last-recipient latency p50", last.p50_ms, "ms", Better::Lower);
    r.figure("last-recipient latency p99", last.p99_ms, "ms", Better::Lower);
    r.figure("lost", outcome.lost as f64, "", Better::Zero);
    r.figure("duplicated", outcome.duplicated as f64, "", Better::Zero);
    if errors > 0 {
        r.figure("publish errors", errors as f64, "", Better::Zero);
    }
    if own_cpu > server_cpu {
        r.notes.push(format!("the load tester used more CPU than the server ({own_cpu:.2} s vs {server_cpu:.2} s)"));
    }
    r.latency = Some(latency);
    r.last_recipient = Some(last);
    Ok(r)
}
