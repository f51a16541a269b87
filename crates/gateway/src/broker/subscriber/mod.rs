//! [`Subscriber`]: this node's subscriptions to room channels in Redis.
//!
//! A node subscribes to a room's channel when its first local member joins and unsubscribes
//! a moment (`unsubscribe_delay`) after the last one left. A join holds a [`JoinLease`] from
//! before it subscribes until its member is in the registry, so the channel cannot be dropped
//! under it. A supervisor task PINGs the connection every third of the stall timeout
//! (`redis_stall_timeout`), and counts it lost when a PING goes unanswered for the other two
//! thirds, so a Redis that stops answering without closing the socket (stopped process,
//! `CLIENT PAUSE`, dropped packets) turns the node unready within the timeout. It replaces a lost connection with backoff and jitter, subscribes every
//! room that still needs it again, and has each repaired from history (events published while
//! the subscription was down). With Sentinel, a master switch the sentinels announce replaces
//! the connection too, even while the old one still answers.
//!
//! # Layout
//! - `mod.rs`: joins, releases, supervision and recovery.
//! - `channels.rs`: which channels are wanted, and each room's command lock.
//! - `link.rs`: the subscriber connection and its generations.
//! - `push.rs`: what arrives on it.

mod channels;
mod link;
mod push;

use std::sync::{Arc, Weak};
use std::time::Duration;

use roomcast_proto::RoomName;
use tokio::sync::watch;

use super::BrokerError;
use super::repair::GapRepair;
use crate::config::Config;
use crate::fanout::Fanout;
use channels::ChannelTable;
use link::{Link, SubConn};
use push::Signals;

/// The node's room subscriptions in Redis.
pub(super) struct Subscriber {
    prefix: String,
    fanout: Fanout,
    repair: GapRepair,
    channels: ChannelTable,
    link: Link,
    signals: Arc<Signals>,
    delay: Duration,
    /// A PING unanswered this long after it was due means the connection is lost.
    stall_timeout: Duration,
    /// Counts the sentinels' master switches (Sentinel only): each one replaces the connection,
    /// which may still be open to a demoted master.
    switches: Option<watch::Receiver<u64>>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

/// A join in progress: while it lives the node stays subscribed to the room's channel.
/// Dropping it (the join finished, failed, or its task ended) lets the channel go once the
/// room has no members.
#[derive(Debug)]
pub(super) struct JoinLease {
    subscriber: Arc<Subscriber>,
    room: RoomName,
}

impl Drop for JoinLease {
    fn drop(&mut self) {
        self.subscriber.channels.unpin(&self.room);
        if self.subscriber.fanout.member_count(&self.room) == 0 {
            release_later(&Arc::downgrade(&self.subscriber), &self.room);
        }
    }
}

impl Subscriber {
    /// Connects the subscriber connection and starts its supervisor.
    pub(super) async fn connect(
        config: &Config,
        fanout: Fanout,
        repair: GapRepair,
        switches: Option<watch::Receiver<u64>>,
    ) -> Result<Arc<Self>, BrokerError> {
        let (prefix, delay, stall_timeout) =
            (config.redis_prefix.clone(), config.unsubscribe_delay, config.redis_stall_timeout);
        let signals = Arc::new(Signals::default());
        let this = Arc::new(Self {
            prefix,
            repair,
            channels: ChannelTable::new(),
            link: Link::new(config.broker.clone(), config.redis.clone()),
            signals: Arc::clone(&signals),
            delay,
            stall_timeout,
            switches,
            fanout: fanout.clone(),
        });
        let generation = this.link.next_generation();
        this.link
            .open(generation, push::handler(fanout, signals, generation))
            .await
            .map_err(BrokerError::unavailable)?;
        this.link.set_ready();
        let weak = Arc::downgrade(&this);
        this.fanout.on_empty_room(Box::new(move |room| release_later(&weak, room)));
        tokio::spawn(supervise(Arc::downgrade(&this)));
        Ok(this)
    }

    /// Whether the node is subscribed and delivering.
    pub(super) fn is_ready(&self) -> bool {
        self.link.is_ready()
    }

    /// Makes sure the node is subscribed to `room`, and keeps it so while the lease lives.
    /// Waits only on commands for this room.
    pub(super) async fn begin_join(self: &Arc<Self>, room: &RoomName) -> Result<JoinLease, BrokerError> {
        let lock = self.channels.pin(room);
        // From here a failure unpins by dropping the lease.
        let lease = JoinLease { subscriber: Arc::clone(self), room: room.clone() };
        let mut subscribed_on = lock.lock().await;
        let (generation, conn) = self.link.current()?;
        if *subscribed_on != Some(generation) {
            conn.subscribe(&self.channel(room)).await.map_err(BrokerError::unavailable)?;
            *subscribed_on = Some(generation);
        }
        Ok(lease)
    }

    /// Has `room` repaired from history after its subscription was interrupted (its events
    /// are held meanwhile); a room the node has not delivered anything in needs none.
    fn repair(&self, room: &RoomName) {
        if let Some(cursor) = self.fanout.begin_repair(room) {
            self.repair.request(room, &cursor);
        }
    }

    /// Unsubscribes from `room` if no member and no join in progress needs it.
    async fn unsubscribe_if_unused(&self, room: &RoomName) {
        let Some(lock) = self.channels.lock(room) else { return };
        let mut subscribed_on = lock.lock().await;
        if self.channels.is_pinned(room) || self.fanout.member_count(room) > 0 {
            return;
        }
        if subscribed_on.take().is_some()
            && let Ok((_, conn)) = self.link.current()
            && let Err(e) = conn.unsubscribe(&self.channel(room)).await
        {
            tracing::debug!(%room, error = %e, "unsubscribe failed; the connection will be replaced");
        }
        self.channels.remove_if_unpinned(room, &lock);
    }

    /// Replaces a lost connection: backoff with jitter until Redis answers and every wanted
    /// room is subscribed again, then repairs them all.
    async fn recover(&self) {
        self.link.lose();
        tracing::warn!("lost the Redis subscriber connection; reconnecting");
        let mut backoff = Duration::from_millis(100);
        // A master switch announced during a pause ends the pause: the new master is there.
        let mut switches = self.switches.clone();
        loop {
            let generation = self.link.next_generation();
            let handler = push::handler(self.fanout.clone(), Arc::clone(&self.signals), generation);
            let attempt = match self.link.open(generation, handler).await {
                Ok(conn) => self.resubscribe_all(generation, &conn).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(rooms) => {
                    self.link.set_ready();
                    rooms.iter().for_each(|room| self.repair(room));
                    tracing::info!(rooms = rooms.len(), "Redis subscriber connection restored; rooms resubscribed");
                    return;
                }
                Err(e) => {
                    self.link.lose();
                    let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
                    tracing::debug!(error = %e, retry_ms = (backoff + jitter).as_millis() as u64, "Redis still unavailable");
                    tokio::select! {
                        () = tokio::time::sleep(backoff + jitter) => {}
                        () = next_switch(&mut switches) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Subscribes every wanted room on the connection of `generation` (each under its own
    /// lock, so joins and releases of that room wait for it); returns the rooms.
    async fn resubscribe_all(&self, generation: u64, conn: &SubConn) -> redis::RedisResult<Vec<RoomName>> {
        let mut rooms = Vec::new();
        for room in self.channels.rooms() {
            let Some(lock) = self.channels.lock(&room) else { continue };
            let mut subscribed_on = lock.lock().await;
            if !self.channels.holds(&room, &lock) {
                continue;
            }
            if *subscribed_on != Some(generation) {
                conn.subscribe(&self.channel(&room)).await?;
                *subscribed_on = Some(generation);
            }
            rooms.push(room);
        }
        Ok(rooms)
    }

    /// A slot moved and Redis dropped our subscription: subscribe again where it lives now,
    /// if the room still needs it (redis-rs forgets the channel in this case).
    async fn resubscribe_dropped(&self, channel: &str) {
        let Some(room) = channel.strip_prefix(self.prefix.as_str()).and_then(|r| RoomName::parse(r).ok()) else {
            return;
        };
        let Some(lock) = self.channels.lock(&room) else { return };
        let subscribed_on = lock.lock().await;
        let Ok((generation, conn)) = self.link.current() else { return };
        if *subscribed_on != Some(generation) {
            return;
        }
        match conn.subscribe(channel).await {
            Ok(()) => {
                tracing::info!(%room, "resubscribed after Redis moved the room's slot");
                self.repair(&room);
            }
            Err(e) => tracing::warn!(%room, error = %e, "resubscribe after a slot move failed"),
        }
    }

    fn channel(&self, room: &RoomName) -> String {
        roomcast_publisher::layout::channel(&self.prefix, room.as_str())
    }
}

/// Schedules an unsubscribe check for `room` after the node's delay.
fn release_later(weak: &Weak<Subscriber>, room: &RoomName) {
    let Some(this) = weak.upgrade() else { return };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let room = room.clone();
    runtime.spawn(async move {
        tokio::time::sleep(this.delay).await;
        this.unsubscribe_if_unused(&room).await;
    });
}

/// Resolves at the next master switch; never without Sentinel (or once the watch ended).
async fn next_switch(switches: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = switches
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// Watches the subscriber connection until the node's subscriber is dropped.
async fn supervise(weak: Weak<Subscriber>) {
    let Some((signals, stall, mut switches)) =
        weak.upgrade().map(|this| (Arc::clone(&this.signals), this.stall_timeout, this.switches.clone()))
    else {
        return;
    };
    // Every third of the timeout, and each PING may take the other two thirds: a stall is
    // noticed at most one timeout after the last answer.
    let every = stall / 3;
    let deadline = stall - every;
    let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (probing, switched) = tokio::select! {
            () = signals.changed() => (false, false),
            _ = probe.tick() => (true, false),
            () = next_switch(&mut switches) => (false, true),
        };
        let Some(this) = weak.upgrade() else { return };
        // A reconnect that already reached the new master needs no second one.
        if switched && !this.link.is_on_master().await {
            tracing::warn!("the sentinels moved the Redis master; moving the subscriber connection");
            this.recover().await;
            continue;
        }
        // Only the loss of the connection in use counts: a replaced one reports its end too.
        if let Some(lost) = signals.take_lost()
            && this.link.generation().is_none_or(|current| current <= lost)
        {
            this.recover().await;
            continue;
        }
        for channel in signals.take_dropped() {
            this.resubscribe_dropped(&channel).await;
        }
        if probing {
            let alive = match this.link.current() {
                Ok((_, conn)) => conn.ping(deadline).await.is_ok(),
                Err(_) => false,
            };
            if !alive {
                tracing::warn!(
                    stall_ms = stall.as_millis() as u64,
                    "Redis did not answer the subscriber's PING in time"
                );
                this.recover().await;
            }
        }
    }
}
