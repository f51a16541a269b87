//! Cross-node publish→receive latency through a real Redis: a client on node B, publishes
//! through node A's broker at a steady rate, latency from the intended send time.
//!
//! `cargo run --release -p roomcast-gateway --example cross_node_latency -- [events] [rate/s]`
//!
//! Starts its own redis-server on a free port (needs `redis-server` on PATH).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use roomcast_gateway::auth::{mint_hs256, unix_now};
use roomcast_gateway::broker::Publish;
use roomcast_gateway::config::BrokerConfig;
use roomcast_gateway::node::Node;
use roomcast_gateway::{Config, Server};
use roomcast_proto::RoomName;
use roomcast_testkit::RedisServer;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

async fn start(redis: &RedisServer, name: &str) -> anyhow::Result<(Arc<Node>, std::net::SocketAddr)> {
    let mut config = Config::with_secret("probe");
    config.broker = BrokerConfig::Redis(redis.url());
    config.node_id = name.to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(config).await?;
    let node = Arc::clone(server.node());
    tokio::spawn(server.serve(listener, std::future::pending()));
    Ok((node, addr))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let events = args.next().transpose()?.unwrap_or(3000);
    let rate = args.next().transpose()?.unwrap_or(500);
    let redis = RedisServer::start();
    let (a, _) = start(&redis, "a").await?;
    let (_b, b_addr) = start(&redis, "b").await?;

    let token = mint_hs256("probe", &serde_json::json!({"sub": "u1", "org": "lat", "exp": unix_now() + 3600}));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{b_addr}/ws?token={token}")).await?;
    ws.next().await; // connected
    let origin = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(events as usize);
        while (latencies.len() as u64) < events {
            let Some(Ok(Message::Text(text))) = ws.next().await else { continue };
            let now = origin.elapsed().as_micros() as u64;
            let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
            let sent = frame["data"].as_u64().unwrap();
            latencies.push(now.saturating_sub(sent));
        }
        latencies
    });

    let room = RoomName::org("lat")?;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..events {
        let intended = origin + interval * i as u32;
        tokio::time::sleep_until(intended.into()).await;
        // The payload carries the intended send time, so queueing in the publisher counts.
        let data = RawValue::from_string((intended - origin).as_micros().to_string())?;
        a.broker
            .publish(Publish { room: &room, event: "message:new", data: &data, id: None, exclude_user: None })
            .await?;
    }
    let mut latencies = receiver.await?;
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
    writeln!(
        std::io::stdout(),
        "events={events} rate={rate}/s cross-node latency ms: p50={:.3} p99={:.3} p999={:.3} max={:.3}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    )?;
    Ok(())
}
