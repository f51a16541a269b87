//! [`Sentinels`]: which server a Redis Sentinel group names as its master now, and a watch on
//! `+switch-master` so that connections move the moment the sentinels fail over, not only
//! when the old master's socket breaks (a demoted master that stays up keeps its sockets).

use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, ErrorKind, IntoConnectionInfo, PushInfo, PushKind, RedisError, Value};
use tokio::sync::{mpsc, watch};

use crate::RedisOptions;
use crate::clients::install_crypto_provider;

/// How long one sentinel may take to answer before the next one is asked.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);

/// The sentinels of one master group: their addresses (`host:port`, `redis://` or
/// `rediss://`; credentials for the sentinels themselves go in these URLs) and the group's
/// name (`sentinel monitor <name> ...`).
#[derive(Clone)]
pub struct Sentinels {
    seeds: Arc<[String]>,
    master: Arc<str>,
    tls: bool,
    options: RedisOptions,
}

impl std::fmt::Debug for Sentinels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the seeds: they may carry a sentinel password.
        f.debug_struct("Sentinels").field("seeds", &self.seeds.len()).field("master", &self.master).finish()
    }
}

impl Sentinels {
    /// The group `master` behind `seeds`. TLS to the sentinels and to the master follows the
    /// seeds' scheme; `options`' TLS material applies to both, its credentials to the master.
    pub fn new(seeds: &[String], master: &str, options: &RedisOptions) -> Result<Self, RedisError> {
        if seeds.is_empty() || master.is_empty() {
            return Err(invalid("a Sentinel target needs at least one sentinel and a master name"));
        }
        let tls = seeds.iter().filter(|s| s.starts_with("rediss://")).count();
        if tls != 0 && tls != seeds.len() {
            return Err(invalid("some sentinels use rediss:// and some do not"));
        }
        Ok(Self { seeds: seeds.into(), master: master.into(), tls: tls != 0, options: options.clone() })
    }

    /// The master group's name.
    pub fn master_name(&self) -> &str {
        &self.master
    }

    /// The URL of the server the sentinels name as master now: every sentinel is asked at once
    /// (`SENTINEL get-master-addr-by-name`) and the first that knows the group answers. With
    /// TLS the certificate must name that address (an IP SAN when the sentinels give IPs).
    pub async fn master_url(&self) -> Result<String, RedisError> {
        // All at once: unreachable sentinels cost one timeout, not one each.
        let asks = self.seeds.iter().map(|seed| {
            Box::pin(async move {
                match self.ask(seed).await {
                    Ok(Some(addr)) => Ok(addr),
                    Ok(None) => Err(invalid("the sentinels do not know this master name")),
                    Err(e) => Err(e),
                }
            })
        });
        let ((host, port), _) = futures::future::select_ok(asks).await?;
        let scheme = if self.tls { "rediss" } else { "redis" };
        // An IPv6 address needs brackets in a URL.
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        Ok(format!("{scheme}://{host}:{port}"))
    }

    async fn ask(&self, seed: &str) -> Result<Option<(String, u16)>, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SENTINEL_TIMEOUT))
            .set_response_timeout(Some(SENTINEL_TIMEOUT));
        let mut conn = self.sentinel_client(seed)?.get_multiplexed_async_connection_with_config(&config).await?;
        let addr: Option<(String, u16)> =
            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(&*self.master).query_async(&mut conn).await?;
        Ok(addr)
    }

    fn sentinel_client(&self, seed: &str) -> Result<Client, RedisError> {
        let url = if seed.contains("://") { seed.to_owned() } else { format!("redis://{seed}") };
        let info = url.as_str().into_connection_info()?;
        let settings =
            info.redis_settings().clone().set_skip_set_lib_name().set_protocol(redis::ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        if self.tls {
            install_crypto_provider();
            if let Some(material) = &self.options.tls {
                return Client::build_with_tls(info, material.certificates());
            }
        }
        Client::open(info)
    }

    /// A counter that goes up each time a sentinel announces that this group's master moved
    /// (`+switch-master`). A task follows one sentinel at a time (the next one when it is
    /// lost) until every receiver is dropped.
    pub fn watch(&self) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        tokio::spawn(follow(self.clone(), tx));
        rx
    }
}

async fn follow(sentinels: Sentinels, tx: watch::Sender<u64>) {
    let mut turn = 0usize;
    while !tx.is_closed() {
        let seed = &sentinels.seeds[turn % sentinels.seeds.len()];
        turn = turn.wrapping_add(1);
        let (pushes, mut rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SENTINEL_TIMEOUT))
            .set_response_timeout(Some(SENTINEL_TIMEOUT))
            .set_push_sender(pushes);
        let subscribed = async {
            let mut conn =
                sentinels.sentinel_client(seed)?.get_multiplexed_async_connection_with_config(&config).await?;
            conn.subscribe("+switch-master").await?;
            Ok::<_, RedisError>(conn)
        };
        let conn = match subscribed.await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "cannot follow a sentinel; trying the next");
                tokio::select! {
                    () = tokio::time::sleep(SENTINEL_TIMEOUT) => continue,
                    () = tx.closed() => return,
                }
            }
        };
        loop {
            let push = tokio::select! {
                push = rx.recv() => push,
                () = tx.closed() => return,
            };
            match push {
                Some(push) if push.kind == PushKind::Message => {
                    // "<name> <old ip> <old port> <new ip> <new port>"
                    if let Some(Value::BulkString(text)) = push.data.get(1)
                        && text.split(|b| *b == b' ').next() == Some(sentinels.master.as_bytes())
                    {
                        tracing::warn!(master = %sentinels.master, "the sentinels moved the Redis master");
                        tx.send_modify(|n| *n += 1);
                    }
                }
                Some(push) if push.kind != PushKind::Disconnection => {}
                // Lost: follow the next sentinel. A failover meanwhile still reaches every
                // connection, through its broken socket or a READONLY reply.
                _ => break,
            }
        }
        drop(conn);
    }
}

fn invalid(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, message))
}
