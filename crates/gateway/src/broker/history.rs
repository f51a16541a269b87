//! [`RoomHistory`]: the embedded broker's memory of one room, with the same semantics as the
//! Redis layout: the last `history_size` events for `history_ttl`, and message ids for the
//! dedup window.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use roomcast_publisher::Retention;

use crate::event::RoomEvent;

/// One room's recent events and recently published ids.
#[derive(Debug, Default)]
pub struct RoomHistory {
    /// Oldest first; each with the time it was published.
    events: VecDeque<(Instant, Arc<RoomEvent>)>,
    ids: HashMap<String, u64>,
    /// Ids oldest first, for expiry.
    id_order: VecDeque<(Instant, String)>,
}

impl RoomHistory {
    /// The offset a message id was published at, if within the dedup window.
    pub fn published(&mut self, id: &str, retention: &Retention, now: Instant) -> Option<u64> {
        self.expire(retention, now);
        self.ids.get(id).copied()
    }

    /// Records a published event (and its id, when the publisher gave one).
    pub fn record(&mut self, event: Arc<RoomEvent>, id: Option<&str>, retention: &Retention, now: Instant) {
        self.expire(retention, now);
        if retention.history_size > 0 {
            if self.events.len() == retention.history_size {
                self.events.pop_front();
            }
            self.events.push_back((now, Arc::clone(&event)));
        }
        if let Some(id) = id {
            self.ids.insert(id.to_owned(), event.offset);
            self.id_order.push_back((now, id.to_owned()));
        }
    }

    /// Every kept event after `since`, when they are all still kept (`last` is the room's
    /// offset); `None` when history no longer reaches back that far.
    pub fn after(&mut self, since: u64, last: u64, retention: &Retention, now: Instant) -> Option<Vec<Arc<RoomEvent>>> {
        self.expire(retention, now);
        if since > last {
            return None;
        }
        let wanted = (last - since) as usize;
        let kept: Vec<Arc<RoomEvent>> =
            self.events.iter().filter(|(_, e)| e.offset > since).map(|(_, e)| Arc::clone(e)).collect();
        (kept.len() == wanted).then_some(kept)
    }

    /// Up to `limit` kept events, oldest first: the latest without `since`, the first ones
    /// after it with it.
    pub fn page(
        &mut self,
        since: Option<u64>,
        limit: usize,
        retention: &Retention,
        now: Instant,
    ) -> Vec<Arc<RoomEvent>> {
        self.expire(retention, now);
        let kept = self.events.iter().map(|(_, e)| e);
        match since {
            None => kept.skip(self.events.len().saturating_sub(limit)).cloned().collect(),
            Some(since) => kept.filter(|e| e.offset > since).take(limit).cloned().collect(),
        }
    }

    /// Whether nothing is kept any more.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.ids.is_empty()
    }

    /// History expires as a whole `history_ttl` after the room's last event, as the Redis key
    /// does; ids one by one after the dedup window.
    fn expire(&mut self, retention: &Retention, now: Instant) {
        if self.events.back().is_some_and(|(at, _)| now.duration_since(*at) >= retention.history_ttl) {
            self.events.clear();
        }
        while let Some((at, _)) = self.id_order.front() {
            if now.duration_since(*at) < retention.dedup_window {
                break;
            }
            if let Some((_, id)) = self.id_order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn event(offset: u64) -> Arc<RoomEvent> {
        let room = roomcast_proto::RoomName::parse("dialog:1").unwrap();
        RoomEvent::from_frame(&room, offset, Arc::from("E"), Bytes::new(), None, Instant::now())
    }

    #[test]
    fn keeps_the_last_events_and_forgets_ids_after_the_window() {
        let retention =
            Retention { history_size: 3, history_ttl: Duration::from_secs(60), dedup_window: Duration::from_secs(5) };
        let (mut h, t0) = (RoomHistory::default(), Instant::now());
        for offset in 1..=5 {
            h.record(event(offset), Some(&format!("m{offset}")), &retention, t0);
        }
        let kept = h.after(2, 5, &retention, t0).unwrap();
        assert_eq!(kept.iter().map(|e| e.offset).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(h.after(1, 5, &retention, t0).is_none(), "offset 2 was trimmed");
        assert_eq!(h.published("m4", &retention, t0), Some(4));
        assert_eq!(h.published("m4", &retention, t0 + Duration::from_secs(6)), None);
        assert!(h.after(4, 5, &retention, t0 + Duration::from_secs(61)).is_none(), "history expired");
        assert_eq!(h.after(5, 5, &retention, t0 + Duration::from_secs(61)).unwrap().len(), 0);
    }
}
