//! What room history costs a publisher: publishes per second through the crate with history
//! off, with history (the default 300 events), and with history plus a caller's message id
//! (the dedup key), measured side by side against one `redis-server` started for the run.
//!
//! `cargo run --release -p roomcast-publisher --example history_cost [-- EVENTS ROUNDS]`
//!
//! Variants alternate round by round on the same server, so a noisy neighbour hits them all
//! alike; the report gives each variant's median rate and its ratio to "history off".

use std::io::Write;
use std::time::{Duration, Instant};

use roomcast_publisher::{Event, Publisher, Retention, Target};
use roomcast_testkit::RedisServer;

/// Publishes in flight at once, pipelined on the publisher's one multiplexed connection.
const IN_FLIGHT: usize = 64;
/// Rooms the events are spread over.
const ROOMS: usize = 100;

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    history: usize,
    ids: bool,
}

async fn round(publisher: &Publisher, variant: Variant, events: usize, round: usize) -> f64 {
    let slug = variant.name.replace([' ', '+'], "");
    let rooms: Vec<String> = (0..ROOMS).map(|r| format!("dialog:{slug}-{r}")).collect();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(IN_FLIGHT);
    for worker in 0..IN_FLIGHT {
        let (publisher, rooms) = (publisher.clone(), rooms.clone());
        tasks.push(tokio::spawn(async move {
            let data = serde_json::json!({"text": "a message of about a hundred bytes, as a chat sends them", "n": 1});
            for i in (worker..events).step_by(IN_FLIGHT) {
                let id = format!("r{round}-m{i}");
                let mut event = Event::new(&rooms[i % ROOMS], "message:new", &data);
                if variant.ids {
                    event = event.id(&id);
                }
                publisher.publish(event).await.expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    events as f64 / start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let redis = RedisServer::start();
    let variants = [
        Variant { name: "history off", history: 0, ids: false },
        Variant { name: "history 300", history: 300, ids: false },
        Variant { name: "history 300 + id", history: 300, ids: true },
    ];
    let mut publishers = Vec::new();
    for v in variants {
        let retention =
            Retention { history_size: v.history, dedup_window: Duration::from_secs(300), ..Retention::default() };
        publishers.push(Publisher::connect(Target::Redis(redis.url())).await?.with_retention(retention));
    }
    let mut rates = vec![Vec::new(); variants.len()];
    for r in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            rates[i].push(round(&publishers[i], *v, events, r).await);
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{events} publishes x {rounds} rounds per variant, {IN_FLIGHT} in flight, {ROOMS} rooms")?;
    writeln!(out, "| variant | median publishes/s | ratio to history off |")?;
    writeln!(out, "| --- | --- | --- |")?;
    let base = median(rates[0].clone());
    for (v, r) in variants.iter().zip(rates) {
        let m = median(r);
        writeln!(out, "| {} | {:.0} | {:.2} |", v.name, m, m / base)?;
    }
    Ok(())
}
