//! `roomcast`: run a gateway node, or mint a development token.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use roomcast_gateway::Server;
use roomcast_gateway::auth::{ConnectionClaims, SubscriptionClaims, mint_hs256, unix_now};
use roomcast_gateway::config::{Config, JwtKey, LogFormat, parse_duration};
use tracing_subscriber::EnvFilter;

/// roomcast: a real-time WebSocket gateway for rooms of events.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file; `ROOMCAST_*` environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a gateway node (the default).
    Serve,
    /// Print a token signed with the configured HS256 secret, for development and scripts.
    Token {
        /// User id (`sub`).
        #[arg(long)]
        sub: String,
        /// Organisation (`org`) of a connection token.
        #[arg(long)]
        org: Option<String>,
        /// Lifetime, e.g. `30m`, `1h`, `7d`.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        /// Make a subscription token for this room instead of a connection token.
        #[arg(long)]
        room: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), &|key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => return fail(&format!("roomcast: configuration: {e}")),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Token { sub, org, ttl, room } => token(&config, sub, org, ttl, room),
    }
}

fn serve(config: Config) -> ExitCode {
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("roomcast: cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        let listen = config.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("ROOMCAST_LISTEN: cannot bind {listen}: {e}"))?;
        let server = Server::new(config).await.map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, node = %server.node().config.node_id, broker = server.node().broker.kind(), "roomcast listening");
        server.serve(listener, shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("roomcast: {e}")),
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}

fn token(config: &Config, sub: String, org: Option<String>, ttl: Duration, room: Option<String>) -> ExitCode {
    let JwtKey::Secret(secret) = &config.jwt.key else {
        return fail("roomcast token: needs ROOMCAST_JWT_SECRET (a public key cannot sign)");
    };
    let exp = unix_now().saturating_add(ttl.as_secs());
    let token = match room {
        Some(room) => mint_hs256(secret, &SubscriptionClaims { sub, room, exp }),
        None => mint_hs256(secret, &ConnectionClaims { sub, org, exp }),
    };
    let _ = writeln!(std::io::stdout().lock(), "{token}");
    ExitCode::SUCCESS
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ROOMCAST_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// One line on stderr and exit status 2: start-up problems happen before logging exists.
fn fail(line: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    ExitCode::from(2)
}
