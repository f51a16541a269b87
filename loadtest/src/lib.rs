//! roomcast-loadtest: a load generator for roomcast and its Socket.IO peers.
//!
//! # Layout
//!
//! In the order a run crosses them (connect, authenticate, join, publish, receive, report):
//!
//! - [`target`]: the server under test; [`ws`]: a minimal WebSocket client; [`socketio`]:
//!   Engine.IO / Socket.IO v4 packets; [`client`]: one user connection in either protocol.
//! - [`tokens`]: JWTs for the simulated users.
//! - [`scenario`]: `idle`, `broadcast`, `chat` / `cross-node`, `connect`, `churn`, `cycles`
//!   (joining the rooms each needs); [`suite`]: the standard suite against several targets.
//! - [`http`]: keep-alive publish calls.
//! - [`tracker`]: deliveries, losses and HDR latency histograms; [`procstat`]: CPU and RSS;
//!   [`redisstats`]: Redis' own command counters.
//! - [`report`]: JSON and markdown results; [`svg`]: latency plots; [`progress`]: the progress line.
//! - [`plan`]: nodes, cores, memory and Redis shards for a load, from a suite run's constants.

pub mod client;
pub mod http;
pub mod plan;
pub mod procstat;
pub mod progress;
pub mod redisstats;
pub mod report;
pub mod scenario;
pub mod socketio;
pub mod suite;
pub mod svg;
pub mod target;
pub mod tokens;
pub mod tracker;
pub mod ws;
