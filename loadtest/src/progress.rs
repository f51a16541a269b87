//! The progress line: one line on stderr, rewritten every second while a scenario runs.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Counters a scenario updates and the progress line shows.
#[derive(Debug, Default)]
pub struct Counters {
    /// Open connections.
    pub connections: AtomicU64,
    /// Failed connects or subscribes.
    pub failures: AtomicU64,
    /// Messages published.
    pub published: AtomicU64,
}

/// Shows `label` and the counters (and deliveries from `delivered`) every second until dropped.
#[derive(Debug)]
pub struct Progress {
    stop: CancellationToken,
}

impl Progress {
    /// Starts the line.
    pub fn start(label: String, counters: Arc<Counters>, delivered: impl Fn() -> u64 + Send + 'static) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = token.cancelled() => break,
                }
                let d = delivered();
                let line = format!(
                    "\r[{label}] {:>5.1}s  conns {:>6}  failed {:>4}  published {:>8}  delivered {:>10} ({:>9}/s)   ",
                    start.elapsed().as_secs_f64(),
                    counters.connections.load(Ordering::Relaxed),
                    counters.failures.load(Ordering::Relaxed),
                    counters.published.load(Ordering::Relaxed),
                    d,
                    d.saturating_sub(last),
                );
                last = d;
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            let _ = std::io::stderr().write_all(b"\n");
        });
        Self { stop }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
