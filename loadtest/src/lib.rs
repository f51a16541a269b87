//! roomcast-loadtest: a load generator for roomcast and its Socket.IO peers.
//!
//! # Layout
//!
//! - [`ws`]: a minimal WebSocket client; [`socketio`]: Engine.IO / Socket.IO v4 packets;
//!   [`client`]: one user connection in either protocol; [`http`]: keep-alive publish calls.
//! - [`target`]: the server under test; [`tokens`]: JWTs for the simulated users.
//! - [`tracker`]: deliveries, losses and HDR latency histograms; [`procstat`]: CPU and RSS.
//! - [`scenario`]: `idle`, `broadcast`, `chat` / `cross-node`, `connect`; [`suite`]: the
//!   standard suite against several targets.
//! - [`report`]: JSON and markdown results; [`svg`]: latency plots; [`progress`]: the progress line.

pub mod client;
pub mod http;
pub mod procstat;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod socketio;
pub mod suite;
pub mod svg;
pub mod target;
pub mod tokens;
pub mod tracker;
pub mod ws;
