//! `roomcast-loadtest`: run one scenario against one target from the command line, or the
//! standard suite from TOML files (`suite`), and report as markdown, JSON and SVG.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use roomcast_loadtest::plan::{self, PlanParams};
use roomcast_loadtest::report::{RunReport, ScenarioResult};
use roomcast_loadtest::scenario::broadcast::BroadcastParams;
use roomcast_loadtest::scenario::capacity::CapacityParams;
use roomcast_loadtest::scenario::chat::ChatParams;
use roomcast_loadtest::scenario::churn::ChurnParams;
use roomcast_loadtest::scenario::connect::ConnectParams;
use roomcast_loadtest::scenario::cycles::CyclesParams;
use roomcast_loadtest::scenario::idle::IdleParams;
use roomcast_loadtest::suite::{self, Outputs, Run, Suite, Targets};
use roomcast_loadtest::target::{Node, Protocol, Target};

#[derive(Debug, Parser)]
#[command(name = "roomcast-loadtest", version, about = "Load tests roomcast and Socket.IO servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Idle connections in steps: server RSS and CPU per connection.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: IdleParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// One publisher, one room of N subscribers.
    Broadcast {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: BroadcastParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// One room, publish rates stepped up until p99 passes a bound.
    Capacity {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: CapacityParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Many small rooms on one node.
    Chat {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: ChatParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// The chat shape over the `--cluster-node` nodes sharing a Redis.
    CrossNode {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: ChatParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Connection storm with JWTs.
    Connect {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: ConnectParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Delivery while every client drops its connection at random (clients connect to
    /// `--node`, the load balancer; messages are published to the `--cluster-node`s).
    Churn {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: ChurnParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Connect/disconnect cycles: the server's RSS after a warm-up and at the end.
    Cycles {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        params: CyclesParams,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Every run of a suite file against every target of a targets file.
    Suite {
        /// Suite file (`[[run]]` entries).
        #[arg(long, default_value = "loadtest/suite.toml")]
        suite: PathBuf,
        /// Targets file (`[[target]]` entries; ratios are taken of the first).
        #[arg(long)]
        targets: PathBuf,
        /// Commit measured, for the report.
        #[arg(long, default_value = "unknown")]
        commit: String,
        /// Date of the run, for the report.
        #[arg(long, default_value = "unknown")]
        date: String,
        /// JSON result file.
        #[arg(long)]
        json: PathBuf,
        /// Markdown report.
        #[arg(long)]
        markdown: PathBuf,
        /// Directory for the SVG latency plots.
        #[arg(long)]
        plots: PathBuf,
        /// Prefix of plot links in the markdown (relative to its directory).
        #[arg(long, default_value = "")]
        plots_link: String,
    },
    /// Nodes, cores, memory and Redis shards for a load, from the last suite run's constants
    /// (see docs/scaling.md).
    Plan {
        #[command(flatten)]
        params: PlanParams,
    },
}

/// The target of a single-scenario command.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// Name in the report.
    #[arg(long, default_value = "roomcast")]
    name: String,
    /// Protocol the target speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Roomcast)]
    protocol: Protocol,
    /// The node, `ADDR` or `ADDR=PID` (the pid enables CPU and RSS figures).
    #[arg(long, default_value = "127.0.0.1:8080")]
    node: Node,
    /// Nodes sharing one Redis, for `cross-node` (repeat).
    #[arg(long = "cluster-node")]
    cluster: Vec<Node>,
    /// HS256 secret.
    #[arg(long, default_value = "dev-secret-do-not-use-in-production")]
    secret: String,
    /// roomcast API key.
    #[arg(long, default_value = "dev-api-key")]
    api_key: String,
    /// PEM EC private key for ES256 tokens.
    #[arg(long)]
    es256_key: Option<PathBuf>,
    /// Node verifying ES256 tokens.
    #[arg(long)]
    es256_node: Option<Node>,
    /// Pid of the cluster's Redis.
    #[arg(long)]
    redis_pid: Option<u32>,
    /// Address of the cluster's Redis, for its command counters.
    #[arg(long)]
    redis_addr: Option<std::net::SocketAddr>,
}

impl From<TargetArgs> for Target {
    fn from(a: TargetArgs) -> Self {
        Target {
            name: a.name,
            protocol: a.protocol,
            secret: a.secret,
            api_key: Some(a.api_key),
            es256_key: a.es256_key,
            single: a.node,
            cluster: a.cluster,
            es256: a.es256_node,
            redis_pid: a.redis_pid,
            redis_addr: a.redis_addr,
        }
    }
}

/// Outputs of a single-scenario command (the markdown table always goes to stdout).
#[derive(Debug, clap::Args)]
struct OutArgs {
    /// Also write the JSON result here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    let (target, run, out) = match cli.command {
        Command::Suite { suite, targets, commit, date, json, markdown, plots, plots_link } => {
            let suite: Suite = suite::read_toml(&suite)?;
            let targets: Targets = suite::read_toml(&targets)?;
            anyhow::ensure!(!targets.target.is_empty(), "the targets file lists no [[target]]");
            let out = Outputs { json, markdown: markdown.clone(), plots, plots_link };
            let report = suite::run_suite(&suite, &targets, &commit, &date, &out).await?;
            let failed = report.results.iter().filter(|r| r.label.ends_with("(failed run)")).count();
            writeln!(
                std::io::stdout(),
                "suite done in {:.0} s: {} results, {failed} failed runs; report in {}",
                report.wall_seconds,
                report.results.len(),
                markdown.display()
            )?;
            return Ok(());
        }
        Command::Plan { params } => {
            let path = match &params.results {
                Some(path) => path.clone(),
                None => plan::last_results(std::path::Path::new("bench/RESULTS.md"))?,
            };
            let report: RunReport =
                serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
                    .with_context(|| format!("{} is not a suite result", path.display()))?;
            let constants = plan::Constants::from_report(&report).with_context(|| format!("in {}", path.display()))?;
            let sized = plan::Plan::for_load(&params, &constants)?;
            std::io::stdout().write_all(plan::render(&params, &constants, &sized).as_bytes())?;
            return Ok(());
        }
        Command::Idle { target, params, out } => (target, Run::Idle(params), out),
        Command::Broadcast { target, params, out } => (target, Run::Broadcast(params), out),
        Command::Capacity { target, params, out } => (target, Run::Capacity(params), out),
        Command::Chat { target, params, out } => (target, Run::Chat(params), out),
        Command::CrossNode { target, params, out } => (target, Run::CrossNode(params), out),
        Command::Connect { target, params, out } => (target, Run::Connect(params), out),
        Command::Churn { target, params, out } => (target, Run::Churn(params), out),
        Command::Cycles { target, params, out } => (target, Run::Cycles(params), out),
    };
    let target = Target::from(target);
    let results: Vec<ScenarioResult> = suite::run_one(&run, &target).await.context("scenario failed")?;
    let report =
        RunReport { date: String::new(), commit: String::new(), machine: String::new(), wall_seconds: 0.0, results };
    if let Some(path) = out.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let md = roomcast_loadtest::report::markdown(&report, &target.name, &Default::default());
    std::io::stdout().write_all(md.as_bytes())?;
    Ok(())
}
