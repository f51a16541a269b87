//! [`MemoryQueue`]: the embedded broker's events waiting for the webhook, bounded; when full,
//! the oldest event is dropped (and counted), so that a webhook that is down costs the node a
//! fixed amount of memory and the backend the oldest news rather than the newest.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::BackendEvent;
use crate::metrics::Metrics;

/// Events waiting for the webhook, each with its id.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
    node: String,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct State {
    events: VecDeque<(String, BackendEvent)>,
    next_id: u64,
}

impl MemoryQueue {
    /// A queue of at most `capacity` events, ids named after `node`.
    pub fn new(capacity: usize, node: &str, metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            capacity: capacity.max(1),
            node: node.to_owned(),
            metrics,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event`, dropping the oldest one when full.
    pub fn push(&self, event: BackendEvent) {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("{}-{}", self.node, state.next_id);
        if state.events.len() >= self.capacity {
            state.events.pop_front();
            self.metrics.backend_events_dropped("webhook", 1);
        }
        state.events.push_back((id, event));
        drop(state);
        self.ready.notify_one();
    }

    /// Up to `max` of the oldest events (left queued), waiting until there is one.
    pub async fn peek(&self, max: usize) -> Vec<(String, BackendEvent)> {
        loop {
            let ready = self.ready.notified();
            {
                let state = self.state();
                if !state.events.is_empty() {
                    return state.events.iter().take(max).cloned().collect();
                }
            }
            ready.await;
        }
    }

    /// Removes the events with these ids (posted), wherever they still are.
    pub fn remove(&self, ids: &[String]) {
        let mut state = self.state();
        // Posted events are the oldest unless the queue overflowed meanwhile.
        while state.events.front().is_some_and(|(id, _)| ids.contains(id)) {
            state.events.pop_front();
        }
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.state().events.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
