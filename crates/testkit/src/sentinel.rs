//! [`SentinelGroup`]: a master, a replica and three Redis Sentinels watching them, all real
//! processes on free ports (`redis-server --sentinel`, which is what Debian's
//! `redis-sentinel` runs), tuned to fail over within a few seconds of the master's death.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{PATIENCE, RedisServer, free_port};

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
    sentinels: Vec<(u16, Child)>,
    dir: PathBuf,
}

impl SentinelGroup {
    /// Starts the servers and the sentinels, and waits until the replica is in sync and every
    /// sentinel knows it and the other two sentinels (a failover needs both).
    pub fn start() -> Self {
        // Without the delay (5 s by default) a replica's first sync waits for more replicas.
        let master = RedisServer::start_with_extra(&["--repl-diskless-sync-delay", "0"]);
        let port = master.port.to_string();
        let replica =
            RedisServer::start_with_extra(&["--replicaof", "127.0.0.1", &port, "--repl-diskless-sync-delay", "0"]);
        let dir = std::env::temp_dir().join(format!("roomcast-sentinels-{}-{}", std::process::id(), master.port));
        std::fs::create_dir_all(&dir).unwrap();
        let sentinels = (0..3).map(|i| start_sentinel(&dir, i, master.port)).collect();
        let group = Self { master, replica, sentinels, dir };
        group.wait_until_ready();
        group
    }

    /// `host:port` of each sentinel.
    pub fn seeds(&self) -> Vec<String> {
        self.sentinels.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect()
    }

    /// The port of the server the sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        let (port, _) = self.sentinels.first()?;
        let addr: Option<(String, u16)> =
            sentinel_query(*port, |c| c.arg("get-master-addr-by-name").arg(MASTER_NAME)).ok()?;
        addr.map(|(_, port)| port)
    }

    /// Waits until the sentinels name the replica as master and it answers as one.
    pub fn wait_for_failover(&self) {
        let deadline = Instant::now() + PATIENCE * 3;
        loop {
            let promoted = self.master_port() == Some(self.replica.port)
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
        self.master.set_extra(&["--replicaof", "127.0.0.1", &self.replica.port.to_string()]);
        self.master.restart();
        wait_in_sync(&self.master);
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + PATIENCE * 3;
        wait_in_sync(&self.replica);
        for (port, _) in &self.sentinels {
            loop {
                let replicas: Vec<Vec<String>> =
                    sentinel_query(*port, |c| c.arg("replicas").arg(MASTER_NAME)).unwrap_or_default();
                let others: Vec<Vec<String>> =
                    sentinel_query(*port, |c| c.arg("sentinels").arg(MASTER_NAME)).unwrap_or_default();
                let replica_ok = replicas.iter().any(|fields| {
                    field(fields, "port") == Some(&self.replica.port.to_string())
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
        for (_, child) in &mut self.sentinels {
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

fn start_sentinel(dir: &std::path::Path, index: usize, master_port: u16) -> (u16, Child) {
    let port = free_port();
    let conf = dir.join(format!("sentinel-{index}.conf"));
    // A sentinel rewrites its file with what it learns, so each has its own.
    let text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} 10000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display()
    );
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
    (port, child)
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
