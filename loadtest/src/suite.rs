//! The standard suite: every run of a suite file against every target of a targets file, in
//! the same process and the same session, then the JSON file, the plots and the markdown table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::report::{Better, RunReport, ScenarioResult, markdown};
use crate::scenario::broadcast::BroadcastParams;
use crate::scenario::capacity::CapacityParams;
use crate::scenario::chat::ChatParams;
use crate::scenario::churn::ChurnParams;
use crate::scenario::connect::ConnectParams;
use crate::scenario::cycles::CyclesParams;
use crate::scenario::idle::IdleParams;
use crate::scenario::{broadcast, capacity, chat, churn, connect, cycles, idle};
use crate::target::Target;

/// One entry of a suite file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "scenario", rename_all = "kebab-case")]
pub enum Run {
    /// Idle connections in steps.
    Idle(IdleParams),
    /// One room, one publisher.
    Broadcast(BroadcastParams),
    /// One room, publish rates stepped up until p99 passes a bound.
    Capacity(CapacityParams),
    /// Many small rooms on the single node.
    Chat(ChatParams),
    /// The chat shape over the target's cluster nodes.
    CrossNode(ChatParams),
    /// Connection storm.
    Connect(ConnectParams),
    /// Delivery while every client drops its connection at random.
    Churn(ChurnParams),
    /// Connect/disconnect cycles and the server's RSS.
    Cycles(CyclesParams),
}

/// A suite file: `[[run]]` entries, run in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The runs.
    pub run: Vec<Run>,
}

/// A targets file: `[[target]]` entries; the first is the one ratios are taken of.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// The targets.
    pub target: Vec<Target>,
}

/// Reads a TOML file into `T`, naming the file in errors.
pub fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid", path.display()))
}

/// Runs one scenario against one target.
pub async fn run_one(run: &Run, target: &Target) -> anyhow::Result<Vec<ScenarioResult>> {
    Ok(match run {
        Run::Idle(p) => idle::run(target, p).await?,
        Run::Broadcast(p) => vec![broadcast::run(target, p).await?],
        Run::Capacity(p) => vec![capacity::run(target, p).await?],
        Run::Chat(p) => vec![chat::run(target, std::slice::from_ref(&target.single), p).await?],
        Run::CrossNode(p) => vec![chat::run(target, &target.cluster, p).await?],
        Run::Connect(p) => vec![connect::run(target, p).await?],
        Run::Churn(p) => vec![churn::run(target, p).await?],
        Run::Cycles(p) => vec![cycles::run(target, p).await?],
    })
}

/// Where the suite writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The JSON result file.
    pub json: PathBuf,
    /// The markdown report.
    pub markdown: PathBuf,
    /// Directory for the SVG plots.
    pub plots: PathBuf,
    /// How the markdown file links to `plots` (relative path prefix).
    pub plots_link: String,
}

/// Runs `suite` against every target and writes the outputs.
pub async fn run_suite(
    suite: &Suite,
    targets: &Targets,
    commit: &str,
    date: &str,
    out: &Outputs,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let mut results = Vec::new();
    for run in &suite.run {
        for target in &targets.target {
            match run_one(run, target).await {
                Ok(rs) => results.extend(rs),
                Err(e) => {
                    tracing::warn!(target = %target.name, error = %format!("{e:#}"), "run failed");
                    let mut r = ScenarioResult::new(
                        scenario_name(run),
                        format!("{} (failed run)", scenario_name(run)),
                        &target.name,
                    );
                    r.figure("failed runs", 1.0, "", Better::Zero);
                    r.notes.push(format!("{run:?} failed: {e:#}"));
                    results.push(r);
                }
            }
            // Let the server settle (closed sockets, TIME_WAIT, timers) before the next target.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let report = RunReport {
        date: date.to_owned(),
        commit: commit.to_owned(),
        machine: machine(),
        wall_seconds: started.elapsed().as_secs_f64(),
        results,
    };
    write_outputs(&report, out)?;
    Ok(report)
}

/// Writes the JSON file, one SVG per scenario label that has latencies, and the markdown.
pub fn write_outputs(report: &RunReport, out: &Outputs) -> anyhow::Result<()> {
    for path in [&out.json, &out.markdown] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    std::fs::write(&out.json, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", out.json.display()))?;
    std::fs::create_dir_all(&out.plots).with_context(|| format!("creating {}", out.plots.display()))?;
    let mut plots = BTreeMap::new();
    let mut series: BTreeMap<&str, Vec<Series>> = BTreeMap::new();
    for r in &report.results {
        if let Some(l) = r.latency.as_ref().filter(|l| l.count > 0) {
            series.entry(&r.label).or_default().push((r.target.clone(), l.curve.clone()));
        }
    }
    for (label, lines) in series {
        let file = format!("{}.svg", slug(label));
        std::fs::write(
            out.plots.join(&file),
            crate::svg::latency_plot(&format!("{label}: latency by percentile"), &lines),
        )?;
        plots.insert(label.to_owned(), format!("{}{file}", out.plots_link));
    }
    let first = report.results.first().map(|r| r.target.clone()).unwrap_or_default();
    std::fs::write(&out.markdown, markdown(report, &first, &plots))
        .with_context(|| format!("writing {}", out.markdown.display()))?;
    Ok(())
}

/// One plotted line: target name and (percentile, ms) points.
type Series = (String, Vec<(f64, f64)>);

fn scenario_name(run: &Run) -> &'static str {
    match run {
        Run::Idle(_) => "idle",
        Run::Broadcast(_) => "broadcast",
        Run::Capacity(_) => "capacity",
        Run::Chat(_) => "chat",
        Run::CrossNode(_) => "cross-node",
        Run::Connect(_) => "connect",
        Run::Churn(_) => "churn",
        Run::Cycles(_) => "cycles",
    }
}

/// A file-name form of a label.
pub fn slug(label: &str) -> String {
    let mut s: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_owned()
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} × {model}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_suite_parses() {
        let suite: Suite = toml::from_str(include_str!("../suite.toml")).unwrap();
        assert!(suite.run.iter().any(|r| matches!(r, Run::CrossNode(_))));
        let bad = toml::from_str::<Suite>("[[run]]\nscenario = \"broadcast\"\nsubscriber = 5\n");
        assert!(bad.unwrap_err().to_string().contains("subscriber"));
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("broadcast 1→10k 100 B"), "broadcast-1-10k-100-b");
    }
}
