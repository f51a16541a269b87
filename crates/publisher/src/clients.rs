//! Redis clients from an address and [`RedisOptions`]: the one place where TLS material and
//! credentials are applied, for the publisher and for the gateway's subscriber alike.

use redis::cluster::ClusterClientBuilder;
use redis::{Client, ConnectionAddr, ErrorKind, IntoConnectionInfo, ProtocolVersion, RedisError, RedisResult};

use crate::RedisOptions;
use crate::target::resp3_url;

/// A client for one Redis at `url` (`redis://` or `rediss://`), speaking `protocol` (`None`:
/// what the URL says), with `options`' credentials (in place of the URL's) and TLS material.
pub fn client(url: &str, options: &RedisOptions, protocol: Option<ProtocolVersion>) -> RedisResult<Client> {
    let info = url.into_connection_info()?;
    // No CLIENT SETINFO (Redis 7.2+): one command less for a least-privilege ACL user to need.
    let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(protocol) = protocol {
        settings = settings.set_protocol(protocol);
    }
    if let Some(user) = &options.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password);
    }
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    let info = info.set_redis_settings(settings);
    match (&options.tls, tls) {
        (Some(material), true) => {
            install_crypto_provider();
            Client::build_with_tls(info, material.certificates())
        }
        (None, true) => {
            install_crypto_provider();
            Client::open(info)
        }
        (Some(_), false) => Err(not_tls()),
        (None, false) => Client::open(info),
    }
}

/// A cluster client builder for `seeds` (`host:port`, `redis://` or `rediss://`), RESP3, with
/// `options`' credentials and TLS material; the caller adds timeouts and push handling.
pub fn cluster_builder(seeds: &[String], options: &RedisOptions) -> RedisResult<ClusterClientBuilder> {
    let urls: Vec<String> = seeds.iter().map(|s| resp3_url(s)).collect();
    let tls = urls.iter().any(|u| u.starts_with("rediss://"));
    if tls != urls.iter().all(|u| u.starts_with("rediss://")) {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "some cluster seeds use rediss:// and some do not",
        )));
    }
    let mut builder = ClusterClientBuilder::new(urls).use_protocol(ProtocolVersion::RESP3);
    if let Some(user) = &options.username {
        builder = builder.username(user.clone());
    }
    if let Some(password) = &options.password {
        builder = builder.password(password.clone());
    }
    match (&options.tls, tls) {
        (Some(material), true) => {
            install_crypto_provider();
            builder = builder.certs(material.certificates());
        }
        (None, true) => install_crypto_provider(),
        (Some(_), false) => return Err(not_tls()),
        (None, false) => {}
    }
    Ok(builder)
}

fn not_tls() -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "TLS material is set but the address is not rediss://"))
}

/// Makes ring rustls's process-wide provider, unless the application installed one already.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
