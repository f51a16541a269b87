//! Helpers of the operations tests: the local cluster of `deploy/local/cluster.sh` (Redis, three
//! real `roomcast` processes, nginx, Prometheus) on free ports, Prometheus queries and the Grafana
//! dashboard's queries.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{PATIENCE, http};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The cluster `deploy/local/cluster.sh start` runs, in its own run directory; stopped on drop.
pub struct LocalCluster {
    pub dir: PathBuf,
    pub lb: SocketAddr,
    pub nodes: [SocketAddr; 3],
    pub prometheus: SocketAddr,
    stopped: bool,
}

impl LocalCluster {
    /// Starts the cluster with the `roomcast` binary of this build and a 1 s scrape interval.
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("roomcast-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Six distinct free ports (two quick binds may hand out the same one).
        let mut ports = Vec::new();
        while ports.len() < 6 {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let nodes = [addr(ports[0]), addr(ports[1]), addr(ports[2])];
        let (lb, prometheus, redis) = (addr(ports[3]), addr(ports[4]), ports[5]);
        let node_ports = nodes.iter().map(|n| n.port().to_string()).collect::<Vec<_>>().join(" ");
        let mut cluster = Self { dir, lb, nodes, prometheus, stopped: true };
        let output = cluster
            .script("start")
            .env("LB_PORT", lb.port().to_string())
            .env("NODE_PORTS", node_ports)
            .env("REDIS_PORT", redis.to_string())
            .env("PROMETHEUS_PORT", prometheus.port().to_string())
            .env("SCRAPE_INTERVAL", "1s")
            .env("ROOMCAST_JWT_SECRET", crate::common::SECRET)
            .env("ROOMCAST_API_KEY", crate::common::API_KEY)
            .output()
            .expect("bash runs deploy/local/cluster.sh");
        cluster.stopped = false;
        assert!(
            output.status.success(),
            "cluster.sh start failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster
    }

    fn script(&self, verb: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(repo().join("deploy/local/cluster.sh"))
            .arg(verb)
            .env("RUN_DIR", &self.dir)
            .env("ROOMCAST_BIN", env!("CARGO_BIN_EXE_roomcast"));
        command
    }

    /// The pid of `name` (`redis`, `node-a`, `nginx`, `prometheus`, ...) from its pid file.
    pub fn pid(&self, name: &str) -> u32 {
        let path = self.dir.join(format!("{name}.pid"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().parse().unwrap()
    }

    /// Every pid the script recorded.
    pub fn pids(&self) -> Vec<u32> {
        ["redis", "node-a", "node-b", "node-c", "nginx", "prometheus"].iter().map(|n| self.pid(n)).collect()
    }

    /// `deploy/local/cluster.sh stop`; asserts it succeeded.
    pub fn stop(&mut self) {
        self.stopped = true;
        let output = self.script("stop").output().expect("bash runs deploy/local/cluster.sh");
        assert!(output.status.success(), "cluster.sh stop failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Runs an instant query through Prometheus' HTTP API and returns `data.result`.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let reply = self.prometheus_get(&format!("/api/v1/query?query={}", encode(promql))).await;
        assert_eq!(reply["status"], "success", "{promql}: {reply}");
        reply["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// GETs a Prometheus API path and parses its JSON (errors included).
    pub async fn prometheus_get(&self, path: &str) -> Value {
        let request = format!("GET {path} HTTP/1.1\r\nHost: prometheus\r\nConnection: close\r\n\r\n");
        let (_, body) = http(self.prometheus, &request).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Polls `promql` until `check` holds for its result; panics with the last result after `PATIENCE` × 2.
    pub async fn query_until(&self, promql: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            let result = self.query(promql).await;
            if check(&result) {
                return result;
            }
            assert!(Instant::now() < deadline, "{promql} never held; last result: {result:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.script("stop").output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a process with this pid still exists.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// The value of a sample of an instant vector, as a number.
pub fn sample_value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// Percent-encodes a query string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every PromQL query of `deploy/grafana/roomcast.json`: panel targets and template variables.
pub fn dashboard_queries() -> Vec<String> {
    let path = repo().join("deploy/grafana/roomcast.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    queries
}

fn collect_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", Value::String(q)) => out.push(q.clone()),
                    _ => collect_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// The `roomcast_*` metric names a query uses, with histogram suffixes (`_bucket`, `_sum`,
/// `_count`) taken back to the histogram's name.
pub fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("roomcast_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| roomcast_gateway::metrics::ALL.contains(b)))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

/// A dashboard query made runnable outside Grafana: its variables replaced by plain values.
pub fn without_grafana_variables(query: &str) -> String {
    query.replace("$__rate_interval", "1m").replace("$node", ".+")
}
