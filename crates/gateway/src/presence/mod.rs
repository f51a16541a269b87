//! [`Presence`]: who is in which room and who is online, counting every node, and what
//! changes of them are reported.
//!
//! The room registry tells presence of every connection and room membership as it happens
//! ([`MembershipHook`]); this node's counts ([`Tally`]) are written to the shared state a few
//! milliseconds later, in one batch, by the node's presence task, which also sends the node's
//! heartbeats and sweeps (dead nodes, users whose grace period is over). The shared state is
//! Redis (`roomcast_publisher::presence`) or, on the embedded broker, [`MemoryState`]. A
//! user's first connection in a presence room anywhere sends `join` to the room's members that
//! asked for presence, its last one `leave`; online status changes become `user_online` /
//! `user_offline` events, room changes `subscribed` / `unsubscribed` for the rooms that ask.
//!
//! # Layout
//! - `mod.rs`: the service and its task; `tally.rs`: this node's counts;
//!   `memory.rs`: the embedded broker's shared state.

mod memory;
mod tally;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use roomcast_proto::RoomName;
use roomcast_publisher::presence::{
    Heartbeat, NodeInfo, NodePresence, OnlineStatus, PresenceSettings, RoomChange, UserChange,
};
use roomcast_publisher::{Error, Publisher};
use tokio::sync::Notify;

pub use memory::MemoryState;
pub use tally::{Delta, Tally};

use crate::config::{Config, EventsConfig, PresenceConfig};
use crate::events::{BackendEvent, Events};
use crate::fanout::Fanout;
use crate::rooms::{Member, MembershipHook};

/// How long changes gather before they are written: a connect and its auto-joins (or a quick
/// reconnect) are one write.
const FLUSH_DELAY: Duration = Duration::from_millis(20);
/// Interval of sweeps (dead nodes, users due to go offline).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Pause before writing again after a failed write.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Most writes in flight at once in one flush.
const PARALLEL_WRITES: usize = 256;
/// Offline users the embedded broker remembers before it forgets them.
const MEMORY_USERS: usize = 100_000;

enum Backend {
    Memory(Mutex<MemoryState>),
    Redis(NodePresence),
}

/// A node's presence.
pub struct Presence {
    config: PresenceConfig,
    events_config: EventsConfig,
    node: String,
    tally: Mutex<Tally>,
    wake: Notify,
    backend: Backend,
    events: Events,
    fanout: Fanout,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("node", &self.node).finish_non_exhaustive()
    }
}

/// What the backend reads of one node (`GET /api/info`).
pub type NodeSummary = NodeInfo;

impl Presence {
    /// The presence of the node `config` describes, over `publisher` (Redis) or in memory,
    /// reporting through `events` and sending frames through `fanout`. Registers itself with
    /// the registry.
    pub fn new(config: &Config, publisher: Option<&Publisher>, events: Events, fanout: Fanout) -> Arc<Self> {
        let backend = match publisher {
            Some(publisher) => {
                let settings = PresenceSettings {
                    ttl: config.presence.ttl,
                    grace: config.presence.offline_grace,
                    write_events: config.events.enabled(),
                    stream_len: config.events.stream_len,
                };
                Backend::Redis(NodePresence::new(publisher.clone(), &config.node_id, settings))
            }
            None => Backend::Memory(Mutex::default()),
        };
        let presence = Arc::new(Self {
            config: config.presence.clone(),
            events_config: config.events.clone(),
            node: config.node_id.clone(),
            tally: Mutex::default(),
            wake: Notify::new(),
            backend,
            events,
            fanout,
        });
        if presence.config.enabled {
            let hook: Arc<dyn MembershipHook> = presence.clone();
            presence.fanout.registry().on_membership(Arc::downgrade(&hook));
        }
        presence
    }

    /// Whether the node keeps presence and online status (`presence`, on by default).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `room` keeps presence (who is there, `join` / `leave`).
    pub fn keeps(&self, room: &RoomName) -> bool {
        self.config.enabled && self.config.rooms.matches(room.as_str())
    }

    /// Whether `room`'s users are counted (presence, or `subscribed` / `unsubscribed` events).
    fn tracks(&self, room: &RoomName) -> bool {
        self.keeps(room) || (self.events.enabled() && self.events_config.subscription_rooms.matches(room.as_str()))
    }

    fn reports_subscriptions(&self, room: &RoomName) -> bool {
        self.events.enabled() && self.events_config.subscription_rooms.matches(room.as_str())
    }

    /// The users in `room` and their connections on every node.
    pub async fn room(&self, room: &RoomName) -> Result<BTreeMap<String, u64>, Error> {
        match &self.backend {
            Backend::Memory(state) => Ok(lock(state).presence(room)),
            Backend::Redis(np) => np.publisher().presence(room.as_str()).await,
        }
    }

    /// The online status of `users`.
    pub async fn online(&self, users: &[String]) -> Result<Vec<OnlineStatus>, Error> {
        match &self.backend {
            Backend::Memory(state) => Ok(lock(state).online(users)),
            Backend::Redis(np) => np.publisher().online(users).await,
        }
    }

    /// The nodes alive (in Redis mode, those whose heartbeat is within the ttl); on the
    /// embedded broker, this one.
    pub async fn nodes(&self) -> Result<Vec<NodeSummary>, Error> {
        match &self.backend {
            Backend::Memory(_) => Ok(vec![NodeInfo {
                node: self.node.clone(),
                heartbeat_ms: crate::events::now_ms(),
                fields: self.describe().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            }]),
            Backend::Redis(np) => np.publisher().nodes(self.config.ttl).await,
        }
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let registry = self.fanout.registry();
        vec![
            ("connections", registry.connection_count().to_string()),
            ("rooms", registry.room_count().to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ]
    }

    /// Writes what changed, sends heartbeats and sweeps, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        if !self.config.enabled {
            return;
        }
        if let Backend::Redis(np) = &self.backend {
            // A process that had this node id before (killed, restarted within the ttl) may
            // have left counts behind: they go first.
            loop {
                match np.reset(|room| self.keeps(room)).await {
                    Ok(sweep) => break self.report_left(&sweep),
                    Err(e) => tracing::warn!(error = %e, "cannot clear this node's earlier presence; retrying"),
                }
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
        let mut heartbeat = tokio::time::interval(self.config.ttl / 5);
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.wake.notified() => {
                    tokio::time::sleep(FLUSH_DELAY).await;
                    if !self.flush().await {
                        tokio::time::sleep(RETRY_DELAY).await;
                        self.wake.notify_one();
                    }
                }
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = sweep.tick() => self.sweep().await,
            }
        }
    }

    /// Writes what changed since the last flush; `false` when some of it failed (it is kept for
    /// the next flush).
    pub async fn flush(&self) -> bool {
        let delta = self.tally().take();
        if delta.is_empty() {
            return true;
        }
        let (written, failed) = match &self.backend {
            Backend::Memory(state) => {
                self.apply_memory(state, &delta);
                (delta, Delta::default())
            }
            Backend::Redis(np) => self.apply_redis(np, delta).await,
        };
        let mut tally = self.tally();
        tally.written(&written);
        tally.failed(&failed);
        failed.is_empty()
    }

    fn apply_memory(&self, state: &Mutex<MemoryState>, delta: &Delta) {
        let mut changes = Vec::new();
        {
            let mut state = lock(state);
            for (user, count) in &delta.users {
                if let (UserChange::Online, seq) = state.set_user(user, *count, self.config.offline_grace) {
                    self.events.send(BackendEvent::user_online(user, seq, &self.node));
                }
            }
            for (room, user, count, _) in &delta.rooms {
                changes.push((room.clone(), Arc::clone(user), state.set_room(room, user, *count)));
            }
        }
        for (room, user, change) in changes {
            self.room_changed(&room, &user, change, &self.node, true);
        }
    }

    async fn apply_redis(&self, np: &NodePresence, delta: Delta) -> (Delta, Delta) {
        let (mut written, mut failed) = (Delta::default(), Delta::default());
        for chunk in delta.users.chunks(PARALLEL_WRITES) {
            let results = join_all(chunk.iter().map(|(user, count)| np.set_user(user, *count))).await;
            for (entry, result) in chunk.iter().zip(results) {
                match result {
                    Ok(_) => written.users.push(entry.clone()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot write a user's connections; retrying");
                        failed.users.push(entry.clone());
                    }
                }
            }
        }
        for chunk in delta.rooms.chunks(PARALLEL_WRITES) {
            let results = join_all(
                chunk
                    .iter()
                    .map(|(room, user, count, in_room)| np.set_room(room, user, *count, self.keeps(room), *in_room)),
            )
            .await;
            for (entry, result) in chunk.iter().zip(results) {
                match result {
                    Ok(change) => {
                        // The script published the frame on the room's channel already.
                        self.room_changed(&entry.0, &entry.1, change, &self.node, false);
                        written.rooms.push(entry.clone());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot write a room's presence; retrying");
                        failed.rooms.push(entry.clone());
                    }
                }
            }
        }
        (written, failed)
    }

    /// A change of `user` in `room` was made (by `node`): frames (when `frames`, i.e. not sent
    /// through the broker already) and events.
    fn room_changed(&self, room: &RoomName, user: &str, change: RoomChange, node: &str, frames: bool) {
        let joined = match change {
            RoomChange::None => return,
            RoomChange::Joined => true,
            RoomChange::Left => false,
        };
        if frames && self.keeps(room) {
            self.fanout.presence(room, user, joined);
        }
        if self.reports_subscriptions(room) {
            let event = if joined {
                BackendEvent::subscribed(room.as_str(), user, node)
            } else {
                BackendEvent::unsubscribed(room.as_str(), user, node)
            };
            self.events.send(event);
        }
    }

    /// Reports the users a dead node's cleanup took out of rooms (the scripts published the
    /// `leave`s).
    fn report_left(&self, sweep: &roomcast_publisher::presence::Sweep) {
        for (room, users) in &sweep.left {
            for user in users {
                self.room_changed(room, user, RoomChange::Left, "", false);
            }
        }
    }

    async fn heartbeat(&self) {
        let Backend::Redis(np) = &self.backend else { return };
        match np.heartbeat(&self.describe()).await {
            Ok(Heartbeat::Known) => {}
            Ok(Heartbeat::New) => {
                // Taken for dead and cleaned up (or the first heartbeat): write everything again.
                self.tally().rewrite_all();
                self.wake.notify_one();
            }
            Ok(Heartbeat::Claimed) => tracing::warn!("another node is cleaning up after this one, taken for dead"),
            Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
        }
    }

    async fn sweep(&self) {
        match &self.backend {
            Backend::Memory(state) => {
                let settled = {
                    let mut state = lock(state);
                    let settled = state.settle();
                    state.prune(MEMORY_USERS);
                    settled
                };
                for (user, seq, last_seen) in settled {
                    self.events.send(BackendEvent::user_offline(&user, seq, last_seen));
                }
            }
            Backend::Redis(np) => match np.sweep(|room| self.keeps(room)).await {
                Ok(sweep) => self.report_left(&sweep),
                Err(e) => tracing::warn!(error = %e, "presence sweep failed"),
            },
        }
    }

    /// Writes what is left and, in Redis mode, forgets this node (a drained node's
    /// connections are closed by now).
    pub async fn shutdown(&self) {
        for _ in 0..3 {
            if self.flush().await {
                break;
            }
            tokio::time::sleep(RETRY_DELAY).await;
        }
        if let Backend::Redis(np) = &self.backend
            && let Err(e) = np.leave().await
        {
            tracing::warn!(error = %e, "cannot remove this node from presence; the others will after the ttl");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl MembershipHook for Presence {
    fn registered(&self, member: &Member) {
        self.tally().opened(&member.user);
        self.wake.notify_one();
    }

    fn unregistered(&self, member: &Member) {
        self.tally().closed(&member.user);
        self.wake.notify_one();
    }

    fn entered(&self, room: &RoomName, member: &Member) {
        if self.tracks(room) {
            self.tally().entered(room, &member.user);
            self.wake.notify_one();
        }
    }

    fn exited(&self, room: &RoomName, member: &Member) {
        if self.tracks(room) {
            self.tally().exited(room, &member.user);
            self.wake.notify_one();
        }
    }
}
