//! `connect`: a connection storm. N clients connect with concurrency C, each with its own JWT
//! (HS256 or ES256), and count as connected once the server's welcome arrived (roomcast's
//! `connected`; the peers' `connected` event after auth and room joins). Reports connections
//! per second, handshake latency and server CPU per connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::run_tag;
use crate::client::Client;
use crate::procstat::CpuWindow;
use crate::progress::{Counters, Progress};
use crate::report::{Better, ScenarioResult};
use crate::scenario::idle::thousands;
use crate::target::{Target, source_for};
use crate::tokens::{Alg, Minter};
use crate::tracker::{LatencySummary, histogram};

/// Parameters of `connect`.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectParams {
    /// Connections to open.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Connections opening at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Token algorithm.
    #[arg(long, value_enum, default_value_t = Alg::Hs256)]
    pub alg: Alg,
}

impl Default for ConnectParams {
    fn default() -> Self {
        Self { connections: 5000, concurrency: 128, alg: Alg::Hs256 }
    }
}

/// Runs `connect` against `target`.
pub async fn run(target: &Target, p: &ConnectParams) -> anyhow::Result<ScenarioResult> {
    let node = match p.alg {
        Alg::Es256 => target.es256.clone().unwrap_or_else(|| target.single.clone()),
        Alg::Hs256 => target.single.clone(),
    };
    let pids: Vec<u32> = node.pid.into_iter().collect();
    let minter = Minter::new(target, p.alg)?;
    let tag = run_tag();
    // Tokens are minted before the storm so that signing does not slow the load tester down.
    let tokens: Vec<String> =
        (0..p.connections).map(|i| minter.mint(&format!("s{tag}u{i}"), Some(&format!("s{tag}")))).collect();
    let alg = match p.alg {
        Alg::Hs256 => "HS256",
        Alg::Es256 => "ES256",
    };
    let label = format!("connect storm {} {alg}, concurrency {}", thousands(p.connections), p.concurrency);
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(format!("{label} {}", target.name), Arc::clone(&counters), || 0);
    let permits = Arc::new(Semaphore::new(p.concurrency.max(1)));
    let cpu = CpuWindow::start(&pids, None);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let (counters, protocol, addr) = (Arc::clone(&counters), target.protocol, node.addr);
        tasks.spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            match Client::connect(addr, source_for(addr, i), protocol, &token).await {
                Ok(client) => {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    Some((client, t0.elapsed().as_micros() as u64))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "connect failed");
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        });
    }
    let mut hist = histogram();
    let mut clients = Vec::with_capacity(p.connections);
    while let Some(done) = tasks.join_next().await {
        if let Some((client, us)) = done? {
            hist.saturating_record(us.max(1));
            clients.push(client);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (server_cpu, own_cpu, _) = cpu.elapsed(&pids, None);
    drop(progress);
    drop(clients);
    let ok = hist.len();
    let latency = LatencySummary::of(&hist);
    let mut r = ScenarioResult::new("connect", label, &target.name);
    r.figure("connections per second", ok as f64 / wall, "/s", Better::Higher);
    r.latency_figures("handshake", &latency);
    r.figure("failed", counters.failures.load(Ordering::Relaxed) as f64, "", Better::Zero);
    r.figure("server CPU per connection", server_cpu * 1e6 / ok.max(1) as f64, "µs", Better::Lower);
    r.figure("load tester CPU per connection", own_cpu * 1e6 / ok.max(1) as f64, "µs", Better::Lower);
    if own_cpu > server_cpu {
        r.notes.push(format!("the load tester used more CPU than the server ({own_cpu:.2} s vs {server_cpu:.2} s)"));
    }
    r.latency = Some(latency);
    Ok(r)
}
