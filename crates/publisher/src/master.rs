//! [`MasterConnection`]: one multiplexed connection to the master of a single Redis or of a
//! Sentinel group, replaced after a failure by a new one to whichever server is master then.
//!
//! A new connection first checks that it reached a master (`INFO replication`) and, for a
//! publisher, runs the era check ([`crate::era`]) before any of the caller's commands go
//! through it: a write can never land on a new master before the rooms' epochs reflect it.
//! Unlike redis-rs' `ConnectionManager`, which reconnects to one fixed address, the address is
//! looked up again (from the sentinels) on every reconnect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};
use tokio::sync::watch;

use crate::era::{self, Replication};
use crate::{RedisOptions, Sentinels, clients};

/// How long connecting, the role check and the era check may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the master is.
#[derive(Debug, Clone)]
pub enum MasterAt {
    /// One Redis at this URL.
    Url(String),
    /// Whatever the sentinels name.
    Sentinel(Sentinels),
}

/// A reconnecting connection to the current master; clones share it.
#[derive(Clone)]
pub struct MasterConnection {
    inner: Arc<Inner>,
}

struct Inner {
    locate: MasterAt,
    options: RedisOptions,
    /// The era key to check on every new connection; `None`: no check (a session store).
    era: Option<String>,
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// One reconnect at a time: concurrent callers wait for it instead of each opening one.
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// Failed connect attempts so far.
    attempts: AtomicU64,
    switches: Option<watch::Receiver<u64>>,
    seen_switch: AtomicU64,
    db: i64,
}

impl std::fmt::Debug for MasterConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterConnection")
            .field("sentinel", &matches!(self.inner.locate, MasterAt::Sentinel(_)))
            .finish()
    }
}

impl MasterConnection {
    /// Connects to the master of `locate` now (so that a wrong address fails at start-up), with
    /// the era check under `era` when given. With Sentinel, a `+switch-master` watch makes the
    /// next call reconnect.
    pub(crate) async fn connect(locate: MasterAt, options: &RedisOptions, era: Option<String>) -> RedisResult<Self> {
        let db = match &locate {
            MasterAt::Url(url) => url.as_str().into_connection_info()?.redis_settings().db(),
            MasterAt::Sentinel(_) => 0,
        };
        let switches = match &locate {
            MasterAt::Sentinel(sentinels) => Some(sentinels.watch()),
            MasterAt::Url(_) => None,
        };
        let this = Self {
            inner: Arc::new(Inner {
                locate,
                options: options.clone(),
                era,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                attempts: AtomicU64::new(0),
                switches,
                seen_switch: AtomicU64::new(0),
                db,
            }),
        };
        this.get().await?;
        Ok(this)
    }

    /// Connects to one Redis at `url`, or to the master the sentinels name, without the era
    /// check: for a node's own records (the Socket.IO session store).
    pub async fn connect_plain(at: MasterAt, options: &RedisOptions) -> RedisResult<Self> {
        Self::connect(at, options, None).await
    }

    /// Counts up each time the sentinels move the master (`None` without Sentinel), for a
    /// node's subscriber connection to follow too.
    pub fn master_switches(&self) -> Option<watch::Receiver<u64>> {
        self.inner.switches.clone()
    }

    fn in_use(&self) -> Option<(u64, MultiplexedConnection)> {
        if let Some(switches) = &self.inner.switches {
            let now = *switches.borrow();
            if self.inner.seen_switch.swap(now, Ordering::AcqRel) != now {
                *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return None;
            }
        }
        self.inner.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The connection in use and its number, connecting first when there is none. Callers
    /// that must send several commands on one connection (a write and the `WAIT` for it) use
    /// the connection returned, and report its failures with [`Self::failed`].
    pub(crate) async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.in_use() {
            return Ok(current);
        }
        let attempts_seen = self.inner.attempts.load(Ordering::Acquire);
        let _one = self.inner.connecting.lock().await;
        if let Some(current) = self.in_use() {
            return Ok(current);
        }
        // An attempt failed while this caller waited its turn: fail as it did instead of
        // queueing one more connect timeout behind it.
        if self.inner.attempts.load(Ordering::Acquire) != attempts_seen {
            return Err(RedisError::from((ErrorKind::Io, "the Redis master could not be reached just now")));
        }
        let switch_before = self.inner.switches.as_ref().map(|s| *s.borrow());
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "connecting to the Redis master timed out")))
            .and_then(|opened| opened);
        let conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                self.inner.attempts.fetch_add(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        // The sentinels moved the master while this connected: it may be to the old one.
        if self.inner.switches.as_ref().map(|s| *s.borrow()) != switch_before {
            return Err(RedisError::from((ErrorKind::Io, "the Redis master moved while connecting")));
        }
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    async fn open(&self) -> RedisResult<MultiplexedConnection> {
        let url = match &self.inner.locate {
            MasterAt::Url(url) => url.clone(),
            MasterAt::Sentinel(sentinels) => sentinels.master_url().await?,
        };
        let client = clients::client(&url, &self.inner.options, None)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await?;
        let replication = Replication::parse(&info);
        if replication.role != "master" {
            // Sentinel has not promoted anyone yet, or the address is a replica's.
            return Err(RedisError::from((ErrorKind::Io, "the Redis server is not a master (yet)")));
        }
        if let Some(key) = &self.inner.era {
            // A promotion moves the master to another address; a restart keeps its own. One
            // fixed URL cannot tell them apart, so there every change counts as a restart.
            let address = match &self.inner.locate {
                MasterAt::Url(_) => "",
                MasterAt::Sentinel(_) => host_port(&url),
            };
            era::check(&mut conn, key, &replication, address, &self.inner.options).await?;
        }
        if let MasterAt::Sentinel(sentinels) = &self.inner.locate {
            tracing::debug!(master = sentinels.master_name(), address = %host_port(&url), "connected to the Redis master");
        }
        Ok(conn)
    }

    /// After `error` on connection `generation`: a connection that broke, timed out or now
    /// talks to a replica is dropped, and the next call connects to the master anew.
    pub(crate) fn failed(&self, generation: u64, error: &RedisError) {
        let replaced = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_timeout()
            || error.is_connection_refusal()
            || matches!(error.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown));
        if replaced {
            let mut current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                *current = None;
            }
        }
    }
}

impl ConnectionLike for MasterConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.get().await?;
            let reply = conn.req_packed_command(cmd).await;
            if let Err(e) = &reply {
                self.failed(generation, e);
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.get().await?;
            let reply = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &reply {
                self.failed(generation, e);
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}

/// `host:port` of `url`, without credentials, for logs.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest)
}
