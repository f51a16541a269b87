//! `plan`: how many nodes, cores, memory and Redis Cluster shards a deployment needs, from the
//! constants the last suite run measured on this kind of machine.
//!
//! The model is linear and says so: a node's CPU is a cost per publish (its API call or its
//! copy from Redis, decoding, the room lookup) plus a cost per delivery (framing is shared, so
//! this is mostly the socket write); its memory is a cost per idle connection; Redis' CPU is a
//! cost per publish (the publish script and its fan-out to the nodes). Every resource is then
//! sized so that it runs at most at `headroom` of what it can do, and the largest need decides
//! the node count. What the model leaves out is printed with the plan (see `docs/scaling.md`).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::{RunReport, ScenarioResult};

/// What the plan is for, and the machine it assumes.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanParams {
    /// Concurrent connections.
    #[arg(long, value_parser = parse_count)]
    pub connections: f64,
    /// Publishes per second, all rooms together.
    #[arg(long, value_parser = parse_count)]
    pub publish_rate: f64,
    /// Recipients per publish, on average.
    #[arg(long, default_value_t = 20.0)]
    pub fanout: f64,
    /// Cores per node.
    #[arg(long, default_value_t = 4)]
    pub cores_per_node: u32,
    /// Memory per node (GiB).
    #[arg(long, default_value_t = 8.0)]
    pub memory_per_node_gib: f64,
    /// Connections one node may hold at most (its file descriptor limit, less a margin).
    #[arg(long, value_parser = parse_count, default_value = "200k")]
    pub max_connections_per_node: f64,
    /// The share of a resource the plan lets steady traffic use (the rest absorbs peaks and a
    /// lost node's reconnects).
    #[arg(long, default_value_t = 0.5)]
    pub headroom: f64,
    /// The suite results to read (`bench/results/<date>-<commit>.json`); the run
    /// `bench/RESULTS.md` reports when not given.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

/// `10M`, `200k`, `1.5M` or a plain number.
fn parse_count(s: &str) -> Result<f64, String> {
    let (digits, scale) = match s.trim().to_ascii_lowercase() {
        t if t.ends_with('m') => (t[..t.len() - 1].to_owned(), 1e6),
        t if t.ends_with('k') => (t[..t.len() - 1].to_owned(), 1e3),
        t => (t, 1.0),
    };
    let n: f64 = digits.parse().map_err(|_| format!("{s:?} is not a count like 10M, 200k or 5000"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{s:?} must be a positive count"));
    }
    Ok(n * scale)
}

/// The constants a plan is made of, as one suite run measured them.
#[derive(Debug, Clone, PartialEq)]
pub struct Constants {
    /// Where they come from: date, commit, machine.
    pub source: String,
    /// Resident memory per idle connection (bytes), at the largest idle step.
    pub memory_per_connection: f64,
    /// Node CPU per delivery (µs), from the paced broadcast 1→1k at 20/s.
    pub cpu_per_delivery_us: f64,
    /// Node CPU per publish besides its deliveries (µs), from the cross-node chat at 5k msg/s.
    pub cpu_per_publish_us: f64,
    /// Node CPU per connect with an HS256 token (µs), from the connect storm.
    pub cpu_per_connect_us: f64,
    /// Redis CPU per publish (µs of its process, event loop included), from the cross-node chat.
    pub redis_per_publish_us: f64,
}

impl Constants {
    /// Reads roomcast's figures from a suite result file.
    pub fn from_report(report: &RunReport) -> anyhow::Result<Self> {
        let find = |label: &str| {
            report
                .results
                .iter()
                .find(|r| r.target == "roomcast" && r.label.starts_with(label))
                .with_context(|| format!("the results have no roomcast run of {label:?}: run `make bench` first"))
        };
        let value = |r: &ScenarioResult, name: &str| {
            r.value(name).with_context(|| format!("{:?} has no figure {name:?}", r.label))
        };
        let idle = report
            .results
            .iter()
            .filter(|r| r.target == "roomcast" && r.scenario == "idle")
            .max_by(|a, b| {
                a.value("connections held")
                    .partial_cmp(&b.value("connections held"))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .context("the results have no roomcast idle run")?;
        let paced = find("broadcast 1→1k 100 B at 20/s")?;
        let chat = find("chat 5000 msg/s, 2 nodes")?;
        let connect = find("connect storm 5k HS256")?;
        let cpu_per_delivery_us = 1e6 / value(paced, "deliveries per server CPU-second")?;
        let per_message = value(chat, "server CPU per message")?;
        let fanout = value(chat, "deliveries per message")?;
        Ok(Self {
            source: format!("{} at {} on {}", report.date, report.commit, report.machine),
            memory_per_connection: value(idle, "RSS per connection")? * 1024.0,
            cpu_per_delivery_us,
            cpu_per_publish_us: (per_message - fanout * cpu_per_delivery_us).max(0.0),
            cpu_per_connect_us: value(connect, "server CPU per connection")?,
            redis_per_publish_us: value(chat, "Redis CPU per message")?,
        })
    }
}

/// The result file of the run `bench/RESULTS.md` reports (its first line names the date and
/// commit): the last standard suite run, which file names alone cannot order.
pub fn last_results(results_md: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(results_md)
        .with_context(|| format!("reading {}: run `make bench` first", results_md.display()))?;
    let line = text.lines().find(|l| l.starts_with("Run ")).context("no \"Run <date> at commit\" line")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (date, commit) = match words.as_slice() {
        ["Run", date, "at", "commit", commit, ..] => (*date, commit.trim_matches(|c| c == '`' || c == ',')),
        _ => anyhow::bail!("{}: cannot read the run from {line:?}", results_md.display()),
    };
    let dir = results_md.parent().unwrap_or(Path::new(".")).join("results");
    Ok(dir.join(format!("{date}-{commit}.json")))
}

/// What a deployment needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Gateway nodes.
    pub nodes: u64,
    /// Nodes each need would ask for alone: connections per node limit, memory, CPU.
    pub nodes_for: [(&'static str, u64); 3],
    /// CPU the traffic uses, in cores, all nodes together.
    pub node_cores_used: f64,
    /// Memory the connections use (GiB), all nodes together.
    pub memory_used_gib: f64,
    /// Redis CPU the traffic uses, in cores.
    pub redis_cores_used: f64,
    /// Redis Cluster masters (each one core); 1 means one Redis (with replicas) will do.
    pub redis_shards: u64,
    /// Seconds for the other nodes to take a lost node's connections back.
    pub reconnect_secs: f64,
}

impl Plan {
    /// Sizes a deployment for `p` with `c`.
    pub fn for_load(p: &PlanParams, c: &Constants) -> anyhow::Result<Plan> {
        anyhow::ensure!(p.headroom > 0.0 && p.headroom <= 1.0, "--headroom must be in (0, 1]");
        anyhow::ensure!(p.cores_per_node > 0 && p.memory_per_node_gib > 0.0, "a node needs cores and memory");
        anyhow::ensure!(p.max_connections_per_node >= 1.0, "--max-connections-per-node must be at least 1");
        anyhow::ensure!(p.fanout.is_finite() && p.fanout >= 0.0, "--fanout must be a positive number");
        let gib = 1024.0 * 1024.0 * 1024.0;
        let node_cores_used = p.publish_rate * (c.cpu_per_publish_us + p.fanout * c.cpu_per_delivery_us) / 1e6;
        let memory_used_gib = p.connections * c.memory_per_connection / gib;
        let ceil = |x: f64| x.ceil().max(1.0) as u64;
        let nodes_for = [
            ("connections per node", ceil(p.connections / p.max_connections_per_node)),
            ("memory", ceil(memory_used_gib / (p.memory_per_node_gib * p.headroom))),
            ("CPU", ceil(node_cores_used / (f64::from(p.cores_per_node) * p.headroom))),
        ];
        let nodes = nodes_for.iter().map(|(_, n)| *n).max().unwrap_or(1);
        let redis_cores_used = p.publish_rate * c.redis_per_publish_us / 1e6;
        let redis_shards = ceil(redis_cores_used / p.headroom);
        // A lost node's connections come back on the others, over the CPU traffic leaves free.
        let spare_cores = (nodes.saturating_sub(1) as f64 * f64::from(p.cores_per_node) - node_cores_used).max(0.0);
        let reconnect_secs = if nodes > 1 && spare_cores > 0.0 {
            p.connections / nodes as f64 * c.cpu_per_connect_us / 1e6 / spare_cores
        } else {
            f64::INFINITY
        };
        Ok(Plan { nodes, nodes_for, node_cores_used, memory_used_gib, redis_cores_used, redis_shards, reconnect_secs })
    }
}

/// The plan as text: the answer, the arithmetic behind it and what it leaves out.
pub fn render(p: &PlanParams, c: &Constants, plan: &Plan) -> String {
    let mut out = String::new();
    let n = |x: f64| crate::report::fmt_value(x);
    let _ = writeln!(
        out,
        "roomcast capacity plan: {} connections, {} publishes/s, {} recipients each",
        n(p.connections),
        n(p.publish_rate),
        n(p.fanout)
    );
    let _ = writeln!(out, "constants from the suite run of {}:", c.source);
    let _ = writeln!(out, "  memory per idle connection   {:>9.2} KiB", c.memory_per_connection / 1024.0);
    let _ = writeln!(out, "  node CPU per delivery        {:>9.2} µs", c.cpu_per_delivery_us);
    let _ = writeln!(out, "  node CPU per publish         {:>9.2} µs (besides its deliveries)", c.cpu_per_publish_us);
    let _ = writeln!(out, "  node CPU per connect (HS256) {:>9.2} µs", c.cpu_per_connect_us);
    let _ = writeln!(out, "  Redis CPU per publish        {:>9.2} µs", c.redis_per_publish_us);
    let _ = writeln!(out, "headroom: steady traffic uses at most {:.0}% of any resource", p.headroom * 100.0);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "gateway nodes: {} ({} cores and {} GiB each)",
        plan.nodes,
        p.cores_per_node,
        n(p.memory_per_node_gib)
    );
    for (what, nodes) in plan.nodes_for {
        let _ = writeln!(out, "  for {what:<21} {nodes}");
    }
    let _ = writeln!(
        out,
        "  cores in all: {} (traffic uses {:.1})",
        u64::from(p.cores_per_node).saturating_mul(plan.nodes),
        plan.node_cores_used
    );
    let _ = writeln!(
        out,
        "  memory in all: {} GiB (connections use {:.1} GiB)",
        n(p.memory_per_node_gib * plan.nodes as f64),
        plan.memory_used_gib
    );
    let _ = writeln!(out, "  connections per node: {}", n((p.connections / plan.nodes as f64).round()));
    if plan.reconnect_secs.is_finite() {
        let secs = plan.reconnect_secs;
        let took = if secs < 1.0 { format!("{:.0} ms", secs * 1000.0) } else { format!("{secs:.1} s") };
        let _ = writeln!(out, "  a lost node's connections reconnect to the others in about {took} of spare CPU");
    } else if plan.nodes == 1 {
        let _ = writeln!(out, "  one node: a lost node is an outage; plan two at least");
    } else {
        let _ = writeln!(out, "  no CPU is left for a lost node's connections: lower --headroom");
    }
    let _ = writeln!(
        out,
        "Redis: {} ({:.2} cores of publish work)",
        if plan.redis_shards == 1 {
            "one Redis (with a replica, or Sentinel)".to_owned()
        } else {
            format!("a Redis Cluster of {} masters", plan.redis_shards)
        },
        plan.redis_cores_used
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "left out (docs/scaling.md): Redis' cost per publish is measured with rooms on 2 nodes and grows"
    );
    let _ =
        writeln!(out, "with the nodes a room's members are on; history reads at reconnect; presence; TLS; payloads");
    let _ = writeln!(out, "other than 100 B; a machine unlike the one the suite ran on.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constants() -> Constants {
        Constants {
            source: "test".into(),
            memory_per_connection: 5.0 * 1024.0,
            cpu_per_delivery_us: 5.0,
            cpu_per_publish_us: 20.0,
            cpu_per_connect_us: 60.0,
            redis_per_publish_us: 30.0,
        }
    }

    fn params(connections: &str, rate: &str) -> PlanParams {
        PlanParams {
            connections: parse_count(connections).unwrap(),
            publish_rate: parse_count(rate).unwrap(),
            fanout: 20.0,
            cores_per_node: 4,
            memory_per_node_gib: 8.0,
            max_connections_per_node: 200_000.0,
            headroom: 0.5,
            results: None,
        }
    }

    fn result(scenario: &str, label: &str, figures: &[(&str, f64)]) -> ScenarioResult {
        let mut r = ScenarioResult::new(scenario, label.into(), "roomcast");
        for (name, value) in figures {
            r.figure(name, *value, "", crate::report::Better::Lower);
        }
        r
    }

    #[test]
    fn constants_come_from_roomcast_s_runs_of_the_suite() {
        let mut report = RunReport {
            date: "2026-12-01".into(),
            commit: "abc".into(),
            machine: "2 cores".into(),
            wall_seconds: 1.0,
            results: vec![
                result("idle", "idle 1k", &[("connections held", 1000.0), ("RSS per connection", 9.0)]),
                result("idle", "idle 19k", &[("connections held", 19000.0), ("RSS per connection", 5.0)]),
                result("broadcast", "broadcast 1→1k 100 B at 20/s", &[("deliveries per server CPU-second", 200_000.0)]),
                result(
                    "cross-node",
                    "chat 5000 msg/s, 2 nodes",
                    &[
                        ("server CPU per message", 80.0),
                        ("deliveries per message", 6.0),
                        ("Redis CPU per message", 40.0),
                    ],
                ),
                result("connect", "connect storm 5k HS256, concurrency 128", &[("server CPU per connection", 60.0)]),
            ],
        };
        let c = Constants::from_report(&report).unwrap();
        assert_eq!(c.memory_per_connection, 5.0 * 1024.0, "the largest idle step");
        assert_eq!(c.cpu_per_delivery_us, 5.0);
        assert_eq!(c.cpu_per_publish_us, 80.0 - 6.0 * 5.0);
        assert_eq!((c.cpu_per_connect_us, c.redis_per_publish_us), (60.0, 40.0));
        // A peer's figures are never taken, and a missing run is named.
        report.results.retain(|r| !r.label.starts_with("broadcast"));
        let err = Constants::from_report(&report).unwrap_err().to_string();
        assert!(err.contains("broadcast 1→1k 100 B at 20/s"), "{err}");
    }

    #[test]
    fn the_last_run_is_the_one_results_md_names() {
        let dir = std::env::temp_dir().join(format!("plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let md = dir.join("RESULTS.md");
        std::fs::write(&md, "# roomcast benchmark results\n\nRun 2026-12-01 at commit `fd6eff0` on 2 cores.\n")
            .unwrap();
        assert_eq!(last_results(&md).unwrap(), dir.join("results").join("2026-12-01-fd6eff0.json"));
        std::fs::write(&md, "nothing here\n").unwrap();
        assert!(last_results(&md).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counts_take_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_count("10M"), Ok(10e6));
        assert_eq!(parse_count("200k"), Ok(200e3));
        assert_eq!(parse_count("1.5m"), Ok(1.5e6));
        assert!(parse_count("lots").is_err());
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn the_largest_need_sets_the_node_count_and_redis_gets_shards_by_publish_rate() {
        // 200k publishes/s × (20 + 20 × 5) µs = 24 cores of traffic; at 50% of 4 cores, 12 nodes.
        let plan = Plan::for_load(&params("1M", "200k"), &constants()).unwrap();
        assert_eq!(plan.nodes_for, [("connections per node", 5), ("memory", 2), ("CPU", 12)]);
        assert_eq!(plan.nodes, 12);
        assert!((plan.node_cores_used - 24.0).abs() < 1e-9);
        // 200k × 30 µs = 6 Redis cores; at 50%, 12 masters.
        assert_eq!(plan.redis_shards, 12);
        // 1M / 12 connections × 60 µs over (11 × 4 - 24) spare cores.
        assert!((plan.reconnect_secs - 1e6 / 12.0 * 60e-6 / 20.0).abs() < 1e-9);

        // 10M connections at a low rate: connections per node decide.
        let plan = Plan::for_load(&params("10M", "1000"), &constants()).unwrap();
        assert_eq!(plan.nodes, 50);
        assert_eq!(plan.redis_shards, 1);

        let none = PlanParams { max_connections_per_node: 0.0, ..params("1M", "1k") };
        assert!(Plan::for_load(&none, &constants()).is_err(), "no connections per node is no plan");
    }
}
