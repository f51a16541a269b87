//! Test fixtures for roomcast: real `redis-server` processes on free ports, stopped on drop.
//!
//! Tests never use the machine's shared Redis on 6379. `make test` installs `redis-server`
//! from Debian when it is missing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod sentinel;
mod tls;

pub use sentinel::{MASTER_NAME as SENTINEL_MASTER, SentinelGroup};
pub use tls::TestPki;

/// Upper bound for anything a test polls for.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One `redis-server` on a free port, without persistence unless asked.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    /// Its TLS port on 127.0.0.1, when started with [`Self::start_tls`].
    pub tls_port: Option<u16>,
    child: Option<Child>,
    cluster: bool,
    persistent: bool,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start() -> Self {
        Self::start_with(false, false)
    }

    /// Starts a server that writes every command to its append-only file before answering
    /// (`appendfsync always`), so a restart after a kill keeps every acknowledged write.
    pub fn start_persistent() -> Self {
        Self::start_with(false, true)
    }

    fn start_with(cluster: bool, persistent: bool) -> Self {
        Self::start_with_args(cluster, persistent, Vec::new(), None)
    }

    /// Starts a server that also listens for TLS on [`Self::tls_port`], with `pki`'s server
    /// certificate (`server.crt`, or `elsewhere.crt` when `wrong_host`) and its CA for client
    /// certificates, which it requires when `client_certs`. The plain port stays open for the
    /// test's own checks.
    pub fn start_tls(pki: &TestPki, client_certs: bool, wrong_host: bool) -> Self {
        Self::start_tls_with(pki, client_certs, wrong_host, &[])
    }

    /// Like [`Self::start_tls`], with `extra` arguments after the TLS ones.
    pub fn start_tls_with(pki: &TestPki, client_certs: bool, wrong_host: bool, extra: &[&str]) -> Self {
        Self::start_tls_node(pki, client_certs, wrong_host, false, extra)
    }

    fn start_tls_node(pki: &TestPki, client_certs: bool, wrong_host: bool, cluster: bool, extra: &[&str]) -> Self {
        let tls_port = free_port();
        let leaf = if wrong_host { "elsewhere" } else { "server" };
        let path = |f: &str| pki.path(f).display().to_string();
        let args = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&format!("{leaf}.crt")),
            "--tls-key-file".to_owned(),
            path(&format!("{leaf}.key")),
            "--tls-ca-cert-file".to_owned(),
            path("ca.crt"),
            "--tls-auth-clients".to_owned(),
            if client_certs { "yes" } else { "no" }.to_owned(),
        ];
        let args = args.into_iter().chain(extra.iter().map(|a| (*a).to_owned())).collect();
        Self::start_with_args(cluster, false, args, Some(tls_port))
    }

    /// Starts a server with `args` added to its command line (such as ACL users), on every
    /// (re)start.
    pub fn start_with_extra(args: &[&str]) -> Self {
        Self::start_with_args(false, false, args.iter().map(|a| (*a).to_owned()).collect(), None)
    }

    fn start_with_args(cluster: bool, persistent: bool, extra: Vec<String>, tls_port: Option<u16>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("roomcast-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { port, dir, tls_port, child: None, cluster, persistent, extra };
        server.restart();
        server
    }

    /// Adds command-line arguments from the next (re)start on.
    pub fn add_extra(&mut self, args: &[&str]) {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
    }

    /// The port clients use: the TLS port when there is one.
    pub fn client_port(&self) -> u16 {
        self.tls_port.unwrap_or(self.port)
    }

    /// `rediss://127.0.0.1:<tls port>`, for a server started with [`Self::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port.expect("started with start_tls"))
    }

    /// Starts a cluster-enabled server (not yet part of a cluster).
    fn start_cluster_node() -> Self {
        Self::start_with(true, false)
    }

    /// (Re)starts the server on the same port, with nothing kept from before unless persistent.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        if self.persistent {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        if self.cluster {
            // An explicit bus port: the default (port + 10000) overflows for high ephemeral ports.
            let bus = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            command.args(["--cluster-enabled", "yes", "--cluster-port", &bus.to_string()]);
            command.args(["--cluster-config-file", &format!("nodes-{}.conf", self.port)]);
        }
        command.args(&self.extra);
        let child = command
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not answer on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process with SIGSTOP: its sockets stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("kill is installed");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain (blocking) connection for checks.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Sharded subscribers of `channel` on this node (`PUBSUB SHARDNUMSUB`).
    pub fn shardnumsub(&self, channel: &str) -> u64 {
        let mut c = self.connection().unwrap();
        let (_, n): (String, u64) = redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel).query(&mut c).unwrap();
        n
    }

    /// Subscribers of `channel` (`PUBSUB NUMSUB`).
    pub fn numsub(&self, channel: &str) -> u64 {
        let mut c = self.connection().unwrap();
        let (_, n): (String, u64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query(&mut c).unwrap();
        n
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` until it holds or `what` times out.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A Redis Cluster of three masters (no replicas), each a `redis-server` on free ports.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters; `nodes[i].port` is a seed.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them with `redis-cli --cluster create`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
        Self::join(nodes, None)
    }

    /// Three cluster-enabled servers that also speak TLS, with the cluster bus on TLS
    /// (`tls-cluster yes`, so the cluster reports TLS ports to TLS clients), joined over TLS.
    pub fn start_tls(pki: &TestPki) -> Self {
        let nodes: Vec<RedisServer> =
            (0..3).map(|_| RedisServer::start_tls_node(pki, false, false, true, &["--tls-cluster", "yes"])).collect();
        Self::join(nodes, Some(pki))
    }

    /// Joins `nodes` into one cluster (over TLS with `pki`) and waits until it is ok.
    fn join(nodes: Vec<RedisServer>, pki: Option<&TestPki>) -> Self {
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.client_port())).collect();
        // `timeout`: redis-cli waits for the cluster to join without an end of its own.
        let mut create = Command::new("timeout");
        create.args(["60", "redis-cli"]);
        if let Some(pki) = pki {
            create.args(["--tls", "--cacert"]).arg(pki.path("ca.crt"));
        }
        let status = create
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed with redis-server");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// `rediss://host:port` seeds, for a cluster started with [`Self::start_tls`].
    pub fn tls_seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tls_url).collect()
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + PATIENCE;
        for node in &self.nodes {
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut node.connection().unwrap()).unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `host:port` seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect()
    }

    /// The slot of `key` and the index of the master that serves it.
    pub fn owner(&self, key: &str) -> (u16, usize) {
        let mut c = self.nodes[0].connection().unwrap();
        let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut c).unwrap();
        let index = self
            .nodes
            .iter()
            .position(|n| {
                let mut c = n.connection().unwrap();
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).unwrap();
                nodes.lines().any(|l| l.contains("myself") && slot_in(l, slot))
            })
            .expect("some master owns the slot");
        (slot, index)
    }

    /// Moves `slot` (and its keys) from master `from` to master `to`, as a resharding does.
    pub fn migrate(&self, slot: u16, from: usize, to: usize) {
        let id = |i: usize| -> String {
            redis::cmd("CLUSTER").arg("MYID").query(&mut self.nodes[i].connection().unwrap()).unwrap()
        };
        let (from_id, to_id) = (id(from), id(to));
        let mut src = self.nodes[from].connection().unwrap();
        let mut dst = self.nodes[to].connection().unwrap();
        let _: () =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("IMPORTING").arg(&from_id).query(&mut dst).unwrap();
        let _: () =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("MIGRATING").arg(&to_id).query(&mut src).unwrap();
        loop {
            let keys: Vec<String> =
                redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100).query(&mut src).unwrap();
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut src)
                .unwrap();
        }
        for node in &self.nodes {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query(&mut node.connection().unwrap())
                .unwrap();
        }
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn slot_in(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| match range.split_once('-') {
        Some((a, b)) => a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b),
        None => range.parse::<u16>() == Ok(slot),
    })
}
