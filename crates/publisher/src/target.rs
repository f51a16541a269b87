//! [`Target`]: where the shared Redis is, and the one way its addresses are turned into URLs.

/// Where the shared Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One Redis, `redis://host:port[/db]`.
    Redis(String),
    /// Seed nodes of a Redis Cluster, `host:port` or `redis://host:port`; sharded pub/sub.
    Cluster(Vec<String>),
    /// The master that Redis Sentinel names for a group: the sentinels (`host:port`,
    /// `redis://` or `rediss://`) and the group's name.
    Sentinel {
        /// Sentinel addresses; any one that answers will do.
        sentinels: Vec<String>,
        /// The group's name (`sentinel monitor <name> ...`).
        master: String,
    },
}

/// `url` (or a bare `host:port`) as a URL asking for RESP3, which pushes (pub/sub on a
/// multiplexed connection) and cluster connections need. A `protocol=` already given is kept.
pub fn resp3_url(url: &str) -> String {
    let url = if url.contains("://") { url.to_owned() } else { format!("redis://{url}") };
    if url.contains("protocol=") {
        url
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else if url.split_once("://").is_some_and(|(_, rest)| rest.contains('/')) {
        format!("{url}?protocol=resp3")
    } else {
        format!("{url}/?protocol=resp3")
    }
}

#[cfg(test)]
mod tests {
    use super::resp3_url;

    #[test]
    fn every_form_gets_resp3_once() {
        assert_eq!(resp3_url("127.0.0.1:7000"), "redis://127.0.0.1:7000/?protocol=resp3");
        assert_eq!(resp3_url("redis://h:1"), "redis://h:1/?protocol=resp3");
        assert_eq!(resp3_url("redis://h:1/"), "redis://h:1/?protocol=resp3");
        assert_eq!(resp3_url("redis://h:1/3"), "redis://h:1/3?protocol=resp3");
        assert_eq!(resp3_url("redis://h:1/3?x=1"), "redis://h:1/3?x=1&protocol=resp3");
        assert_eq!(resp3_url("redis://h:1/?protocol=resp2"), "redis://h:1/?protocol=resp2");
        assert_eq!(resp3_url("rediss://h:1"), "rediss://h:1/?protocol=resp3");
    }
}
