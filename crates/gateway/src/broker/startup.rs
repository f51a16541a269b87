//! Why a node could not connect to Redis at start-up, as one [`ConfigError`] naming the
//! setting to look at: the CA for a certificate Redis presented that no trusted CA signed, the
//! client certificate for a handshake Redis refused, the credentials for a refused login, and
//! the address for everything else (unreachable, wrong host name in the certificate).

use super::{BrokerError, causes};
use crate::config::{BrokerConfig, Config, ConfigError};

/// The start-up error for `error`, met connecting with `config`.
pub(super) fn refusal(config: &Config, error: &BrokerError) -> ConfigError {
    let text = causes(error);
    let address = match &config.broker {
        BrokerConfig::Cluster(_) => "ROOMCAST_REDIS_CLUSTER",
        BrokerConfig::Sentinel { .. } => "ROOMCAST_REDIS_SENTINELS",
        _ => "ROOMCAST_REDIS_URL",
    };
    let ca_set = config.redis.tls.as_ref().is_some_and(|t| t.ca.is_some());
    let cert_set = config.redis.tls.as_ref().is_some_and(|t| t.client.is_some());
    // With TLS 1.3 a server that wants a client certificate may close the connection before
    // its alert is read: the first command then meets a broken pipe.
    let closed_at_once = ["broken pipe", "reset by peer", "unexpected end of file"].iter().any(|w| text.contains(w));
    let (setting, hint) = if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        let trusted = if ca_set { "the CA in this file" } else { "the system's roots (set ROOMCAST_REDIS_TLS_CA)" };
        ("ROOMCAST_REDIS_TLS_CA", format!("Redis presented a certificate not signed by {trusted}"))
    } else if text.contains("not valid for name") {
        (address, "Redis presented a certificate for another host name".to_owned())
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        ("ROOMCAST_REDIS_TLS_CERT", "Redis requires a client certificate".to_owned())
    } else if config.redis.tls.is_some() && !cert_set && closed_at_once {
        (
            "ROOMCAST_REDIS_TLS_CERT",
            "Redis closed the TLS connection at once; it may require a client certificate".to_owned(),
        )
    } else if ["WRONGPASS", "NOAUTH", "AuthenticationFailed", "invalid username-password"]
        .iter()
        .any(|w| text.contains(w))
    {
        ("ROOMCAST_REDIS_PASSWORD", "Redis refused the user name or password".to_owned())
    } else if text.contains("NOPERM") {
        (
            "ROOMCAST_REDIS_USERNAME",
            "the Redis user lacks a permission roomcast needs (see docs/operations.md)".to_owned(),
        )
    } else {
        (address, "cannot connect".to_owned())
    };
    ConfigError { setting: setting.to_owned(), message: format!("{hint}: {text}") }
}
