//! Ordered, retried publishing for `churn`: one task per dialog publishes that dialog's messages
//! in order, each retried (on the next node) until a node answers 200, so that any reordering a
//! client sees is the server's, and a message is expected only once a node acknowledged it.
//!
//! roomcast deduplicates a retry by the message id (`c<tag>-<seq>`); the peers have no message
//! ids, so a retry of a publish that did happen shows up as a duplicate there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::http::HttpConn;
use crate::target::Target;

/// How long after its turn a message may still be retried before it counts as never
/// acknowledged. Counted from when it was queued, not from its first attempt: when no node takes
/// publishes any more (a peer that never got Redis back), a dialog's backlog then drains with one
/// failed attempt per message instead of a minute each.
const GIVE_UP: Duration = Duration::from_secs(60);
/// Bound of one HTTP exchange (a node killed mid-request must not stall its dialog).
const EXCHANGE: Duration = Duration::from_secs(3);

/// What the publishers did, shared with the scenario.
#[derive(Debug)]
pub(super) struct Ledger {
    /// `acked[seq]`: a node answered 200 for message `seq`.
    pub(super) acked: Vec<AtomicBool>,
    /// Attempts that failed and were retried.
    pub(super) retries: AtomicU64,
    /// Messages no node acknowledged within [`GIVE_UP`].
    pub(super) abandoned: AtomicU64,
}

impl Ledger {
    /// A ledger for messages `0..messages`.
    pub(super) fn new(messages: usize) -> Self {
        Self {
            acked: (0..messages).map(|_| AtomicBool::new(false)).collect(),
            retries: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        }
    }
}

/// One message to publish: its sequence number, JSON body and when it was queued (its turn).
pub(super) type Job = (u64, Vec<u8>, tokio::time::Instant);

/// Starts one publisher task per dialog; returns their queues (index = dialog) and the tasks,
/// which end once the queues are dropped and drained.
pub(super) fn start(
    target: &Target,
    nodes: &[SocketAddr],
    dialogs: usize,
    ledger: &Arc<Ledger>,
) -> (Vec<mpsc::UnboundedSender<Job>>, JoinSet<()>) {
    let mut queues = Vec::with_capacity(dialogs);
    let mut tasks = JoinSet::new();
    for d in 0..dialogs {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        queues.push(tx);
        let (path, key, ledger) = (target.publish_path(), target.api_key.clone(), Arc::clone(ledger));
        let nodes = nodes.to_vec();
        tasks.spawn(async move {
            let mut node = d % nodes.len();
            let mut conn = HttpConn::new(nodes[node]);
            while let Some((seq, body, queued)) = rx.recv().await {
                loop {
                    let sent = tokio::time::timeout(EXCHANGE, conn.post(path, key.as_deref(), &body)).await;
                    if matches!(sent, Ok(Ok((200, _)))) {
                        ledger.acked[seq as usize].store(true, Ordering::Relaxed);
                        break;
                    }
                    if queued.elapsed() > GIVE_UP {
                        ledger.abandoned.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    ledger.retries.fetch_add(1, Ordering::Relaxed);
                    node = (node + 1) % nodes.len();
                    conn = HttpConn::new(nodes[node]);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    (queues, tasks)
}
