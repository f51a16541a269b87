//! A real HTTP server standing in for a backend's webhook: it refuses its first answers with
//! 500, then keeps every batch it takes, each with whether its signature verified.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One POST the sink took.
#[derive(Debug, Clone)]
pub struct Received {
    pub events: Vec<Value>,
    pub signed: bool,
}

#[derive(Default)]
struct State {
    refuse: usize,
    refused: usize,
    taken: Vec<Received>,
}

/// The webhook; stops when dropped.
pub struct WebhookSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookSink {
    /// Refuses the first `refuse` POSTs with 500, verifying signatures with `secret`.
    pub async fn start(refuse: usize, secret: &'static str) -> Self {
        let state = Arc::new(Mutex::new(State { refuse, ..State::default() }));
        let shared = Arc::clone(&state);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move {
                    let mut state = state.lock().unwrap();
                    if state.refused < state.refuse {
                        state.refused += 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let timestamp: u64 = header("x-roomcast-timestamp").parse().unwrap_or(0);
                    let expected = roomcast_gateway::events::sign(secret.as_bytes(), timestamp, &body);
                    let signed = timestamp > 0 && header("x-roomcast-signature") == expected;
                    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let events = parsed["events"].as_array().cloned().unwrap_or_default();
                    state.taken.push(Received { events, signed });
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every event taken so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().taken.iter().flat_map(|r| r.events.clone()).collect()
    }

    /// Whether every POST taken was signed right.
    pub fn all_signed(&self) -> bool {
        self.state.lock().unwrap().taken.iter().all(|r| r.signed)
    }

    /// POSTs refused so far.
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
