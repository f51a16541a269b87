//! [`SentinelGroup`]: a master, a replica and three Redis Sentinels watching them, all real
//! processes on free ports (`redis-server --sentinel`, which is what Debian's
//! `redis-sentinel` runs), tuned to fail over within a few seconds of the master's death.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{PATIENCE, RedisServer, TestPki, free_port};

/// The group's name, as `sentinel monitor` knows it.
pub const MASTER_NAME: &str = "roomcast-test";

/// How long the sentinels wait before they count a silent master down.
const DOWN_AFTER_MS: u64 = 1000;

/// A master, its replica and three sentinels (quorum 2).
#[derive(Debug)]
pub struct SentinelGroup {
    /// The first master; after a failover it may be gone.
    pub master: RedisServer,
    /// The replica that a failover promotes.
    pub replica: RedisServer,
    /// Each sentinel's plain port, TLS port (0 without TLS) and process.
    sentinels: Vec<(u16, u16, Child)>,
    dir: PathBuf,
    tls: bool,
}

impl SentinelGroup {
    /// Starts the servers and the sentinels, and waits until the replica is in sync and every
    /// sentinel knows it and the other two sentinels (a failover needs both).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// The same over TLS: servers and sentinels listen for TLS with `pki`'s certificates,
    /// replicate and monitor over TLS, and [`Self::seeds`] are `rediss://` addresses. The plain
    /// ports stay open for the fixture's own checks.
    pub fn start_tls(pki: &TestPki) -> Self {
        Self::start_with(Some(pki))
    }

    fn start_with(pki: Option<&TestPki>) -> Self {
        // Without the delay (5 s by default) a replica's first sync waits for more replicas.
        let fast = ["--repl-diskless-sync-delay", "0"];
        let tls = ["--tls-replication", "yes"];
        let server = |extra: &[&str]| match pki {
            Some(pki) => RedisServer::start_tls_with(pki, false, false, &[extra, &fast, &tls].concat()),
            None => RedisServer::start_with_extra(&[extra, &fast].concat()),
        };
        let master = server(&[]);
        let port = master.client_port().to_string();
        let replica = server(&["--replicaof", "127.0.0.1", &port]);
        let dir = std::env::temp_dir().join(format!("roomcast-sentinels-{}-{}", std::process::id(), master.port));
        std::fs::create_dir_all(&dir).unwrap();
        let sentinels = (0..3).map(|i| start_sentinel(&dir, i, master.client_port(), pki)).collect();
        let group = Self { master, replica, sentinels, dir, tls: pki.is_some() };
        group.wait_until_ready();
        group
    }

    /// `host:port` of each sentinel.
    pub fn seeds(&self) -> Vec<String> {
        let seed = |(port, tls_port, _): &(u16, u16, Child)| {
            if self.tls { format!("rediss://127.0.0.1:{tls_port}") } else { format!("127.0.0.1:{port}") }
        };
        self.sentinels.iter().map(seed).collect()
    }

    /// The port of the server the sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        let (port, ..) = self.sentinels.first()?;
        let addr: Option<(String, u16)> =
            sentinel_query(*port, |c| c.arg("get-master-addr-by-name").arg(MASTER_NAME)).ok()?;
        addr.map(|(_, port)| port)
    }

    /// Waits until the sentinels name the replica as master and it answers as one.
    pub fn wait_for_failover(&self) {
        let deadline = Instant::now() + PATIENCE * 3;
        loop {
            let promoted = self.master_port() == Some(self.replica.client_port())
                && self.replica.connection().is_ok_and(|mut c| {
                    redis::cmd("ROLE")
                        .query::<Vec<redis::Value>>(&mut c)
                        .is_ok_and(|role| matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master"))
                });
            if promoted {
                return;
            }
            assert!(Instant::now() < deadline, "the sentinels never promoted the replica");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the killed first master again, empty, as a replica of the promoted one (as an
    /// operator would bring it back), and waits until it is in sync.
    pub fn restart_old_master_as_replica(&mut self) {
        self.master.add_extra(&["--replicaof", "127.0.0.1", &self.replica.client_port().to_string()]);
        self.master.restart();
        wait_in_sync(&self.master);
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + PATIENCE * 3;
        wait_in_sync(&self.replica);
        for (port, ..) in &self.sentinels {
            loop {
                let replicas: Vec<Vec<String>> =
                    sentinel_query(*port, |c| c.arg("replicas").arg(MASTER_NAME)).unwrap_or_default();
                let others: Vec<Vec<String>> =
                    sentinel_query(*port, |c| c.arg("sentinels").arg(MASTER_NAME)).unwrap_or_default();
                let replica_ok = replicas.iter().any(|fields| {
                    field(fields, "port") == Some(&self.replica.client_port().to_string())
                        && field(fields, "flags") == Some(&"slave".to_owned())
                });
                if replica_ok && others.len() == 2 {
                    break;
                }
                assert!(Instant::now() < deadline, "sentinel {port} never saw the replica and the other sentinels");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for (.., child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `replica` reports its link to the master up (its first sync done).
fn wait_in_sync(replica: &RedisServer) {
    let deadline = Instant::now() + PATIENCE * 3;
    loop {
        let info: String = replica
            .connection()
            .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
            .unwrap_or_default();
        if info.contains("master_link_status:up") {
            return;
        }
        assert!(Instant::now() < deadline, "the replica never synchronised with its master");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_sentinel(dir: &std::path::Path, index: usize, master_port: u16, pki: Option<&TestPki>) -> (u16, u16, Child) {
    let port = free_port();
    let conf = dir.join(format!("sentinel-{index}.conf"));
    // A sentinel rewrites its file with what it learns, so each has its own.
    let mut text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} 10000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display()
    );
    let tls_port = if let Some(pki) = pki {
        let tls_port = free_port();
        let path = |f: &str| pki.path(f).display().to_string();
        text.push_str(&format!(
            "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
             tls-auth-clients no\ntls-replication yes\n",
            path("server.crt"),
            path("server.key"),
            path("ca.crt")
        ));
        tls_port
    } else {
        0
    };
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (make test installs it)");
    let deadline = Instant::now() + PATIENCE;
    while sentinel_query::<String>(port, |c| c.arg("myid")).is_err() {
        assert!(Instant::now() < deadline, "sentinel {port} did not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    (port, tls_port, child)
}

fn sentinel_query<T: redis::FromRedisValue>(
    port: u16,
    build: impl FnOnce(&mut redis::Cmd) -> &mut redis::Cmd,
) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    let mut cmd = redis::cmd("SENTINEL");
    build(&mut cmd).query(&mut conn)
}

/// The value after `name` in a flat `[name, value, ...]` list, as `SENTINEL replicas` gives.
fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a String> {
    fields.chunks(2).find(|pair| pair[0] == name).map(|pair| &pair[1])
}
