//! [`GapRepair`]: refills a room's missing events from Redis history.
//!
//! A room whose offsets skipped (a message lost between Redis and this node) or whose
//! subscription was lost and restored holds its newer events while this task reads every
//! event after the room's cursor from history; they are delivered in order, then the held
//! ones. When history no longer has them (trimmed, expired, or the room's epoch changed) every
//! member is told `left: resubscribe`: continuity is never broken silently. When Redis holds
//! less of the room than the node delivered, the room also gets a new epoch in Redis.

use std::sync::Arc;
use std::time::Duration;

use roomcast_proto::RoomName;
use roomcast_publisher::Publisher;
use tokio::sync::{Semaphore, mpsc};

use crate::fanout::Fanout;
use crate::rooms::Cursor;

/// Repairs running at once; more wait their turn (their rooms keep holding events).
const CONCURRENT_REPAIRS: usize = 32;
/// A history read that fails is tried this many times, with growing pauses, before the room's
/// members are told to resubscribe.
const ATTEMPTS: u32 = 4;

/// Where gapped rooms are sent to be repaired.
#[derive(Debug, Clone)]
pub(super) struct GapRepair {
    /// Unbounded, yet bounded by the number of rooms: a room is queued only when it starts
    /// repairing (`begin_repair` and the gap check both refuse a room already repairing), and
    /// it stops repairing only when its repair ran.
    queue: mpsc::UnboundedSender<(RoomName, Cursor)>,
}

impl GapRepair {
    /// Starts the repair task for the rooms of `fanout`, reading with `publisher`, and turns
    /// gap detection on.
    pub(super) fn start(publisher: Publisher, fanout: Fanout) -> Self {
        let (queue, rooms) = mpsc::unbounded_channel();
        let this = Self { queue };
        let hook = this.clone();
        fanout.on_gap(Box::new(move |room, cursor| hook.request(room, cursor)));
        tokio::spawn(run(publisher, fanout, rooms));
        this
    }

    /// Queues a repair of `room` after `cursor` (the room already holds its events).
    pub(super) fn request(&self, room: &RoomName, cursor: &Cursor) {
        let _ = self.queue.send((room.clone(), cursor.clone()));
    }
}

async fn run(publisher: Publisher, fanout: Fanout, mut rooms: mpsc::UnboundedReceiver<(RoomName, Cursor)>) {
    let limit = Arc::new(Semaphore::new(CONCURRENT_REPAIRS));
    while let Some((room, cursor)) = rooms.recv().await {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { return };
        let (publisher, fanout) = (publisher.clone(), fanout.clone());
        tokio::spawn(async move {
            repair(&publisher, &fanout, &room, &cursor).await;
            drop(permit);
        });
    }
}

async fn repair(publisher: &Publisher, fanout: &Fanout, room: &RoomName, cursor: &Cursor) {
    let mut pause = Duration::from_millis(100);
    let mut history = None;
    for attempt in 1..=ATTEMPTS {
        match publisher.history(room, Some((cursor.offset, &cursor.epoch))).await {
            Ok(h) => {
                history = Some(h);
                break;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::debug!(%room, error = %e, "history read for a gap failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => tracing::warn!(%room, error = %e, "history read for a gap failed"),
        }
    }
    // Redis holds less of the room than this node delivered: it lost acknowledged writes. A
    // new epoch keeps their offsets from going to other events (members are told below).
    if let Some(h) = history.as_ref().filter(|h| h.epoch == *cursor.epoch && h.offset < cursor.offset) {
        match publisher.restart_epoch_below(room, &h.epoch, cursor.offset).await {
            Ok(restarted) => tracing::warn!(
                %room, redis_offset = h.offset, delivered = cursor.offset, restarted,
                "Redis holds less of the room than this node delivered; the room starts a new epoch"
            ),
            Err(e) => tracing::warn!(%room, error = %e, "could not start a new epoch for a room Redis lost writes of"),
        }
    }
    let complete = history.filter(|h| h.continues_from(cursor.offset, &cursor.epoch));
    match complete {
        Some(history) => {
            let events = fanout.room_events(room, &history.events);
            tracing::info!(%room, after = cursor.offset, events = events.len(), "gap repaired from history");
            fanout.finish_repair(room, Some(&events));
        }
        None => {
            tracing::warn!(%room, after = cursor.offset, "history cannot fill the gap; members must resubscribe");
            fanout.finish_repair(room, None);
        }
    }
}
