//! The Redis settings: where Redis is (one server, a Sentinel group or a Cluster), how to
//! reach it (TLS material, credentials), and what it can be trusted with across a restart or
//! a failover (`redis_durable`, `redis_wait_replicas`). A file that cannot be read, or settings that contradict each
//! other, stop start-up naming the setting.

use std::path::PathBuf;

use roomcast_publisher::{ClientCert, RedisOptions, Tls, resp3_url};

use super::values::Settings;
use super::{BrokerConfig, Config, ConfigError};

/// Reads the Redis settings into `c.broker` and `c.redis`.
pub(super) fn load(s: &mut Settings<'_>, c: &mut Config) -> Result<(), ConfigError> {
    c.broker = broker(s)?;
    let addresses: Vec<&str> = match &c.broker {
        BrokerConfig::Embedded => Vec::new(),
        BrokerConfig::Redis(url) => vec![url.as_str()],
        BrokerConfig::Cluster(seeds) => seeds.iter().map(String::as_str).collect(),
        BrokerConfig::Sentinel { sentinels, .. } => sentinels.iter().map(String::as_str).collect(),
    };
    let tls = addresses.iter().any(|a| a.starts_with("rediss://"));
    c.redis = RedisOptions { tls: tls_material(s, tls)?, ..RedisOptions::default() };
    c.redis.username = s.get::<String>("redis_username")?.filter(|u| !u.is_empty());
    c.redis.password = s.get::<String>("redis_password")?.filter(|p| !p.is_empty());
    s.set(&mut c.redis.durable_restarts, "redis_durable")?;
    s.set(&mut c.redis.wait_replicas, "redis_wait_replicas")?;
    if c.redis.wait_replicas > 0 && !matches!(c.broker, BrokerConfig::Redis(_) | BrokerConfig::Sentinel { .. }) {
        return Err(s.error("redis_wait_replicas", "needs ROOMCAST_REDIS_URL or ROOMCAST_REDIS_SENTINELS"));
    }
    // Sentinels are asked for an address only: the master's credentials are not theirs.
    let addresses = if let BrokerConfig::Sentinel { .. } = &c.broker { Vec::new() } else { addresses };
    let infos: Vec<redis::ConnectionInfo> =
        addresses.iter().filter_map(|a| redis::IntoConnectionInfo::into_connection_info(resp3_url(a)).ok()).collect();
    if c.redis.password.is_some() && infos.iter().any(|i| i.redis_settings().password().is_some()) {
        return Err(s.error("redis_password", "the Redis address has a password too; set it in one place"));
    }
    if c.redis.username.is_some() && infos.iter().any(|i| i.redis_settings().username().is_some()) {
        return Err(s.error("redis_username", "the Redis address has a user name too; set it in one place"));
    }
    Ok(())
}

/// `redis_url`, `redis_cluster` or `redis_sentinels` with `redis_sentinel_master`, or none
/// (the embedded broker).
fn broker(s: &mut Settings<'_>) -> Result<BrokerConfig, ConfigError> {
    let url = s.get::<String>("redis_url")?.filter(|u| !u.is_empty());
    let cluster = s.get::<String>("redis_cluster")?.filter(|u| !u.is_empty());
    let sentinels = s.get::<String>("redis_sentinels")?.filter(|u| !u.is_empty());
    let master = s.get::<String>("redis_sentinel_master")?.filter(|u| !u.is_empty());
    match (&sentinels, &master) {
        (Some(_), _) if url.is_some() || cluster.is_some() => {
            let other = if url.is_some() { "ROOMCAST_REDIS_URL" } else { "ROOMCAST_REDIS_CLUSTER" };
            return Err(s.error("redis_sentinels", &format!("both it and {other} are set; set one")));
        }
        (Some(seeds), Some(master)) => {
            let sentinels = seeds_of(s, "redis_sentinels", seeds)?;
            return Ok(BrokerConfig::Sentinel { sentinels, master: master.clone() });
        }
        (Some(_), None) => return Err(s.error("redis_sentinel_master", "required with ROOMCAST_REDIS_SENTINELS")),
        (None, Some(_)) => return Err(s.error("redis_sentinels", "required with ROOMCAST_REDIS_SENTINEL_MASTER")),
        (None, None) => {}
    }
    Ok(match (url, cluster) {
        (Some(_), Some(_)) => {
            return Err(s.error("redis_url", "both ROOMCAST_REDIS_URL and ROOMCAST_REDIS_CLUSTER are set; set one"));
        }
        (Some(url), None) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
            // Not the URL itself: it may hold a password.
            let scheme = url.split_once("://").map_or("no scheme", |(scheme, _)| scheme);
            return Err(
                s.error("redis_url", &format!("expected redis://host:port or rediss://host:port, got {scheme:?}"))
            );
        }
        (Some(url), None) => BrokerConfig::Redis(url),
        (None, Some(seeds)) => BrokerConfig::Cluster(seeds_of(s, "redis_cluster", &seeds)?),
        (None, None) => BrokerConfig::Embedded,
    })
}

/// Comma-separated `host:port` (or `redis://`, `rediss://`) seeds.
fn seeds_of(s: &Settings<'_>, key: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    let seeds: Vec<String> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if let Some(bad) = seeds.iter().find(|s| !s.contains(':')) {
        return Err(s.error(key, &format!("expected host:port seeds separated by commas, got {bad:?}")));
    }
    let tls = seeds.iter().filter(|s| s.starts_with("rediss://")).count();
    if tls != 0 && tls != seeds.len() {
        return Err(s.error(key, "either every seed or none uses rediss://"));
    }
    Ok(seeds)
}

/// `redis_tls_ca`, `redis_tls_cert` and `redis_tls_key`, read and checked; only with
/// `rediss://` addresses (`tls`).
fn tls_material(s: &mut Settings<'_>, tls: bool) -> Result<Option<Tls>, ConfigError> {
    let ca = s.get::<PathBuf>("redis_tls_ca")?;
    let cert = s.get::<PathBuf>("redis_tls_cert")?;
    let key = s.get::<PathBuf>("redis_tls_key")?;
    let named = [("redis_tls_ca", ca.is_some()), ("redis_tls_cert", cert.is_some()), ("redis_tls_key", key.is_some())];
    if !tls {
        return match named.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(s.error(name, "is set, but no Redis address uses rediss:// (TLS)")),
            None => Ok(None),
        };
    }
    let ca = ca.map(|path| pem(s, "redis_tls_ca", &path, "CERTIFICATE")).transpose()?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert {
            cert: pem(s, "redis_tls_cert", &cert, "CERTIFICATE")?,
            key: pem(s, "redis_tls_key", &key, "PRIVATE KEY")?,
        }),
        (Some(_), None) => return Err(s.error("redis_tls_key", "required with ROOMCAST_REDIS_TLS_CERT")),
        (None, Some(_)) => return Err(s.error("redis_tls_cert", "required with ROOMCAST_REDIS_TLS_KEY")),
        (None, None) => None,
    };
    Ok(Some(Tls { ca, client }))
}

/// The PEM file at `path`, which must hold a `what` block.
fn pem(s: &Settings<'_>, key: &str, path: &PathBuf, what: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| s.error(key, &format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let holds = text.lines().any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{what}-----")));
    if !holds {
        return Err(s.error(key, &format!("{} holds no PEM {what}", path.display())));
    }
    Ok(bytes)
}
