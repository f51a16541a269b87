//! `idle`: open connections in steps (e.g. 1k, 10k, 19k), hold them, and report the server's
//! RSS and CPU per connection from `/proc/<pid>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Spec, close_all, open_all, receive_all, run_tag};
use crate::procstat::{CpuWindow, rss_bytes};
use crate::progress::{Counters, Progress};
use crate::report::{Better, ScenarioResult};
use crate::target::Target;
use crate::tokens::{Alg, Minter};
use crate::tracker::Tracker;

/// Parameters of `idle`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct IdleParams {
    /// Connection counts to reach one after the other (each step adds to the previous).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    pub steps: Vec<usize>,
    /// Seconds to hold each step before measuring.
    #[arg(long, default_value_t = 5)]
    pub hold_secs: u64,
    /// Connections opening at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
}

impl Default for IdleParams {
    fn default() -> Self {
        Self { steps: vec![1000, 10_000, 19_000], hold_secs: 5, concurrency: 256 }
    }
}

/// Runs `idle` against `target`; one result per step.
pub async fn run(target: &Target, p: &IdleParams) -> anyhow::Result<Vec<ScenarioResult>> {
    let node = &target.single;
    let pids: Vec<u32> = node.pid.into_iter().collect();
    let minter = Minter::new(target, Alg::Hs256)?;
    let tag = run_tag();
    let counters = Arc::new(Counters::default());
    let tracker = Arc::new(Tracker::new(0));
    let _progress = Progress::start(format!("idle {}", target.name), Arc::clone(&counters), || 0);
    let baseline = node.pid.and_then(rss_bytes);
    let stop = CancellationToken::new();
    let mut receivers = Vec::new();
    let mut results = Vec::new();
    let mut open = 0;
    for &step in &p.steps {
        // One `user:` room per connection and, for every tenth, an `org:` room too.
        let specs: Vec<Spec> = (open..step)
            .map(|i| {
                let org = (i % 10 == 0).then(|| format!("i{tag}-{}", i / 10 % 100));
                Spec { addr: node.addr, token: minter.mint(&format!("i{tag}u{i}"), org.as_deref()), rooms: vec![] }
            })
            .collect();
        let cpu = CpuWindow::start(&pids, None);
        let started = Instant::now();
        let clients = open_all(specs, target.protocol, p.concurrency, &counters).await?;
        let connect_secs = started.elapsed().as_secs_f64();
        let (connect_cpu, own_connect_cpu, _) = cpu.elapsed(&pids, None);
        let added = clients.len();
        receivers.push(receive_all(clients, &tracker, &stop, &counters, None));
        open += added;
        let hold = CpuWindow::start(&pids, None);
        tokio::time::sleep(Duration::from_secs(p.hold_secs)).await;
        let (hold_cpu, _, _) = hold.elapsed(&pids, None);
        let mut r = ScenarioResult::new("idle", format!("idle {}", thousands(step)), &target.name);
        r.figure("connections held", open as f64, "", Better::Higher);
        if let (Some(base), Some(now)) = (baseline, node.pid.and_then(rss_bytes)) {
            r.figure("server RSS", now as f64 / 1048576.0, "MiB", Better::Lower);
            r.figure(
                "RSS per connection",
                (now.saturating_sub(base)) as f64 / open.max(1) as f64 / 1024.0,
                "KiB",
                Better::Lower,
            );
        }
        r.figure("connects per second", added as f64 / connect_secs, "/s", Better::Higher);
        r.figure("server CPU per connect", connect_cpu * 1e6 / added.max(1) as f64, "µs", Better::Lower);
        r.figure("server CPU while idle", hold_cpu / p.hold_secs.max(1) as f64 * 100.0, "% of a core", Better::Lower);
        if own_connect_cpu > connect_cpu {
            r.notes.push(format!(
                "the load tester used more CPU than the server while connecting ({own_connect_cpu:.2} s vs {connect_cpu:.2} s)"
            ));
        }
        results.push(r);
    }
    for tasks in receivers {
        close_all(stop.clone(), tasks, &counters).await;
    }
    Ok(results)
}

/// `19000` → `19k`.
pub fn thousands(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) { format!("{}k", n / 1000) } else { n.to_string() }
}
