//! A quick fan-out figure: one room of N local WebSocket clients, E events published in-process,
//! deliveries per second until every client has every event.
//!
//! `cargo run --release -p roomcast-gateway --example fanout_probe -- [clients] [events] [payload bytes]`
//!
//! Clients run in the same process (on the same two cores), so the figure is a floor for the
//! gateway alone; the load tester measures it properly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use roomcast_gateway::auth::{mint_hs256, unix_now};
use roomcast_gateway::broker::Publish;
use roomcast_gateway::{Config, Server};
use roomcast_proto::RoomName;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let clients = args.next().transpose()?.unwrap_or(1000);
    let events = args.next().transpose()?.unwrap_or(2000);
    let payload = args.next().transpose()?.unwrap_or(100);

    let mut config = Config::with_secret("probe");
    config.max_connections = clients + 10;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(config).await?;
    let node = Arc::clone(server.node());
    tokio::spawn(server.serve(listener, std::future::pending()));

    let token =
        |sub: &str| mint_hs256("probe", &serde_json::json!({"sub": sub, "org": "probe", "exp": unix_now() + 3600}));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Duration>(clients);
    let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());
    for i in 0..clients {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={}", token(&format!("c{i}")))).await?;
        ws.next().await; // connected
        let (done_tx, ready, start) = (done_tx.clone(), Arc::clone(&ready), Arc::clone(&start));
        tokio::spawn(async move {
            ready.wait().await;
            let mut got = 0;
            while got < events {
                match ws.next().await {
                    Some(Ok(Message::Text(_))) => got += 1,
                    Some(Ok(_)) => {}
                    _ => return,
                }
            }
            let _ = done_tx.send(start.get().unwrap().elapsed()).await;
        });
    }
    ready.wait().await;

    let room = RoomName::org("probe")?;
    let data = RawValue::from_string(format!("\"{}\"", "x".repeat(payload.saturating_sub(2))))?;
    start.set(Instant::now()).unwrap();
    let publish_start = Instant::now();
    for _ in 0..events {
        let p = Publish { room: &room, event: "message:new", data: &data, id: None, exclude_user: None };
        node.broker.publish(p).await?;
        // Yield now and then so writers run while the publisher goes on, as with real traffic.
        tokio::task::yield_now().await;
    }
    let publish_time = publish_start.elapsed();
    let mut last = Duration::ZERO;
    for _ in 0..clients {
        last = last.max(done_rx.recv().await.expect("every client finishes"));
    }
    let deliveries = (clients * events) as f64;
    report(clients, events, payload, publish_time, last, deliveries);
    Ok(())
}

fn report(clients: usize, events: usize, payload: usize, publish: Duration, last: Duration, deliveries: f64) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stdout(),
        "clients={clients} events={events} payload={payload}B publish_time={:.3}s all_delivered={:.3}s deliveries_per_s={:.0}",
        publish.as_secs_f64(),
        last.as_secs_f64(),
        deliveries / last.as_secs_f64()
    );
}
