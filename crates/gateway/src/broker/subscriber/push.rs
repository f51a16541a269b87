//! The push handler of the subscriber connection, and the [`Signals`] it leaves for the
//! supervisor.
//!
//! The handler runs on the Redis connection's own task, for every push: a room's message is
//! decoded and queued into outboxes at once (that never waits), anything else is left as a
//! signal and the supervisor woken. Signals are bounded by construction: "the connection was
//! lost" is one flag, and "Redis dropped this channel" (a slot moved away) is a set with at
//! most one entry per channel, so no push can grow a queue without bound.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use crate::fanout::Fanout;

/// What the push handler leaves for the supervisor.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// The generation of the last connection lost and not yet recovered (0: none).
    lost: AtomicU64,
    dropped: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Signals {
    /// Waits until something was signalled (a signal given before the wait is not missed).
    pub(super) async fn changed(&self) {
        self.wake.notified().await;
    }

    /// The generation of a connection lost since the last call, if any.
    pub(super) fn take_lost(&self) -> Option<u64> {
        Some(self.lost.swap(0, Ordering::AcqRel)).filter(|&g| g != 0)
    }

    /// The channels Redis dropped since the last call.
    pub(super) fn take_dropped(&self) -> Vec<String> {
        self.dropped.lock().unwrap_or_else(|e| e.into_inner()).drain().collect()
    }

    fn lost(&self, generation: u64) {
        self.lost.fetch_max(generation, Ordering::AcqRel);
        self.wake.notify_one();
    }

    fn dropped(&self, channel: String) {
        self.dropped.lock().unwrap_or_else(|e| e.into_inner()).insert(channel);
        self.wake.notify_one();
    }
}

/// The handler for the pushes of the subscriber connection of `generation`.
pub(super) fn handler(
    fanout: Fanout,
    signals: Arc<Signals>,
    generation: u64,
) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    move |push: PushInfo| {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(Value::BulkString(payload)) = push.data.get(1) {
                    fanout.envelope(payload, Instant::now());
                }
            }
            PushKind::Disconnection => signals.lost(generation),
            // Also the confirmation of our own SUNSUBSCRIBE; the supervisor finds such a
            // channel unwanted and does nothing.
            PushKind::SUnsubscribe => {
                if let Some(Value::BulkString(channel)) = push.data.first() {
                    signals.dropped(String::from_utf8_lossy(channel).into_owned());
                }
            }
            _ => {}
        }
        Ok(())
    }
}
