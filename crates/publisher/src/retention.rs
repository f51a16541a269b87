//! [`Retention`]: how much of a room's past Redis keeps, for recovery and for idempotent
//! publishing.

use std::time::Duration;

/// What Redis keeps per room. Every publisher of a deployment (gateway nodes and backends)
/// must use the same values; the defaults are the gateway's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events kept in a room's history (0 turns history and recovery off). Default: 300.
    pub history_size: usize,
    /// How long a room's history outlives its last event. Default: 10 minutes.
    pub history_ttl: Duration,
    /// How long a message id is remembered, so that publishing it again is a no-op that returns
    /// the first offset. Default: 5 minutes.
    pub dedup_window: Duration,
}

/// A room's offset and epoch outlive its history by far: a position that expired would start a
/// new epoch and make every client of a quiet room reload. Kept this long after the last use.
const POSITION_TTL: Duration = Duration::from_secs(24 * 3600);

impl Default for Retention {
    fn default() -> Self {
        Self { history_size: 300, history_ttl: Duration::from_secs(600), dedup_window: Duration::from_secs(300) }
    }
}

impl Retention {
    /// How long the position hash lives after its last publish or read.
    pub fn position_ttl(&self) -> Duration {
        POSITION_TTL.max(self.history_ttl).max(self.dedup_window)
    }

    /// Milliseconds, at least 1 (Redis refuses a zero expiry).
    pub(crate) fn millis(d: Duration) -> u64 {
        (d.as_millis() as u64).max(1)
    }
}
