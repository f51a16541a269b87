//! `cycles`: connect/disconnect cycles. `concurrency` workers each connect (token, `connected`),
//! then drop the connection, `cycles` times in all. The server's RSS is read after a warm-up of
//! `warmup` cycles and again at the end, each time once the closed connections had
//! `settle_secs` to be released: memory that a cycle leaves behind shows up as growth.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::run_tag;
use crate::client::Client;
use crate::procstat::rss_bytes;
use crate::progress::{Counters, Progress};
use crate::report::{Better, ScenarioResult};
use crate::scenario::idle::thousands;
use crate::target::{Target, source_for};
use crate::tokens::{Alg, Minter};

/// Parameters of `cycles`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct CyclesParams {
    /// Connect/disconnect cycles after the warm-up.
    #[arg(long, default_value_t = 1_000_000)]
    pub cycles: u64,
    /// Cycles before the first RSS reading.
    #[arg(long, default_value_t = 20_000)]
    pub warmup: u64,
    /// Cycles running at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds for the server to release closed connections before each RSS reading.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
}

impl Default for CyclesParams {
    fn default() -> Self {
        Self { cycles: 1_000_000, warmup: 20_000, concurrency: 64, settle_secs: 5 }
    }
}

/// Runs `cycles` against `target.single`.
pub async fn run(target: &Target, p: &CyclesParams) -> anyhow::Result<ScenarioResult> {
    let node = target.single.clone();
    let pid = node.pid.ok_or_else(|| anyhow::anyhow!("cycles needs the node's pid for its RSS"))?;
    let minter = Minter::new(target, Alg::Hs256)?;
    let tag = run_tag();
    // A pool of tokens, reused: signing a million tokens would cost the load tester more than
    // the server's verification costs it.
    let tokens: Arc<Vec<String>> =
        Arc::new((0..p.concurrency.max(1) * 4).map(|i| minter.mint(&format!("y{tag}u{i}"), None)).collect());
    let label = format!("connect/disconnect {} cycles, concurrency {}", thousands(p.cycles as usize), p.concurrency);
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(format!("{label} {}", target.name), Arc::clone(&counters), || 0);
    let settle = Duration::from_secs(p.settle_secs);

    cycle(target, &node, &tokens, p.warmup, p.concurrency, &counters).await;
    tokio::time::sleep(settle).await;
    let before = rss_bytes(pid).unwrap_or(0);
    let started = Instant::now();
    cycle(target, &node, &tokens, p.cycles, p.concurrency, &counters).await;
    let wall = started.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let after = rss_bytes(pid).unwrap_or(0);
    drop(progress);

    let failed = counters.failures.load(Ordering::Relaxed);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut r = ScenarioResult::new("cycles", label, &target.name);
    r.figure("cycles per second", p.cycles as f64 / wall, "/s", Better::Higher);
    r.figure("failed cycles", failed as f64, "", Better::Zero);
    r.figure("RSS after warm-up", mib(before), "MiB", Better::Lower);
    r.figure("RSS at the end", mib(after), "MiB", Better::Lower);
    r.figure("RSS growth", 100.0 * (after as f64 - before as f64) / before.max(1) as f64, "%", Better::Lower);
    Ok(r)
}

/// `total` connect/disconnect cycles, `concurrency` at a time.
async fn cycle(
    target: &Target,
    node: &crate::target::Node,
    tokens: &Arc<Vec<String>>,
    total: u64,
    concurrency: usize,
    counters: &Arc<Counters>,
) {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for w in 0..concurrency.max(1) {
        let (next, tokens, counters, protocol, addr) =
            (Arc::clone(&next), Arc::clone(tokens), Arc::clone(counters), target.protocol, node.addr);
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let token = &tokens[(n as usize) % tokens.len()];
                match Client::connect(addr, source_for(addr, w + n as usize), protocol, token).await {
                    // Dropped at once: the socket closes without a close frame.
                    Ok(client) => {
                        drop(client);
                        counters.connections.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cycle failed");
                        counters.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}
