//! Node configuration: a TOML file and `ROOMCAST_*` environment variables that override it.
//!
//! Every setting has one name: `ping_interval` in the file is `ROOMCAST_PING_INTERVAL` in the
//! environment. A missing, malformed, unknown or contradictory setting stops start-up with one
//! [`ConfigError`] line that names it.

mod presence;
mod redis;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use presence::{EventsConfig, PresenceConfig, RoomPrefixes};
use roomcast_publisher::{RedisOptions, Retention, layout};
use values::Settings;
pub use values::parse_duration;

use crate::origin::AllowedOrigins;
use crate::socketio::events::EventTable;

/// A setting that stops start-up, with the setting's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// The setting as the user wrote it (`ROOMCAST_X` or `x in FILE`).
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where connection and subscription tokens are verified from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256, ES256 or EdDSA with a PEM public key read from this path.
    PublicKey(PathBuf),
}

/// Which broker carries events between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerConfig {
    /// In-process: one node alone.
    Embedded,
    /// One Redis (`ROOMCAST_REDIS_URL`).
    Redis(String),
    /// A Redis Cluster from its seed nodes (`ROOMCAST_REDIS_CLUSTER`); sharded pub/sub.
    Cluster(Vec<String>),
    /// The master a Sentinel group names (`ROOMCAST_REDIS_SENTINELS`,
    /// `ROOMCAST_REDIS_SENTINEL_MASTER`), followed through failovers.
    Sentinel {
        /// Sentinel addresses.
        sentinels: Vec<String>,
        /// The group's name.
        master: String,
    },
}

/// Token verification settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The key tokens are signed with.
    pub key: JwtKey,
    /// Algorithm to pin for a public key (`RS256`, `ES256`, `EdDSA`); derived from the key when unset.
    pub algorithm: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock-skew leeway for `exp`, at connect and during the session. Default: 5 s.
    pub leeway: Duration,
}

/// Everything a node needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address for WebSocket, API, health and metrics. Default: `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where other nodes reach this one, to forward Socket.IO requests for its sessions
    /// (Redis mode). Default: the listen address, unless it is every address (`0.0.0.0`).
    pub advertise: Option<SocketAddr>,
    /// Name of this node in logs and `connected`. Default: host name + pid.
    pub node_id: String,
    /// Token verification.
    pub jwt: JwtConfig,
    /// The broker: embedded unless a Redis URL or cluster is set.
    pub broker: BrokerConfig,
    /// TLS material and credentials for the Redis connections (`redis_tls_*`,
    /// `redis_username`, `redis_password`).
    pub redis: RedisOptions,
    /// Prefix of every Redis channel (and hash tag of every key). Default: none.
    pub redis_prefix: String,
    /// A Redis whose subscriber connection answers no PING for this long is taken as lost
    /// (`/readyz` 503, `roomcast_broker_up` 0, reconnect and repair). Default: 3 s.
    pub redis_stall_timeout: Duration,
    /// How long a node stays subscribed to a room's channel after its last local member left,
    /// so that churn does not hammer Redis. Default: 1 s.
    pub unsubscribe_delay: Duration,
    /// What each room keeps for recovery and deduplication: `history_size`, `history_ttl` and
    /// `dedup_window`, with the publisher crate's defaults (which are the gateway's).
    pub retention: Retention,
    /// Bearer key for `/api/*`; the API answers 401 while unset.
    pub api_key: Option<String>,
    /// Interval of server pings. Default: 25 s.
    pub ping_interval: Duration,
    /// A connection from which nothing arrives for this long is closed. Default: 60 s.
    pub idle_timeout: Duration,
    /// Time allowed for the `auth` frame when the upgrade carried no token. Default: 5 s.
    pub auth_timeout: Duration,
    /// Largest client message after reassembly, in bytes; over it, close 4009. Default: 64 KiB.
    pub max_message_size: usize,
    /// Bytes of frames queued per connection; over it, close 4008. Default: 1 MiB.
    pub send_queue_size: usize,
    /// Events clients may `emit`. Default: `typing:start`, `typing:stop`.
    pub emit_events: Vec<String>,
    /// Socket.IO client events that are roomcast commands. Default: the seed app's
    /// `subscribe:chat`, `unsubscribe:chat`, `typing:start`, `typing:stop` (on `dialog:{chatId}`).
    pub socketio_events: EventTable,
    /// Sustained `emit` rate per connection, per second. Default: 20.
    pub emit_rate: f64,
    /// `emit` burst per connection. Default: 40.
    pub emit_burst: u32,
    /// Rooms one connection may be in. Default: 256.
    pub max_rooms_per_connection: usize,
    /// Connections this node accepts; over it, close 4029. Default: 100,000.
    pub max_connections: usize,
    /// Largest publish API request body, in bytes. Default: 1 MiB.
    pub max_api_body: usize,
    /// Deepest nesting of arrays and objects in a client frame or API body, the frame itself
    /// counting as one level; deeper gets `bad_request` / 400. Default: 64.
    pub max_json_depth: usize,
    /// Time a client has to send a request's head (request line and headers), counted from the
    /// accept, or from the end of the previous request on a kept-alive connection; over it the
    /// connection is closed. Default: 10 s.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body once its head arrived; over it, 408.
    /// Default: 10 s.
    pub body_read_timeout: Duration,
    /// Window over which shutdown spreads its 1012 closes. Default: 10 s.
    pub drain_window: Duration,
    /// Log format. Default: text.
    pub log_format: LogFormat,
    /// Browser origins allowed to open a WebSocket; others get 403 before the upgrade.
    /// Requests without `Origin` (non-browser clients) are always allowed. Default: any origin.
    pub allowed_origins: AllowedOrigins,
    /// Presence in rooms and online status.
    pub presence: PresenceConfig,
    /// Events to the backend (stream, webhooks) and delivery receipts.
    pub events: EventsConfig,
}

impl Config {
    /// A configuration with every default and the given HS256 secret (for tests and tools).
    pub fn with_secret(secret: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            advertise: None,
            node_id: default_node_id(),
            jwt: JwtConfig {
                key: JwtKey::Secret(secret.to_owned()),
                algorithm: None,
                issuer: None,
                audience: None,
                leeway: Duration::from_secs(5),
            },
            broker: BrokerConfig::Embedded,
            redis: RedisOptions::default(),
            redis_prefix: String::new(),
            redis_stall_timeout: Duration::from_secs(3),
            unsubscribe_delay: Duration::from_secs(1),
            retention: Retention::default(),
            api_key: None,
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            auth_timeout: Duration::from_secs(5),
            max_message_size: 64 * 1024,
            send_queue_size: 1024 * 1024,
            emit_events: vec!["typing:start".to_owned(), "typing:stop".to_owned()],
            socketio_events: EventTable::defaults(),
            emit_rate: 20.0,
            emit_burst: 40,
            max_rooms_per_connection: 256,
            max_connections: 100_000,
            max_api_body: 1024 * 1024,
            max_json_depth: 64,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            drain_window: Duration::from_secs(10),
            log_format: LogFormat::Text,
            allowed_origins: AllowedOrigins::any(),
            presence: PresenceConfig::default(),
            events: EventsConfig::default(),
        }
    }

    /// Reads the optional TOML `file`, then the environment through `env`, and checks the result.
    pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Settings::open(file, env)?;
        let mut c = Self::with_secret("");

        redis::load(&mut s, &mut c)?;
        s.set(&mut c.redis_prefix, "redis_prefix")?;
        layout::check_prefix(&c.redis_prefix).map_err(|m| s.error("redis_prefix", &m))?;
        s.set(&mut c.redis_stall_timeout, "redis_stall_timeout")?;
        s.set(&mut c.unsubscribe_delay, "unsubscribe_delay")?;
        s.set(&mut c.retention.history_size, "history_size")?;
        s.set(&mut c.retention.history_ttl, "history_ttl")?;
        s.set(&mut c.retention.dedup_window, "dedup_window")?;
        let secret = s.get::<String>("jwt_secret")?;
        let public_key = s.get::<PathBuf>("jwt_public_key")?;
        c.jwt.key = match (secret, public_key) {
            (Some(_), Some(_)) => {
                return Err(s.error("jwt_secret", "both a JWT secret and ROOMCAST_JWT_PUBLIC_KEY are set; set one"));
            }
            (Some(secret), None) if secret.is_empty() => {
                return Err(s.error("jwt_secret", "is empty"));
            }
            (Some(secret), None) => JwtKey::Secret(secret),
            (None, Some(path)) => JwtKey::PublicKey(path),
            (None, None) => {
                return Err(s.error("jwt_secret", "required (or set ROOMCAST_JWT_PUBLIC_KEY)"));
            }
        };
        c.jwt.algorithm = s.get("jwt_algorithm")?;
        if c.jwt.algorithm.is_some() && matches!(c.jwt.key, JwtKey::Secret(_)) {
            return Err(
                s.error("jwt_algorithm", "applies to ROOMCAST_JWT_PUBLIC_KEY only; a secret always means HS256")
            );
        }
        c.jwt.issuer = s.get("jwt_issuer")?;
        c.jwt.audience = s.get("jwt_audience")?;
        s.set(&mut c.jwt.leeway, "jwt_leeway")?;
        s.set(&mut c.listen, "listen")?;
        c.advertise = s.get("advertise")?;
        s.set(&mut c.node_id, "node_id")?;
        c.api_key = s.get("api_key")?;
        s.set(&mut c.ping_interval, "ping_interval")?;
        s.set(&mut c.idle_timeout, "idle_timeout")?;
        s.set(&mut c.auth_timeout, "auth_timeout")?;
        s.set_size(&mut c.max_message_size, "max_message_size")?;
        s.set_size(&mut c.send_queue_size, "send_queue_size")?;
        s.set(&mut c.emit_events, "emit_events")?;
        if let Some(entries) = s.get::<Vec<String>>("socketio_events")? {
            c.socketio_events = EventTable::parse(&entries).map_err(|m| s.error("socketio_events", &m))?;
        }
        s.set(&mut c.emit_rate, "emit_rate")?;
        s.set(&mut c.emit_burst, "emit_burst")?;
        s.set(&mut c.max_rooms_per_connection, "max_rooms_per_connection")?;
        s.set(&mut c.max_connections, "max_connections")?;
        s.set_size(&mut c.max_api_body, "max_api_body")?;
        s.set(&mut c.max_json_depth, "max_json_depth")?;
        s.set(&mut c.header_read_timeout, "header_read_timeout")?;
        s.set(&mut c.body_read_timeout, "body_read_timeout")?;
        s.set(&mut c.drain_window, "drain_window")?;
        if let Some(format) = s.get::<String>("log_format")? {
            c.log_format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(s.error("log_format", &format!("expected text or json, got {format:?}")));
                }
            };
        }
        if let Some(entries) = s.get::<Vec<String>>("allowed_origins")? {
            c.allowed_origins = AllowedOrigins::parse(&entries).map_err(|m| s.error("allowed_origins", &m))?;
        }
        presence::load_presence(&mut s, &mut c.presence)?;
        let redis = !matches!(c.broker, BrokerConfig::Embedded);
        presence::load_events(&mut s, &mut c.events, redis)?;
        s.finish()?;
        c.check(&s)?;
        Ok(c)
    }

    fn check(&self, s: &Settings<'_>) -> Result<(), ConfigError> {
        let positive = [
            ("history_ttl", self.retention.history_ttl),
            ("dedup_window", self.retention.dedup_window),
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
            ("auth_timeout", self.auth_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(s.error(key, "must be more than zero"));
            }
        }
        if self.idle_timeout <= self.ping_interval {
            return Err(
                s.error("idle_timeout", "must be longer than ping_interval, or every client times out between pings")
            );
        }
        if self.redis_stall_timeout < Duration::from_millis(300) {
            return Err(s.error("redis_stall_timeout", "must be at least 300ms"));
        }
        if self.node_id.is_empty() || self.node_id.chars().any(char::is_whitespace) {
            return Err(s.error("node_id", "must be non-empty and without spaces"));
        }
        if self.max_message_size < 1024 {
            return Err(s.error("max_message_size", "must be at least 1KiB"));
        }
        if self.send_queue_size < 1024 {
            return Err(s.error("send_queue_size", "must be at least 1KiB"));
        }
        if !(self.emit_rate > 0.0 && self.emit_rate.is_finite()) || self.emit_burst == 0 {
            return Err(s.error("emit_rate", "emit_rate and emit_burst must be more than zero"));
        }
        if self.max_rooms_per_connection < 2 {
            return Err(
                s.error("max_rooms_per_connection", "must be at least 2 (user: and org: rooms are joined at connect)")
            );
        }
        if self.max_json_depth < 2 {
            return Err(s.error("max_json_depth", "must be at least 2 (a frame, and an object or array in its data)"));
        }
        if self.max_connections == 0 {
            return Err(s.error("max_connections", "must be more than zero"));
        }
        if let Some(bad) = self.emit_events.iter().find(|e| e.is_empty()) {
            return Err(s.error("emit_events", &format!("has an empty event name {bad:?}")));
        }
        Ok(())
    }
}

/// Host name and process id, so that two nodes on one host differ.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests;
