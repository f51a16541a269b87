//! Unit tests of configuration loading, without touching the process environment.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let dir =
        std::env::temp_dir().join(format!("roomcast-config-{}-{:?}", std::process::id(), std::thread::current().id()));
    let path = file.map(|text| {
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roomcast.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    Config::load(path.as_deref(), &|k| env.get(k).cloned())
}

#[test]
fn secret_alone_gives_the_documented_defaults() {
    let c = load(&[("ROOMCAST_JWT_SECRET", "s")], None).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.jwt.key, JwtKey::Secret("s".into()));
    assert_eq!(c.jwt.leeway, Duration::from_secs(5));
    assert_eq!(c.max_message_size, 64 * 1024);
    assert_eq!(c.send_queue_size, 1024 * 1024);
    assert_eq!(c.max_rooms_per_connection, 256);
    assert_eq!(c.max_connections, 100_000);
    assert_eq!(c.emit_events, ["typing:start", "typing:stop"]);
    assert_eq!(c.api_key, None);
    assert_eq!(c.max_json_depth, 64);
    assert_eq!((c.header_read_timeout, c.body_read_timeout), (Duration::from_secs(10), Duration::from_secs(10)));
}

#[test]
fn hardening_limits_are_settings_and_checked() {
    let c = load(
        &[
            ("ROOMCAST_JWT_SECRET", "s"),
            ("ROOMCAST_MAX_JSON_DEPTH", "8"),
            ("ROOMCAST_HEADER_READ_TIMEOUT", "2s"),
            ("ROOMCAST_BODY_READ_TIMEOUT", "500ms"),
        ],
        None,
    )
    .unwrap();
    assert_eq!((c.max_json_depth, c.header_read_timeout), (8, Duration::from_secs(2)));
    assert_eq!(c.body_read_timeout, Duration::from_millis(500));
    for (key, value) in [
        ("ROOMCAST_MAX_JSON_DEPTH", "1"),
        ("ROOMCAST_HEADER_READ_TIMEOUT", "0s"),
        ("ROOMCAST_BODY_READ_TIMEOUT", "0ms"),
    ] {
        let err = load(&[("ROOMCAST_JWT_SECRET", "s"), (key, value)], None).unwrap_err();
        assert_eq!(err.setting, key);
    }
}

#[test]
fn environment_overrides_the_file() {
    let file = "listen = \"127.0.0.1:9000\"\nping_interval = \"10s\"\nmax_message_size = \"128KiB\"\nemit_events = [\"a\", \"b\"]\njwt_secret = \"f\"\n";
    let c = load(&[("ROOMCAST_PING_INTERVAL", "3s")], Some(file)).unwrap();
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.ping_interval, Duration::from_secs(3));
    assert_eq!(c.max_message_size, 128 * 1024);
    assert_eq!(c.emit_events, ["a", "b"]);
    assert_eq!(c.jwt.key, JwtKey::Secret("f".into()));
}

#[test]
fn errors_name_the_setting() {
    let err = load(&[], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_JWT_SECRET");

    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_PING_INTERVAL", "often")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_PING_INTERVAL");
    assert!(err.to_string().starts_with("ROOMCAST_PING_INTERVAL: expected a duration"), "{err}");

    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_LISTEN", "nowhere")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_LISTEN");

    let err = load(&[("ROOMCAST_JWT_SECRET", "s")], Some("ping_intervall = \"1s\"\n")).unwrap_err();
    assert!(err.setting.starts_with("ping_intervall in "), "{err}");
    assert_eq!(err.message, "unknown setting");

    let err = load(&[("ROOMCAST_JWT_SECRET", "s")], Some("max_connections = \"lots\"\n")).unwrap_err();
    assert!(err.setting.starts_with("max_connections in "), "{err}");
}

#[test]
fn contradictions_stop_start_up() {
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_JWT_PUBLIC_KEY", "/k.pem")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_JWT_SECRET");
    let err =
        load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_IDLE_TIMEOUT", "5s"), ("ROOMCAST_PING_INTERVAL", "10s")], None)
            .unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_IDLE_TIMEOUT");
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_JWT_ALGORITHM", "RS256")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_JWT_ALGORITHM");
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_URL", "localhost:6379")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_REDIS_URL");
    let both = [("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_URL", "redis://x"), ("ROOMCAST_REDIS_CLUSTER", "a:1")];
    assert_eq!(load(&both, None).unwrap_err().setting, "ROOMCAST_REDIS_URL");
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_PREFIX", "{x}")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_REDIS_PREFIX");
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_DEDUP_WINDOW", "0s")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_DEDUP_WINDOW");
}

#[test]
fn history_settings_have_the_documented_defaults() {
    let c = load(&[("ROOMCAST_JWT_SECRET", "s")], None).unwrap();
    assert_eq!(
        (c.retention.history_size, c.retention.history_ttl, c.retention.dedup_window),
        (300, Duration::from_secs(600), Duration::from_secs(300))
    );
    let c = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_HISTORY_SIZE", "0"), ("ROOMCAST_HISTORY_TTL", "1m")], None)
        .unwrap();
    assert_eq!((c.retention.history_size, c.retention.history_ttl), (0, Duration::from_secs(60)));
}

#[test]
fn redis_settings_select_the_broker() {
    let c = load(&[("ROOMCAST_JWT_SECRET", "s")], None).unwrap();
    assert_eq!(c.broker, BrokerConfig::Embedded);
    let c = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_URL", "redis://127.0.0.1:6379")], None).unwrap();
    assert_eq!(c.broker, BrokerConfig::Redis("redis://127.0.0.1:6379".into()));
    let c = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_CLUSTER", "10.0.0.1:7000, 10.0.0.2:7000")], None)
        .unwrap();
    assert_eq!(c.broker, BrokerConfig::Cluster(vec!["10.0.0.1:7000".into(), "10.0.0.2:7000".into()]));
}

#[test]
fn durations_and_sizes_parse() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("1.5s").is_err());
    assert!(parse_duration("10").is_err());
    let c = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_SEND_QUEUE_SIZE", "2MiB")], None).unwrap();
    assert_eq!(c.send_queue_size, 2 * 1024 * 1024);
    assert!(load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_SEND_QUEUE_SIZE", "2GiB")], None).is_err());
}

#[test]
fn allowed_origins_are_a_checked_list() {
    use axum::http::HeaderValue;
    let c = load(&[("ROOMCAST_JWT_SECRET", "s")], None).unwrap();
    assert!(c.allowed_origins.allows(Some(&HeaderValue::from_static("https://any.test"))), "unset allows all");
    let c =
        load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_ALLOWED_ORIGINS", "https://a.test, https://*.b.test")], None)
            .unwrap();
    assert!(c.allowed_origins.allows(Some(&HeaderValue::from_static("https://x.b.test"))));
    assert!(!c.allowed_origins.allows(Some(&HeaderValue::from_static("https://c.test"))));
    let c = load(&[("ROOMCAST_JWT_SECRET", "s")], Some("allowed_origins = [\"https://a.test\"]\n")).unwrap();
    assert!(c.allowed_origins.allows(Some(&HeaderValue::from_static("https://a.test"))));
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_ALLOWED_ORIGINS", "a.test")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_ALLOWED_ORIGINS");
    assert!(err.message.contains("\"a.test\""), "{err}");
}

#[test]
fn redis_tls_settings_are_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("roomcast-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, key) = (dir.join("ca.crt"), dir.join("client.key"));
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n").unwrap();
    let (ca, key) = (ca.display().to_string(), key.display().to_string());
    let base = [("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_URL", "rediss://r:6380")];

    let c = load(&base, None).unwrap();
    assert_eq!(c.broker, BrokerConfig::Redis("rediss://r:6380".into()));
    assert!(c.redis.tls.as_ref().is_some_and(|t| t.ca.is_none() && t.client.is_none()), "system roots");
    let c = load(&[base[0], base[1], ("ROOMCAST_REDIS_TLS_CA", &ca)], None).unwrap();
    assert!(c.redis.tls.unwrap().ca.unwrap().starts_with(b"-----BEGIN CERTIFICATE"));
    let c =
        load(&[base[0], base[1], ("ROOMCAST_REDIS_TLS_CERT", &ca), ("ROOMCAST_REDIS_TLS_KEY", &key)], None).unwrap();
    assert!(c.redis.tls.unwrap().client.is_some());

    let named = |env: &[(&str, &str)]| load(env, None).unwrap_err().setting;
    assert_eq!(named(&[base[0], base[1], ("ROOMCAST_REDIS_TLS_CA", "/nonexistent/ca.crt")]), "ROOMCAST_REDIS_TLS_CA");
    assert_eq!(named(&[base[0], base[1], ("ROOMCAST_REDIS_TLS_CA", &key)]), "ROOMCAST_REDIS_TLS_CA");
    assert_eq!(named(&[base[0], base[1], ("ROOMCAST_REDIS_TLS_CERT", &ca)]), "ROOMCAST_REDIS_TLS_KEY");
    assert_eq!(named(&[base[0], base[1], ("ROOMCAST_REDIS_TLS_KEY", &key)]), "ROOMCAST_REDIS_TLS_CERT");
    assert_eq!(
        named(&[base[0], ("ROOMCAST_REDIS_URL", "redis://r:6379"), ("ROOMCAST_REDIS_TLS_CA", &ca)]),
        "ROOMCAST_REDIS_TLS_CA",
        "TLS material without rediss:// is a mistake, not ignored"
    );
    assert_eq!(named(&[base[0], ("ROOMCAST_REDIS_CLUSTER", "rediss://a:1,b:2")]), "ROOMCAST_REDIS_CLUSTER");
    let c = load(&[base[0], ("ROOMCAST_REDIS_CLUSTER", "rediss://a:1,rediss://b:2")], None).unwrap();
    assert!(c.redis.tls.is_some());
    assert_eq!(named(&[base[0], ("ROOMCAST_REDIS_URL", "http://r:6379")]), "ROOMCAST_REDIS_URL");
}

#[test]
fn redis_credentials_come_from_the_url_or_their_settings_not_both() {
    let base = ("ROOMCAST_JWT_SECRET", "s");
    let c = load(
        &[
            base,
            ("ROOMCAST_REDIS_URL", "redis://r:6379"),
            ("ROOMCAST_REDIS_USERNAME", "node"),
            ("ROOMCAST_REDIS_PASSWORD", "pw"),
        ],
        None,
    )
    .unwrap();
    assert_eq!((c.redis.username.as_deref(), c.redis.password.as_deref()), (Some("node"), Some("pw")));
    assert!(!format!("{c:?}").contains("\"pw\""), "the password is not in the config's Debug");
    let c = load(&[base, ("ROOMCAST_REDIS_URL", "redis://node:pw@r:6379")], None).unwrap();
    assert_eq!(c.redis.password, None, "the URL's stay in the URL");
    let err = load(&[base, ("ROOMCAST_REDIS_URL", "redis://:pw@r:6379"), ("ROOMCAST_REDIS_PASSWORD", "x")], None)
        .unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_REDIS_PASSWORD");
    let err =
        load(&[base, ("ROOMCAST_REDIS_URL", "redis://u@r:6379"), ("ROOMCAST_REDIS_USERNAME", "x")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_REDIS_USERNAME");
}

#[test]
fn the_redis_stall_timeout_defaults_to_three_seconds_and_has_a_floor() {
    let c = load(&[("ROOMCAST_JWT_SECRET", "s")], None).unwrap();
    assert_eq!(c.redis_stall_timeout, Duration::from_secs(3));
    let c = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_STALL_TIMEOUT", "1s")], None).unwrap();
    assert_eq!(c.redis_stall_timeout, Duration::from_secs(1));
    let err = load(&[("ROOMCAST_JWT_SECRET", "s"), ("ROOMCAST_REDIS_STALL_TIMEOUT", "100ms")], None).unwrap_err();
    assert_eq!(err.setting, "ROOMCAST_REDIS_STALL_TIMEOUT");
}

#[test]
fn sentinel_settings_select_the_sentinel_broker_and_contradictions_name_the_setting() {
    let s = ("ROOMCAST_JWT_SECRET", "s");
    let c = load(
        &[s, ("ROOMCAST_REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379"), ("ROOMCAST_REDIS_SENTINEL_MASTER", "m")],
        None,
    )
    .unwrap();
    assert_eq!(
        c.broker,
        BrokerConfig::Sentinel {
            sentinels: vec!["10.0.0.1:26379".into(), "10.0.0.2:26379".into()],
            master: "m".into()
        }
    );
    let setting = |env: &[(&str, &str)]| load(env, None).unwrap_err().setting;
    assert_eq!(setting(&[s, ("ROOMCAST_REDIS_SENTINELS", "10.0.0.1:26379")]), "ROOMCAST_REDIS_SENTINEL_MASTER");
    assert_eq!(setting(&[s, ("ROOMCAST_REDIS_SENTINEL_MASTER", "m")]), "ROOMCAST_REDIS_SENTINELS");
    let both = [
        s,
        ("ROOMCAST_REDIS_SENTINELS", "h:1"),
        ("ROOMCAST_REDIS_SENTINEL_MASTER", "m"),
        ("ROOMCAST_REDIS_URL", "redis://h:2"),
    ];
    assert_eq!(setting(&both), "ROOMCAST_REDIS_SENTINELS");
    assert_eq!(
        setting(&[s, ("ROOMCAST_REDIS_SENTINELS", "nohost"), ("ROOMCAST_REDIS_SENTINEL_MASTER", "m")]),
        "ROOMCAST_REDIS_SENTINELS"
    );
}

#[test]
fn durability_and_wait_replicas_are_read_and_wait_needs_one_redis() {
    let s = ("ROOMCAST_JWT_SECRET", "s");
    let url = ("ROOMCAST_REDIS_URL", "redis://h:1");
    let c = load(&[s, url], None).unwrap();
    assert_eq!((c.redis.durable_restarts, c.redis.wait_replicas), (false, 0));
    let c = load(&[s, url, ("ROOMCAST_REDIS_DURABLE", "true"), ("ROOMCAST_REDIS_WAIT_REPLICAS", "2")], None).unwrap();
    assert_eq!((c.redis.durable_restarts, c.redis.wait_replicas), (true, 2));
    let cluster = [s, ("ROOMCAST_REDIS_CLUSTER", "h:1"), ("ROOMCAST_REDIS_WAIT_REPLICAS", "1")];
    assert_eq!(load(&cluster, None).unwrap_err().setting, "ROOMCAST_REDIS_WAIT_REPLICAS");
    assert_eq!(
        load(&[s, url, ("ROOMCAST_REDIS_WAIT_REPLICAS", "-1")], None).unwrap_err().setting,
        "ROOMCAST_REDIS_WAIT_REPLICAS"
    );
}
