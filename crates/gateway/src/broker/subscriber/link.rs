//! [`Link`]: the node's dedicated subscriber connection to Redis, and its replacement.
//!
//! One RESP3 connection (one per master in a cluster) carries every `SUBSCRIBE` (`SSUBSCRIBE`
//! in a cluster, one channel per command) and the pushes they bring. Each connection made gets
//! a new generation number, so a room can tell whether it is subscribed on the connection in
//! use or on one that was lost.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, RedisResult};
use roomcast_publisher::{RedisOptions, Sentinels};

use crate::broker::BrokerError;
use crate::config::BrokerConfig;

/// How long a probe or an (un)subscribe may take before the connection counts as lost.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// A subscriber connection.
#[derive(Clone)]
pub(super) enum SubConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl SubConn {
    pub(super) async fn subscribe(&self, channel: &str) -> RedisResult<()> {
        bounded(async {
            match self.clone() {
                SubConn::Single(mut c) => c.subscribe(channel).await,
                SubConn::Cluster(mut c) => c.ssubscribe(channel).await,
            }
        })
        .await
    }

    pub(super) async fn unsubscribe(&self, channel: &str) -> RedisResult<()> {
        bounded(async {
            match self.clone() {
                SubConn::Single(mut c) => c.unsubscribe(channel).await,
                SubConn::Cluster(mut c) => c.sunsubscribe(channel).await,
            }
        })
        .await
    }

    /// PINGs, failing as a timeout when no answer came within `deadline`.
    pub(super) async fn ping(&self, deadline: Duration) -> RedisResult<String> {
        let call = async {
            match self.clone() {
                SubConn::Single(mut c) => redis::cmd("PING").query_async(&mut c).await,
                SubConn::Cluster(mut c) => redis::cmd("PING").query_async(&mut c).await,
            }
        };
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "no answer to PING in time"))),
        }
    }
}

/// A call that fails as a timeout after [`COMMAND_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))),
    }
}

/// The connection in use, its generation, and whether the node is delivering through it.
pub(super) struct Link {
    target: BrokerConfig,
    options: RedisOptions,
    current: RwLock<Option<(u64, SubConn)>>,
    /// The address of the connection in use, with Sentinel: whom the sentinels named.
    master: RwLock<Option<String>>,
    generation: AtomicU64,
    ready: AtomicBool,
}

impl Link {
    pub(super) fn new(target: BrokerConfig, options: RedisOptions) -> Self {
        Self {
            target,
            options,
            current: RwLock::new(None),
            master: RwLock::new(None),
            generation: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// A number for the next connection, so that its push handler can name it.
    pub(super) fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Opens connection `generation` (from [`Self::next_generation`]) whose pushes go to
    /// `handler`, and makes it the one in use.
    pub(super) async fn open<H>(&self, generation: u64, handler: H) -> RedisResult<SubConn>
    where
        H: Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static,
    {
        let conn = match &self.target {
            BrokerConfig::Cluster(seeds) => {
                let client = roomcast_publisher::cluster_builder(seeds, &self.options)?
                    .push_sender(handler)
                    .connection_timeout(COMMAND_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .build()?;
                SubConn::Cluster(client.get_async_connection().await?)
            }
            BrokerConfig::Redis(url) => self.single(url, handler).await?,
            BrokerConfig::Sentinel { sentinels, master } => {
                // Whoever the sentinels name now: after a failover, the promoted replica.
                let url = Sentinels::new(sentinels, master, &self.options)?.master_url().await?;
                let conn = self.single(&url, handler).await?;
                tracing::debug!(%master, port = url.rsplit(':').next().unwrap_or_default(), "subscriber connected to the Redis master");
                *self.master.write().unwrap_or_else(|e| e.into_inner()) = Some(url);
                conn
            }
            BrokerConfig::Embedded => {
                return Err(redis::RedisError::from((redis::ErrorKind::Client, "no Redis configured")));
            }
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((generation, conn.clone()));
        Ok(conn)
    }

    async fn single<H>(&self, url: &str, handler: H) -> RedisResult<SubConn>
    where
        H: Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static,
    {
        let client = roomcast_publisher::client(url, &self.options, Some(ProtocolVersion::RESP3))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_push_sender(handler)
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        Ok(SubConn::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
    }

    /// With Sentinel, whether the connection in use is to the server the sentinels name as
    /// master now (`false` when that cannot be learnt: better one reconnect too many).
    pub(super) async fn is_on_master(&self) -> bool {
        let BrokerConfig::Sentinel { sentinels, master } = &self.target else { return true };
        let Ok(now) = Sentinels::new(sentinels, master, &self.options) else { return false };
        let Ok(now) = now.master_url().await else { return false };
        self.is_ready() && self.master.read().unwrap_or_else(|e| e.into_inner()).as_deref() == Some(now.as_str())
    }

    /// Forgets the connection in use (it was lost) and marks the node not ready.
    pub(super) fn lose(&self) {
        self.ready.store(false, Ordering::Release);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The generation of the connection in use, if any.
    pub(super) fn generation(&self) -> Option<u64> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(g, _)| *g)
    }

    /// The connection in use and its generation.
    pub(super) fn current(&self) -> Result<(u64, SubConn), BrokerError> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        current.ok_or_else(|| BrokerError::unavailable("not connected to Redis"))
    }

    pub(super) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
