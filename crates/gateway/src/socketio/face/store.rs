//! [`SessionStore`]: where a Socket.IO session's record lives between its connections, so that
//! any node can restore it: in memory on the embedded broker, in Redis otherwise (one key per
//! session, `<prefix>roomcast:sio:<pid>`, expiring when the session has been gone long enough
//! that history could not cover it anyway).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use roomcast_publisher::resp3_url;

use crate::broker::BrokerError;
use crate::config::{BrokerConfig, Config};

/// How long a store call may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Session records, by pid.
pub enum SessionStore {
    /// One node: a map with expiries.
    Memory(Mutex<HashMap<String, (Instant, Vec<u8>)>>),
    /// One Redis.
    Redis(ConnectionManager, String),
    /// A Redis Cluster.
    Cluster(ClusterConnection, String),
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
        let prefix = format!("{}roomcast:sio:", config.redis_prefix);
        Ok(match &config.broker {
            BrokerConfig::Embedded => SessionStore::Memory(Mutex::default()),
            BrokerConfig::Redis(url) => {
                let client = redis::Client::open(url.as_str()).map_err(BrokerError::unavailable)?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT));
                let conn =
                    ConnectionManager::new_with_config(client, config).await.map_err(BrokerError::unavailable)?;
                SessionStore::Redis(conn, prefix)
            }
            BrokerConfig::Cluster(seeds) => {
                let client = redis::cluster::ClusterClientBuilder::new(seeds.iter().map(|s| resp3_url(s)))
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .build()
                    .map_err(BrokerError::unavailable)?;
                SessionStore::Cluster(client.get_async_connection().await.map_err(BrokerError::unavailable)?, prefix)
            }
        })
    }

    /// Keeps `record` for `pid` for `ttl`; a failure is logged (the session then cannot be
    /// restored, and the client gets a new one).
    pub async fn save(&self, pid: &str, record: Vec<u8>, ttl: Duration) {
        let millis = (ttl.as_millis() as u64).max(1);
        let result = match self {
            SessionStore::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                map.retain(|_, (until, _)| *until > now);
                map.insert(pid.to_owned(), (now + ttl, record));
                Ok(())
            }
            SessionStore::Redis(conn, prefix) => {
                let cmd = redis::cmd("SET").arg(format!("{prefix}{pid}")).arg(record).arg("PX").arg(millis).clone();
                query::<()>(cmd.query_async(&mut conn.clone())).await
            }
            SessionStore::Cluster(conn, prefix) => {
                let cmd = redis::cmd("SET").arg(format!("{prefix}{pid}")).arg(record).arg("PX").arg(millis).clone();
                query::<()>(cmd.query_async(&mut conn.clone())).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot save a Socket.IO session record; it will not be restorable");
        }
    }

    /// The record of `pid`, if it is still kept.
    pub async fn load(&self, pid: &str) -> Option<Vec<u8>> {
        let result = match self {
            SessionStore::Memory(map) => {
                let map = map.lock().unwrap_or_else(|e| e.into_inner());
                return map.get(pid).filter(|(until, _)| *until > Instant::now()).map(|(_, r)| r.clone());
            }
            SessionStore::Redis(conn, prefix) => {
                query::<Option<Vec<u8>>>(redis::cmd("GET").arg(format!("{prefix}{pid}")).query_async(&mut conn.clone()))
                    .await
            }
            SessionStore::Cluster(conn, prefix) => {
                query::<Option<Vec<u8>>>(redis::cmd("GET").arg(format!("{prefix}{pid}")).query_async(&mut conn.clone()))
                    .await
            }
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read a Socket.IO session record; the client gets a new session");
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
