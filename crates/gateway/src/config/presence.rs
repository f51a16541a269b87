//! [`PresenceConfig`] and [`EventsConfig`]: who is where, and what the backend hears back.

use std::time::Duration;

use super::ConfigError;
use super::values::Settings;

/// Room name prefixes a feature is on for (`dialog:`, or `*` for every room).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPrefixes(Vec<String>);

impl RoomPrefixes {
    /// Prefixes from settings; `*` stands for every room.
    pub fn new(prefixes: Vec<String>) -> Self {
        Self(prefixes)
    }

    /// Whether `room` starts with one of the prefixes.
    pub fn matches(&self, room: &str) -> bool {
        self.0.iter().any(|p| p == "*" || room.starts_with(p.as_str()))
    }

    /// Whether no room matches.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Presence in rooms and online status.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// Whether the node keeps presence and online status at all; off, it writes nothing for
    /// them and makes no `user_online` / `user_offline` / `subscribed` / `unsubscribed`.
    /// Default: on.
    pub enabled: bool,
    /// Rooms that keep presence (who is there, `join`/`leave` frames). Default: `dialog:`.
    pub rooms: RoomPrefixes,
    /// A node whose heartbeat is older than this is taken for dead, and its connections leave
    /// every room and user count. Default: 10 s (heartbeats every fifth of it).
    pub ttl: Duration,
    /// How long a user with no connection left stays online before `user_offline`, so that a
    /// reconnect or a move to another node is no flap. Default: 10 s.
    pub offline_grace: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rooms: RoomPrefixes::new(vec!["dialog:".to_owned()]),
            ttl: Duration::from_secs(10),
            offline_grace: Duration::from_secs(10),
        }
    }
}

/// Events to the backend and their sinks.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Rooms whose `subscribed` / `unsubscribed` are reported (a user's first connection in
    /// the room anywhere, and the last one). Default: none.
    pub subscription_rooms: RoomPrefixes,
    /// Client `emit` names reported to the backend (allowed to clients even when not in
    /// `emit_events`, and relayed to the room only when in it). Default: none.
    pub reported_emits: Vec<String>,
    /// Rooms where clients' `ack`s become `delivered` receipts. Default: none.
    pub receipt_rooms: RoomPrefixes,
    /// Receipts of one user in one room within this window are one `delivered`. Default: 1 s.
    pub receipt_window: Duration,
    /// Whether events go to the Redis Stream `<prefix>roomcast:events`. Default: off.
    pub stream: bool,
    /// Approximate length the stream is trimmed to. Default: 100,000.
    pub stream_len: u64,
    /// URL webhooks are POSTed to (`http://`). Default: none.
    pub webhook_url: Option<String>,
    /// Key of the `X-Roomcast-Signature` HMAC-SHA256; required with a webhook URL.
    pub webhook_secret: Option<String>,
    /// Most events in one webhook POST. Default: 100.
    pub webhook_batch: usize,
    /// Events a node holds for the webhook (embedded broker); when full the oldest are dropped
    /// and counted. Default: 10,000.
    pub webhook_queue: usize,
    /// How long one webhook POST may take. Default: 5 s.
    pub webhook_timeout: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            subscription_rooms: RoomPrefixes::default(),
            reported_emits: Vec::new(),
            receipt_rooms: RoomPrefixes::default(),
            receipt_window: Duration::from_secs(1),
            stream: false,
            stream_len: 100_000,
            webhook_url: None,
            webhook_secret: None,
            webhook_batch: 100,
            webhook_queue: 10_000,
            webhook_timeout: Duration::from_secs(5),
        }
    }
}

impl EventsConfig {
    /// Whether any event goes anywhere.
    pub fn enabled(&self) -> bool {
        self.stream || self.webhook_url.is_some()
    }
}

/// Reads the presence settings.
pub(super) fn load_presence(s: &mut Settings<'_>, c: &mut PresenceConfig) -> Result<(), ConfigError> {
    s.set(&mut c.enabled, "presence")?;
    if let Some(rooms) = s.get::<Vec<String>>("presence_rooms")? {
        c.rooms = RoomPrefixes::new(rooms);
    }
    s.set(&mut c.ttl, "presence_ttl")?;
    s.set(&mut c.offline_grace, "offline_grace")?;
    if c.ttl < Duration::from_secs(1) {
        return Err(s.error("presence_ttl", "must be at least 1s (heartbeats go out every fifth of it)"));
    }
    Ok(())
}

/// Reads the event settings; `redis` says whether a Redis is configured.
pub(super) fn load_events(s: &mut Settings<'_>, c: &mut EventsConfig, redis: bool) -> Result<(), ConfigError> {
    if let Some(rooms) = s.get::<Vec<String>>("subscription_events")? {
        c.subscription_rooms = RoomPrefixes::new(rooms);
    }
    s.set(&mut c.reported_emits, "reported_emits")?;
    if let Some(rooms) = s.get::<Vec<String>>("receipt_rooms")? {
        c.receipt_rooms = RoomPrefixes::new(rooms);
    }
    s.set(&mut c.receipt_window, "receipt_window")?;
    s.set(&mut c.stream, "events_stream")?;
    s.set(&mut c.stream_len, "events_stream_len")?;
    c.webhook_url = s.get::<String>("webhook_url")?.filter(|u| !u.is_empty());
    c.webhook_secret = s.get::<String>("webhook_secret")?.filter(|u| !u.is_empty());
    s.set(&mut c.webhook_batch, "webhook_batch")?;
    s.set(&mut c.webhook_queue, "webhook_queue")?;
    s.set(&mut c.webhook_timeout, "webhook_timeout")?;
    if c.stream && !redis {
        return Err(s.error("events_stream", "needs Redis (ROOMCAST_REDIS_URL or ROOMCAST_REDIS_CLUSTER)"));
    }
    if c.stream_len == 0 {
        return Err(s.error("events_stream_len", "must be more than zero"));
    }
    if let Some(url) = &c.webhook_url {
        if !url.starts_with("http://") {
            return Err(s.error("webhook_url", &format!("expected http://host[:port]/path, got {url:?}")));
        }
        if url.parse::<hyper::Uri>().is_err() {
            return Err(s.error("webhook_url", &format!("{url:?} is not a URL")));
        }
        if c.webhook_secret.is_none() {
            return Err(s.error("webhook_secret", "required with ROOMCAST_WEBHOOK_URL (it signs every POST)"));
        }
    }
    if c.webhook_batch == 0 || c.webhook_queue == 0 {
        return Err(s.error("webhook_batch", "webhook_batch and webhook_queue must be more than zero"));
    }
    if c.receipt_window.is_zero() || c.webhook_timeout.is_zero() {
        return Err(s.error("receipt_window", "receipt_window and webhook_timeout must be more than zero"));
    }
    if let Some(bad) = c.reported_emits.iter().find(|e| e.is_empty()) {
        return Err(s.error("reported_emits", &format!("has an empty event name {bad:?}")));
    }
    Ok(())
}
