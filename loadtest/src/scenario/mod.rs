//! The scenarios, and what they share: opening a population of clients with bounded
//! concurrency, receiving on every client until told to stop, publishing over HTTP.

pub mod broadcast;
pub mod capacity;
pub mod chat;
pub mod churn;
pub mod connect;
pub mod cycles;
pub mod idle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::http::HttpConn;
use crate::progress::Counters;
use crate::target::{Protocol, Target, source_for};
use crate::tokens::Minter;
use crate::tracker::{Tracker, now_us, stamp};

/// One client to open: node, token, rooms to subscribe after connecting.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Node to connect to.
    pub addr: SocketAddr,
    /// Connection token.
    pub token: String,
    /// Rooms to subscribe to (beyond those joined from the token).
    pub rooms: Vec<String>,
}

/// Opens every client of `specs`, `concurrency` at a time. Failed clients are counted in
/// `counters.failures` and left out; more than 1% failing is an error.
pub async fn open_all(
    specs: Vec<Spec>,
    protocol: Protocol,
    concurrency: usize,
    counters: &Arc<Counters>,
) -> anyhow::Result<Vec<Client>> {
    let total = specs.len();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut clients = Vec::with_capacity(total);
    for (i, spec) in specs.into_iter().enumerate() {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let counters = Arc::clone(counters);
        tasks.spawn(async move {
            let _permit = permit;
            let result = async {
                let mut client = Client::connect(spec.addr, source_for(spec.addr, i), protocol, &spec.token).await?;
                for room in &spec.rooms {
                    client.subscribe(room).await?;
                }
                anyhow::Ok(client)
            }
            .await;
            match &result {
                Ok(_) => counters.connections.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::debug!(error = %e, "client failed");
                    counters.failures.fetch_add(1, Ordering::Relaxed)
                }
            };
            result.ok()
        });
        // Reap finished tasks as we go so the set does not hold every result until the end.
        while let Some(done) = tasks.try_join_next() {
            clients.extend(done?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        clients.extend(done?);
    }
    let failed = counters.failures.load(Ordering::Relaxed) as usize;
    if failed * 100 > total {
        bail!("{failed} of {total} clients failed to connect or subscribe (see RUST_LOG=debug)");
    }
    Ok(clients)
}

/// Receives on every client until `stop`, feeding `tracker`. Returns the tasks, which hand the
/// clients back when stopped.
pub fn receive_all(
    clients: Vec<Client>,
    tracker: &Arc<Tracker>,
    stop: &CancellationToken,
    counters: &Arc<Counters>,
    acks: Option<Acks>,
) -> JoinSet<Option<Client>> {
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let (tracker, stop, counters) = (Arc::clone(tracker), stop.clone(), Arc::clone(counters));
        let acks = acks.clone();
        tasks.spawn(async move {
            let mut stamps = Vec::with_capacity(64);
            let (mut highest, mut acked, mut last_ack) = (0u64, 0u64, Instant::now());
            loop {
                stamps.clear();
                let open = tokio::select! {
                    r = client.receive(|text| {
                        stamps.push(stamp(text));
                        if acks.is_some() {
                            highest = highest.max(offset_of(text).unwrap_or(0));
                        }
                    }) => r,
                    () = stop.cancelled() => return Some(client),
                };
                if !stamps.is_empty() {
                    tracker.received(&stamps, now_us());
                }
                if let Some(acks) = &acks
                    && highest > acked
                    && last_ack.elapsed() >= acks.every
                {
                    (acked, last_ack) = (highest, Instant::now());
                    let ack = format!(r#"{{"type":"ack","room":"{}","offset":{highest}}}"#, acks.room);
                    if client.send_text(ack.as_bytes()).await.is_err() {
                        counters.connections.fetch_sub(1, Ordering::Relaxed);
                        return None;
                    }
                }
                if !matches!(open, Ok(true)) {
                    counters.connections.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
            }
        });
    }
    tasks
}

/// How subscribers acknowledge what they receive (delivery receipts).
#[derive(Debug, Clone)]
pub struct Acks {
    /// The room acked.
    pub room: Arc<str>,
    /// At most one ack per subscriber per this long.
    pub every: Duration,
}

/// The `offset` of an `event` frame's text, read without parsing the whole frame.
fn offset_of(text: &[u8]) -> Option<u64> {
    let at = crate::ws::find(text, b"\"offset\":")? + b"\"offset\":".len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[at..at + digits]).ok()?.parse().ok()
}

/// Stops receivers and closes their clients.
pub async fn close_all(stop: CancellationToken, mut tasks: JoinSet<Option<Client>>, counters: &Counters) {
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    counters.connections.store(0, Ordering::Relaxed);
}

/// Waits until `tracker` has `expected` deliveries, or nothing arrived for `quiet`.
pub async fn wait_deliveries(tracker: &Tracker, expected: u64, quiet: Duration) {
    let mut last = tracker.delivered();
    let mut last_change = Instant::now();
    while tracker.delivered() < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = tracker.delivered();
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            break;
        }
    }
}

/// A publish request body (the same JSON for roomcast's API and the peers).
pub fn publish_body(room: &str, data: &str) -> Vec<u8> {
    format!(r#"{{"room":"{room}","event":"message:new","data":{data}}}"#).into_bytes()
}

/// A keep-alive publisher to one node of a target.
#[derive(Debug)]
pub struct PublishConn {
    http: HttpConn,
    path: &'static str,
    key: Option<String>,
}

impl PublishConn {
    /// A publisher to `addr` of `target`.
    pub fn new(target: &Target, addr: SocketAddr) -> Self {
        Self { http: HttpConn::new(addr), path: target.publish_path(), key: target.api_key.clone() }
    }

    /// Publishes one body; an error unless the node answered 200.
    pub async fn publish(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let (status, reply) = self.http.post(self.path, self.key.as_deref(), body).await?;
        if status != 200 {
            bail!("publish answered {status}: {}", String::from_utf8_lossy(&reply));
        }
        Ok(())
    }
}

/// Adds `users` to the member set of `room` (roomcast only; the peers let anyone join).
pub async fn add_members(target: &Target, addr: SocketAddr, room: &str, users: &[String]) -> anyhow::Result<()> {
    if !target.protocol.is_roomcast() {
        return Ok(());
    }
    let body = serde_json::to_vec(&serde_json::json!({ "room": room, "add": users }))?;
    let (status, reply) = HttpConn::new(addr).post("/api/members", target.api_key.as_deref(), &body).await?;
    if status != 200 {
        bail!("/api/members answered {status}: {}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}

/// The one org room of a single-node run (`broadcast`, `capacity`) and the users who join it
/// through their token.
#[derive(Debug, Clone)]
pub struct OrgRoom {
    /// The org id, `<prefix><run tag>`.
    pub org: String,
    /// `org:<org>`.
    pub room: String,
    addr: SocketAddr,
}

impl OrgRoom {
    /// A fresh org on the node at `addr`, its id starting with `prefix`.
    pub fn new(prefix: &str, addr: SocketAddr) -> Self {
        let org = format!("{prefix}{}", run_tag());
        Self { room: format!("org:{org}"), org, addr }
    }

    /// `n` users named `<org><kind><i>`, each in the room from its token alone.
    pub fn members(&self, minter: &Minter, kind: &str, n: usize) -> Vec<Spec> {
        (0..n)
            .map(|i| Spec {
                addr: self.addr,
                token: minter.mint(&format!("{}{kind}{i}", self.org), Some(&self.org)),
                rooms: vec![],
            })
            .collect()
    }
}

/// A short unique tag for room and user names of one run, so runs do not see each other.
pub fn run_tag() -> String {
    format!("{:x}", now_us() % 0xff_ffff)
}

/// Pids of the nodes, for CPU and RSS.
pub fn pids(nodes: &[&crate::target::Node]) -> Vec<u32> {
    nodes.iter().filter_map(|n| n.pid).collect()
}
