//! One `churn` user: connects (through the load balancer), joins its dialogs, receives, drops its
//! connection at a random moment about every `drop_every` seconds, and connects again, until told
//! to stop. It keeps what it received for the final accounting.
//!
//! roomcast: after a reconnect every dialog is subscribed with `since` (the last offset and epoch
//! seen in it), as the protocol tells clients to; `recovered:false` replies are counted, and a
//! `left` `resubscribe` or a refused subscribe (the node lost Redis) ends the session, so that the
//! next one subscribes again with `since`. Socket.IO: the dialogs are joined again, nothing more
//! (the peers have no recovery).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::socketio::{self, EnginePacket, SocketPacket};
use crate::target::{Protocol, source_for};
use crate::ws::{WsConn, op};

/// Who one user is and how it behaves.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Index of the user (source address, seed).
    pub(super) index: usize,
    /// Where to connect (the load balancer).
    pub(super) addr: SocketAddr,
    /// Protocol of the target.
    pub(super) protocol: Protocol,
    /// Connection token.
    pub(super) token: String,
    /// The dialogs: index and room name.
    pub(super) rooms: Vec<(u32, String)>,
    /// Mean seconds between drops.
    pub(super) drop_every: f64,
    /// Seed of this user's random drops.
    pub(super) seed: u64,
}

/// What one user saw.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Times each message arrived (by sequence number).
    pub(super) counts: HashMap<u64, u32>,
    /// Messages that arrived after a later message of the same dialog.
    pub(super) reordered: u64,
    /// roomcast `subscribe` replies with `recovered:false`.
    pub(super) recovered_false: u64,
    /// `left` frames with reason `resubscribe`, and refused subscribes.
    pub(super) resubscribes: u64,
    /// Sessions ended on purpose (drops) or by the server.
    pub(super) reconnects: u64,
    /// Attempts to connect that failed.
    pub(super) connect_failures: u64,
}

/// Per-session state of a roomcast user: its position in each room, and subscribes in flight.
#[derive(Debug, Default)]
struct Positions {
    at: HashMap<String, (u64, String)>,
    pending: HashMap<u64, String>,
    next_id: u64,
}

/// Runs the user until `stop`; it stops dropping its connection once `calm` is cancelled.
pub(super) async fn run(plan: Plan, calm: CancellationToken, stop: CancellationToken) -> Seen {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut seen = Seen::default();
    let mut positions = Positions::default();
    let mut last_in_dialog: HashMap<u32, u64> = HashMap::new();
    while !stop.is_cancelled() {
        let connected = Client::connect(plan.addr, source_for(plan.addr, plan.index), plan.protocol, &plan.token).await;
        let mut ws = match connected {
            Ok(client) => client.into_ws(),
            Err(_) => {
                seen.connect_failures += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..1000))).await;
                continue;
            }
        };
        if subscribe_all(&mut ws, &plan, &mut positions).await.is_err() {
            seen.reconnects += 1;
            continue;
        }
        let lifetime = Duration::from_secs_f64(plan.drop_every * rng.random_range(0.5..1.5));
        let drop_at = tokio::time::Instant::now() + lifetime;
        loop {
            let mut texts: Vec<Vec<u8>> = Vec::new();
            let open = tokio::select! {
                r = ws.read_batch(|opcode, text| if opcode == op::TEXT { texts.push(text.to_vec()) }) => r,
                () = tokio::time::sleep_until(drop_at), if !calm.is_cancelled() => break,
                () = stop.cancelled() => return seen,
            };
            let mut session_over = !matches!(open, Ok(true));
            for text in &texts {
                match handle(text, &plan, &mut positions, &mut seen, &mut last_in_dialog) {
                    Handled::Ok => {}
                    Handled::Pong => session_over |= ws.send_text(socketio::PONG).await.is_err(),
                    Handled::Resubscribe => session_over = true,
                }
            }
            if session_over {
                break;
            }
        }
        // Dropped (the socket closes without a close frame), or closed by the server.
        drop(ws);
        seen.reconnects += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
    }
    seen
}

/// Sends a subscribe for every dialog (roomcast: with `since` when a position is known); the
/// replies are read with the events.
async fn subscribe_all(ws: &mut WsConn, plan: &Plan, positions: &mut Positions) -> std::io::Result<()> {
    positions.pending.clear();
    for (_, room) in &plan.rooms {
        positions.next_id += 1;
        let id = positions.next_id;
        let packet = match plan.protocol {
            Protocol::Roomcast => {
                let mut command = json!({"type": "subscribe", "id": id, "room": room});
                if let Some((offset, epoch)) = positions.at.get(room) {
                    command["since"] = json!({"offset": offset, "epoch": epoch});
                }
                positions.pending.insert(id, room.clone());
                serde_json::to_vec(&command)?
            }
            Protocol::Socketio => socketio::event(Some(id), "subscribe", &json!({ "room": room })),
            Protocol::RoomcastSocketio => socketio::event(Some(id), "roomcast:subscribe", &json!({ "room": room })),
        };
        ws.send_text(&packet).await?;
    }
    Ok(())
}

enum Handled {
    Ok,
    /// A Socket.IO ping to answer.
    Pong,
    /// The session must end so that the next one subscribes again.
    Resubscribe,
}

fn handle(
    text: &[u8],
    plan: &Plan,
    positions: &mut Positions,
    seen: &mut Seen,
    last_in_dialog: &mut HashMap<u32, u64>,
) -> Handled {
    let data = match plan.protocol {
        Protocol::Roomcast => {
            let Ok(frame) = serde_json::from_slice::<Value>(text) else { return Handled::Ok };
            match frame["type"].as_str() {
                Some("event") => {
                    if let (Some(room), Some(offset), Some(epoch)) =
                        (frame["room"].as_str(), frame["offset"].as_u64(), frame["epoch"].as_str())
                    {
                        positions.at.insert(room.to_owned(), (offset, epoch.to_owned()));
                    }
                    frame["data"].clone()
                }
                Some("ok") => {
                    let Some(room) = frame["id"].as_u64().and_then(|id| positions.pending.remove(&id)) else {
                        return Handled::Ok;
                    };
                    let recovered = frame["recovered"].as_bool();
                    if recovered == Some(false) {
                        seen.recovered_false += 1;
                    }
                    if recovered != Some(true)
                        && let (Some(offset), Some(epoch)) = (frame["offset"].as_u64(), frame["epoch"].as_str())
                    {
                        positions.at.insert(room, (offset, epoch.to_owned()));
                    }
                    return Handled::Ok;
                }
                Some("left") | Some("error") => {
                    seen.resubscribes += 1;
                    return Handled::Resubscribe;
                }
                _ => return Handled::Ok,
            }
        }
        Protocol::Socketio | Protocol::RoomcastSocketio => match socketio::parse(text) {
            EnginePacket::Ping => return Handled::Pong,
            EnginePacket::Message(SocketPacket::Event(_, payload)) => {
                let Ok(Value::Array(args)) = serde_json::from_slice::<Value>(payload) else { return Handled::Ok };
                args.get(1).cloned().unwrap_or(Value::Null)
            }
            _ => return Handled::Ok,
        },
    };
    if let (Some(seq), Some(dialog)) = (data["_s"].as_u64(), data["r"].as_u64()) {
        let count = seen.counts.entry(seq).or_default();
        *count += 1;
        let last = last_in_dialog.entry(dialog as u32).or_insert(0);
        // Only a first arrival can be out of order; a second one is a duplicate.
        if *count == 1 && seq < *last {
            seen.reordered += 1;
        }
        *last = (*last).max(seq);
    }
    Handled::Ok
}
