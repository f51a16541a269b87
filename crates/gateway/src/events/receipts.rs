//! [`Receipts`]: clients' `ack`s turned into `delivered` events, coalesced.
//!
//! A client in a receipt room acknowledges what it received (`{"type":"ack","room":...,
//! "offset":N}`). Per user and room the node keeps the highest offset acknowledged; every
//! window it reports each one that moved as one `delivered {room, user, offset, ids}`, where
//! `ids` are the message ids of the events after the previous report up to it (those this
//! node delivered recently; a busy room costs one event per user and window, not one per
//! message).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomcast_proto::RoomName;

use super::{BackendEvent, Events};
use crate::config::RoomPrefixes;

/// Message ids remembered per room, for the `ids` of receipts.
const RECENT_IDS: usize = 1024;
/// A user and room with no ack for this long is forgotten (their next ack reports only ids
/// from then on).
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Acked {
    /// The epoch the offsets are of: another epoch starts the user's receipts in the room again.
    epoch: Arc<str>,
    /// Highest offset acknowledged.
    offset: u64,
    /// Highest offset reported.
    reported: u64,
    touched: Instant,
}

/// A room's recent (offset, message id)s in one epoch.
#[derive(Debug)]
struct RecentIds {
    epoch: Arc<str>,
    ids: VecDeque<(u64, Arc<str>)>,
    /// When one was last added.
    touched: Instant,
}

#[derive(Debug, Default)]
struct State {
    acked: HashMap<(RoomName, Arc<str>), Acked>,
    recent: HashMap<RoomName, RecentIds>,
}

/// A node's delivery receipts.
#[derive(Debug)]
pub struct Receipts {
    rooms: RoomPrefixes,
    window: Duration,
    events: Events,
    state: Mutex<State>,
}

impl Receipts {
    /// Receipts for `rooms`, reported through `events` every `window`.
    pub fn new(rooms: RoomPrefixes, window: Duration, events: Events) -> Arc<Self> {
        Arc::new(Self { rooms, window, events, state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `room` takes acks.
    pub fn covers(&self, room: &RoomName) -> bool {
        self.events.enabled() && self.rooms.matches(room.as_str())
    }

    /// Remembers that the event `id` at `offset` of `epoch` was delivered in `room` (a receipt
    /// room).
    pub fn delivered_event(&self, room: &RoomName, offset: u64, epoch: &Arc<str>, id: &str) {
        let mut state = self.state();
        let now = Instant::now();
        let recent = state.recent.entry(room.clone()).or_insert_with(|| RecentIds {
            epoch: Arc::clone(epoch),
            ids: VecDeque::new(),
            touched: now,
        });
        if *recent.epoch != **epoch {
            // Offsets of the old epoch name other events: they go.
            (recent.epoch, recent.ids) = (Arc::clone(epoch), VecDeque::new());
        }
        if recent.ids.back().is_some_and(|(last, _)| *last >= offset) {
            return;
        }
        if recent.ids.len() == RECENT_IDS {
            recent.ids.pop_front();
        }
        recent.ids.push_back((offset, Arc::from(id)));
        recent.touched = now;
    }

    /// `user` received `room`'s events up to `offset` of `epoch`.
    pub fn ack(&self, room: &RoomName, user: &Arc<str>, offset: u64, epoch: &Arc<str>) {
        let now = Instant::now();
        let mut state = self.state();
        let acked = state.acked.entry((room.clone(), Arc::clone(user))).or_insert(Acked {
            epoch: Arc::clone(epoch),
            offset: 0,
            reported: 0,
            touched: now,
        });
        if *acked.epoch != **epoch {
            (acked.epoch, acked.offset, acked.reported) = (Arc::clone(epoch), 0, 0);
        }
        acked.offset = acked.offset.max(offset);
        acked.touched = now;
    }

    /// Reports what moved since the last flush; returns how many `delivered` went out.
    pub fn flush(&self) -> usize {
        let mut out = Vec::new();
        {
            let mut state = self.state();
            let State { acked, recent } = &mut *state;
            for ((room, user), a) in acked.iter_mut() {
                if a.offset <= a.reported {
                    continue;
                }
                let ids: Vec<Arc<str>> = recent
                    .get(room)
                    .filter(|r| r.epoch == a.epoch)
                    .map(|r| {
                        r.ids
                            .iter()
                            .filter(|(o, _)| *o > a.reported && *o <= a.offset)
                            .map(|(_, id)| Arc::clone(id))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(BackendEvent::delivered(room.as_str(), user, a.offset, &ids));
                a.reported = a.offset;
            }
            acked.retain(|_, a| a.touched.elapsed() < FORGET_AFTER);
            recent.retain(|_, r| r.touched.elapsed() < FORGET_AFTER);
        }
        let sent = out.len();
        for event in out {
            self.events.send(event);
        }
        sent
    }

    /// Flushes every window until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.window);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MemoryQueue;
    use crate::metrics::Metrics;

    /// Receipts for `dialog:` rooms with a one-second window, into a queue the test reads.
    fn receipts_in_memory() -> (Arc<Receipts>, Arc<MemoryQueue>) {
        let metrics = Arc::new(Metrics::new("t"));
        let queue = Arc::new(MemoryQueue::new(100, "t", Arc::clone(&metrics)));
        let events = Events::memory(Arc::clone(&queue), metrics);
        (Receipts::new(RoomPrefixes::new(vec!["dialog:".into()]), Duration::from_secs(1), events), queue)
    }

    #[tokio::test]
    async fn acks_within_a_window_are_one_receipt_with_the_ids_since_the_last() {
        let (receipts, queue) = receipts_in_memory();
        let room = RoomName::parse("dialog:1").unwrap();
        let user: Arc<str> = Arc::from("u1");
        let e: Arc<str> = Arc::from("e1");
        for offset in 1..=5 {
            receipts.delivered_event(&room, offset, &e, &format!("m{offset}"));
        }
        receipts.ack(&room, &user, 2, &e);
        receipts.ack(&room, &user, 4, &e);
        receipts.ack(&room, &user, 3, &e);
        assert_eq!(receipts.flush(), 1);
        assert_eq!(receipts.flush(), 0, "nothing moved");
        receipts.ack(&room, &user, 5, &e);
        assert_eq!(receipts.flush(), 1);
        let got = queue.peek(10).await;
        let first: serde_json::Value = serde_json::from_str(&got[0].1.json).unwrap();
        assert_eq!(first["offset"], 4);
        assert_eq!(first["ids"], serde_json::json!(["m1", "m2", "m3", "m4"]));
        let second: serde_json::Value = serde_json::from_str(&got[1].1.json).unwrap();
        assert_eq!(second["ids"], serde_json::json!(["m5"]));
    }

    #[tokio::test]
    async fn a_new_epoch_starts_receipts_again() {
        let (receipts, queue) = receipts_in_memory();
        let room = RoomName::parse("dialog:1").unwrap();
        let user: Arc<str> = Arc::from("u1");
        let (old, new): (Arc<str>, Arc<str>) = (Arc::from("e1"), Arc::from("e2"));
        for offset in 1..=9 {
            receipts.delivered_event(&room, offset, &old, &format!("old{offset}"));
        }
        receipts.ack(&room, &user, 9, &old);
        assert_eq!(receipts.flush(), 1);
        // The room's keys were lost: offsets start again at 1 in a new epoch.
        receipts.delivered_event(&room, 1, &new, "new1");
        receipts.delivered_event(&room, 2, &new, "new2");
        receipts.ack(&room, &user, 2, &new);
        assert_eq!(receipts.flush(), 1, "an ack below the old epoch's 9 still reports");
        let got = queue.peek(10).await;
        let second: serde_json::Value = serde_json::from_str(&got[1].1.json).unwrap();
        assert_eq!((second["offset"].as_u64(), &second["ids"]), (Some(2), &serde_json::json!(["new1", "new2"])));
    }
}
