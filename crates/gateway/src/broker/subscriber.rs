//! [`Subscriber`]: this node's subscriptions to room channels in Redis.
//!
//! A node subscribes to a room's channel when its first local member joins and unsubscribes
//! a moment (`unsubscribe_delay`) after the last one left, on one dedicated subscriber
//! connection (one per master in a cluster, with `SSUBSCRIBE`, one channel per command).
//! Messages are handled on the connection's own task by a push handler that only decodes and
//! queues into outboxes, so the read loop never waits for a client. Rare control pushes
//! (connection lost, a slot moved away) go to a supervisor task, which also PINGs the
//! connection every [`PROBE_INTERVAL`] to notice a silently dead one, reconnects with backoff
//! and jitter, resubscribes every room that still has members, and has each of them repaired
//! from history (events published while the subscription was down).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, PushKind, RedisResult};
use roomcast_proto::RoomName;
use tokio::sync::mpsc;

use super::BrokerError;
use super::repair::GapRepair;
use crate::config::BrokerConfig;
use crate::fanout::Fanout;

/// How often an idle subscriber connection is probed with PING.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a probe or a (un)subscribe may take before the connection counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
const SHARDS: usize = 64;

/// The dedicated subscriber connection.
#[derive(Clone)]
enum SubConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl SubConn {
    async fn subscribe(&self, channel: &str) -> RedisResult<()> {
        match self.clone() {
            SubConn::Single(mut c) => c.subscribe(channel).await,
            SubConn::Cluster(mut c) => c.ssubscribe(channel).await,
        }
    }

    async fn unsubscribe(&self, channel: &str) -> RedisResult<()> {
        match self.clone() {
            SubConn::Single(mut c) => c.unsubscribe(channel).await,
            SubConn::Cluster(mut c) => c.sunsubscribe(channel).await,
        }
    }

    async fn ping(&self) -> RedisResult<String> {
        match self.clone() {
            SubConn::Single(mut c) => redis::cmd("PING").query_async(&mut c).await,
            SubConn::Cluster(mut c) => redis::cmd("PING").query_async(&mut c).await,
        }
    }
}

#[derive(Debug, Default)]
struct Channel {
    /// Joins in progress: the channel must stay subscribed until they are in the registry.
    pending: usize,
    subscribed: bool,
}

#[derive(Debug)]
enum Control {
    Lost,
    Unsubscribed(String),
}

/// The node's room subscriptions in Redis.
pub struct Subscriber {
    target: BrokerConfig,
    prefix: String,
    fanout: Fanout,
    repair: GapRepair,
    control: mpsc::UnboundedSender<Control>,
    conn: RwLock<Option<SubConn>>,
    // Async mutexes: each is held across the (un)subscribe round trip of its rooms, so the
    // commands for one room reach Redis in the order the node decided them.
    channels: Box<[tokio::sync::Mutex<HashMap<RoomName, Channel>>]>,
    hasher: RandomState,
    ready: AtomicBool,
    delay: Duration,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Connects the subscriber connection and starts its supervisor.
    pub async fn connect(
        target: BrokerConfig,
        prefix: String,
        fanout: Fanout,
        repair: GapRepair,
        delay: Duration,
    ) -> Result<Arc<Self>, BrokerError> {
        let (control, control_rx) = mpsc::unbounded_channel();
        let this = Arc::new(Self {
            target,
            prefix,
            fanout,
            repair,
            control,
            conn: RwLock::new(None),
            channels: (0..SHARDS).map(|_| tokio::sync::Mutex::default()).collect(),
            hasher: RandomState::new(),
            ready: AtomicBool::new(false),
            delay,
        });
        let conn = this.open().await.map_err(unavailable)?;
        *this.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        this.ready.store(true, Ordering::Release);
        let weak = Arc::downgrade(&this);
        this.fanout.registry().on_empty_room(Box::new(move |room| release_later(&weak, room)));
        tokio::spawn(supervise(Arc::downgrade(&this), control_rx));
        Ok(this)
    }

    /// Whether the node is subscribed and delivering.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Has `room` repaired from history after its subscription was interrupted (its events
    /// are held meanwhile); a room the node has not delivered anything in needs none.
    fn repair(&self, room: &RoomName) {
        if let Some(cursor) = self.fanout.registry().begin_repair(room) {
            self.repair.request(room, &cursor);
        }
    }

    /// Makes sure the node is subscribed to `room` and keeps it so until [`Self::settle`].
    pub async fn acquire(&self, room: &RoomName) -> Result<(), BrokerError> {
        let mut shard = self.shard(room).lock().await;
        let channel = shard.entry(room.clone()).or_default();
        channel.pending += 1;
        if !channel.subscribed {
            let subscribed = match self.current() {
                Some(conn) => timeout(conn.subscribe(&self.channel(room))).await,
                None => Err(unavailable("not connected to Redis")),
            };
            if let Err(e) = subscribed {
                channel.pending -= 1;
                if channel.pending == 0 {
                    shard.remove(room);
                }
                return Err(e);
            }
            channel.subscribed = true;
        }
        Ok(())
    }

    /// Ends a join started with [`Self::acquire`] (whether it added a member or not).
    pub async fn settle(self: &Arc<Self>, room: &RoomName) {
        let mut shard = self.shard(room).lock().await;
        if let Some(channel) = shard.get_mut(room) {
            channel.pending = channel.pending.saturating_sub(1);
        }
        drop(shard);
        if self.fanout.registry().member_count(room) == 0 {
            release_later(&Arc::downgrade(self), room);
        }
    }

    /// Unsubscribes from `room` if no member and no join in progress needs it.
    async fn release(&self, room: &RoomName) {
        let mut shard = self.shard(room).lock().await;
        let Some(channel) = shard.get(room) else { return };
        if channel.pending > 0 || self.fanout.registry().member_count(room) > 0 {
            return;
        }
        let was_subscribed = channel.subscribed;
        shard.remove(room);
        if was_subscribed
            && let Some(conn) = self.current()
            && let Err(e) = timeout(conn.unsubscribe(&self.channel(room))).await
        {
            tracing::debug!(%room, error = %e, "unsubscribe failed; the connection will be replaced");
        }
    }

    /// Every room the node must stay subscribed to.
    async fn wanted(&self) -> Vec<RoomName> {
        let mut rooms = Vec::new();
        for shard in &self.channels {
            rooms.extend(shard.lock().await.keys().cloned());
        }
        rooms
    }

    async fn open(&self) -> RedisResult<SubConn> {
        let handler = push_handler(self.fanout.clone(), self.control.clone());
        match &self.target {
            BrokerConfig::Cluster(seeds) => {
                let client = redis::cluster::ClusterClientBuilder::new(seeds.iter().map(|s| resp3_url(s)))
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(handler)
                    .connection_timeout(COMMAND_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .build()?;
                Ok(SubConn::Cluster(client.get_async_connection().await?))
            }
            BrokerConfig::Redis(url) => {
                let client = redis::Client::open(resp3_url(url))?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_push_sender(handler)
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT));
                Ok(SubConn::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            BrokerConfig::Embedded => Err(redis::RedisError::from((redis::ErrorKind::Client, "no Redis configured"))),
        }
    }

    /// Replaces a lost connection: backoff with jitter until Redis answers and every wanted
    /// room is subscribed again.
    async fn recover(&self) {
        self.ready.store(false, Ordering::Release);
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::warn!("lost the Redis subscriber connection; reconnecting");
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                let conn = self.open().await?;
                let rooms = self.wanted().await;
                for room in &rooms {
                    timeout_redis(conn.subscribe(&self.channel(room))).await?;
                }
                RedisResult::Ok((conn, rooms))
            };
            match attempt.await {
                Ok((conn, rooms)) => {
                    *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
                    rooms.iter().for_each(|room| self.repair(room));
                    self.ready.store(true, Ordering::Release);
                    tracing::info!(rooms = rooms.len(), "Redis subscriber connection restored; rooms resubscribed");
                    return;
                }
                Err(e) => {
                    let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
                    tracing::debug!(error = %e, retry_ms = (backoff + jitter).as_millis() as u64, "Redis still unavailable");
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// A slot moved and Redis dropped our subscription: subscribe again where it lives now,
    /// if the room still has members here (redis-rs forgets the channel in this case).
    async fn resubscribe(&self, channel_name: &str) {
        let Some(room) = channel_name.strip_prefix(self.prefix.as_str()).and_then(|r| RoomName::parse(r).ok()) else {
            return;
        };
        let shard = self.shard(&room).lock().await;
        if !shard.get(&room).is_some_and(|c| c.subscribed) {
            return;
        }
        if let Some(conn) = self.current() {
            match timeout(conn.subscribe(channel_name)).await {
                Ok(()) => {
                    tracing::info!(%room, "resubscribed after Redis moved the room's slot");
                    self.repair(&room);
                }
                Err(e) => tracing::warn!(%room, error = %e, "resubscribe after a slot move failed"),
            }
        }
    }

    fn current(&self) -> Option<SubConn> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn shard(&self, room: &RoomName) -> &tokio::sync::Mutex<HashMap<RoomName, Channel>> {
        &self.channels[self.hasher.hash_one(room) as usize % SHARDS]
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
        this.release(&room).await;
    });
}

async fn supervise(weak: Weak<Subscriber>, mut control: mpsc::UnboundedReceiver<Control>) {
    let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + PROBE_INTERVAL, PROBE_INTERVAL);
    loop {
        let event = tokio::select! {
            event = control.recv() => event,
            _ = probe.tick() => None,
        };
        let Some(this) = weak.upgrade() else { return };
        match event {
            Some(Control::Lost) => this.recover().await,
            Some(Control::Unsubscribed(channel)) => this.resubscribe(&channel).await,
            None => {
                let alive = match this.current() {
                    Some(conn) => timeout(conn.ping()).await.is_ok(),
                    None => false,
                };
                if !alive {
                    this.recover().await;
                }
            }
        }
    }
}

/// Handles pushes on the connection's task: messages are delivered at once (decoding and
/// queueing never wait), everything else goes to the supervisor.
fn push_handler(
    fanout: Fanout,
    control: mpsc::UnboundedSender<Control>,
) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    move |push: PushInfo| {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(redis::Value::BulkString(payload)) = push.data.get(1) {
                    fanout.envelope(payload, Instant::now());
                }
            }
            PushKind::Disconnection => {
                let _ = control.send(Control::Lost);
            }
            PushKind::SUnsubscribe => {
                if let Some(redis::Value::BulkString(channel)) = push.data.first() {
                    let _ = control.send(Control::Unsubscribed(String::from_utf8_lossy(channel).into_owned()));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn timeout<T>(call: impl Future<Output = RedisResult<T>>) -> Result<T, BrokerError> {
    timeout_redis(call).await.map_err(unavailable)
}

async fn timeout_redis<T>(call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))),
    }
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

/// The URL with `protocol=resp3`, which subscribing on a multiplexed connection needs.
fn resp3_url(url: &str) -> String {
    let url = if url.contains("://") { url.to_owned() } else { format!("redis://{url}") };
    if url.contains("protocol=") {
        url
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else if url.trim_start_matches("redis://").trim_start_matches("rediss://").contains('/') {
        format!("{url}?protocol=resp3")
    } else {
        format!("{url}/?protocol=resp3")
    }
}
