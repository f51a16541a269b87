//! [`SessionStore`]: small values the Socket.IO face shares between nodes, with an expiry: a
//! session's record between its connections (`<prefix>roomcast:sio:<pid>`), so that any node
//! can restore it, and each node's address (`<prefix>roomcast:node:<tag>`), so that a request
//! for a session can be forwarded to the node holding it. In memory on the embedded broker (one
//! node), in Redis otherwise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::cluster_async::ClusterConnection;
use roomcast_publisher::{MasterAt, MasterConnection, Sentinels};

use crate::broker::BrokerError;
use crate::config::{BrokerConfig, Config};

/// How long a store call may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Shared values with expiries.
pub enum SessionStore {
    /// One node: a map with expiries.
    Memory(Mutex<Expiring>),
    /// One Redis (and the key prefix).
    Redis(MasterConnection, String),
    /// A Redis Cluster (and the key prefix).
    Cluster(ClusterConnection, String),
}

/// A map whose values expire; expired ones are swept whenever the map has doubled since the
/// last sweep, so a save costs O(1) amortized (a sweep per save made 10k connects quadratic).
#[derive(Debug, Default)]
pub struct Expiring {
    map: HashMap<String, (Instant, Vec<u8>)>,
    sweep_at: usize,
}

impl Expiring {
    fn insert(&mut self, key: String, until: Instant, value: Vec<u8>) {
        if self.map.len() >= self.sweep_at {
            let now = Instant::now();
            self.map.retain(|_, (until, _)| *until > now);
            self.sweep_at = (self.map.len() * 2).max(1024);
        }
        self.map.insert(key, (until, value));
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.get(key).filter(|(until, _)| *until > Instant::now()).map(|(_, value)| value.clone())
    }
}

/// What a key names.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A Socket.IO session's record, by pid.
    Session,
    /// A node's address, by node tag.
    Node,
}

impl Kind {
    fn part(self) -> &'static str {
        match self {
            Kind::Session => "roomcast:sio:",
            Kind::Node => "roomcast:node:",
        }
    }
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionStore::Memory(_) => "SessionStore::Memory",
            SessionStore::Redis(..) => "SessionStore::Redis",
            SessionStore::Cluster(..) => "SessionStore::Cluster",
        })
    }
}

impl SessionStore {
    /// The store for `config`'s broker.
    pub async fn connect(config: &Config) -> Result<Self, BrokerError> {
        let prefix = config.redis_prefix.clone();
        Ok(match &config.broker {
            BrokerConfig::Embedded => SessionStore::Memory(Mutex::default()),
            BrokerConfig::Redis(url) => {
                let at = MasterAt::Url(url.clone());
                let conn =
                    MasterConnection::connect_plain(at, &config.redis).await.map_err(BrokerError::unavailable)?;
                SessionStore::Redis(conn, prefix)
            }
            BrokerConfig::Sentinel { sentinels, master } => {
                let sentinels = Sentinels::new(sentinels, master, &config.redis).map_err(BrokerError::unavailable)?;
                let conn = MasterConnection::connect_plain(MasterAt::Sentinel(sentinels), &config.redis)
                    .await
                    .map_err(BrokerError::unavailable)?;
                SessionStore::Redis(conn, prefix)
            }
            BrokerConfig::Cluster(seeds) => {
                let client = roomcast_publisher::cluster_builder(seeds, &config.redis)
                    .map_err(BrokerError::unavailable)?
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .build()
                    .map_err(BrokerError::unavailable)?;
                SessionStore::Cluster(client.get_async_connection().await.map_err(BrokerError::unavailable)?, prefix)
            }
        })
    }

    /// Whether values are shared between nodes (Redis) or this node's alone.
    pub fn is_shared(&self) -> bool {
        !matches!(self, SessionStore::Memory(_))
    }

    /// Keeps `value` under `name` for `ttl`; a failure is logged (a record then cannot be
    /// restored and the client gets a new session; a node address is written again soon).
    pub async fn save(&self, kind: Kind, name: &str, value: Vec<u8>, ttl: Duration) {
        let key = format!("{}{name}", kind.part());

        let millis = (ttl.as_millis() as u64).max(1);
        let result = match self {
            SessionStore::Memory(map) => {
                map.lock().unwrap_or_else(|e| e.into_inner()).insert(key, Instant::now() + ttl, value);
                Ok(())
            }
            SessionStore::Redis(conn, prefix) => {
                let cmd =
                    redis::cmd("SET").arg(format!("{prefix}{key}")).arg(value.clone()).arg("PX").arg(millis).clone();
                query::<()>(cmd.query_async(&mut conn.clone())).await
            }
            SessionStore::Cluster(conn, prefix) => {
                let cmd =
                    redis::cmd("SET").arg(format!("{prefix}{key}")).arg(value.clone()).arg("PX").arg(millis).clone();
                query::<()>(cmd.query_async(&mut conn.clone())).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(key = kind.part(), error = %e, "cannot save a shared value");
        }
    }

    /// The value under `name`, if it is still kept.
    pub async fn load(&self, kind: Kind, name: &str) -> Option<Vec<u8>> {
        let key = &format!("{}{name}", kind.part());
        let result = match self {
            SessionStore::Memory(map) => {
                return map.lock().unwrap_or_else(|e| e.into_inner()).get(key);
            }
            SessionStore::Redis(conn, prefix) => {
                query::<Option<Vec<u8>>>(redis::cmd("GET").arg(format!("{prefix}{key}")).query_async(&mut conn.clone()))
                    .await
            }
            SessionStore::Cluster(conn, prefix) => {
                query::<Option<Vec<u8>>>(redis::cmd("GET").arg(format!("{prefix}{key}")).query_async(&mut conn.clone()))
                    .await
            }
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(key = kind.part(), error = %e, "cannot read a shared value");
            None
        })
    }
}

async fn query<T>(call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_values_are_not_returned_and_are_swept_as_the_map_grows() {
        let mut store = Expiring::default();
        let past = Instant::now() - Duration::from_secs(1);
        let future = Instant::now() + Duration::from_secs(60);
        store.insert("old".into(), past, b"x".to_vec());
        assert_eq!(store.get("old"), None);
        for i in 0..2000 {
            store.insert(format!("k{i}"), if i < 1000 { past } else { future }, Vec::new());
        }
        // The sweeps kept the map to the live values and those since the last sweep.
        assert!(store.map.len() < 2000, "{}", store.map.len());
        assert_eq!(store.get("k1999"), Some(Vec::new()));
    }
}
