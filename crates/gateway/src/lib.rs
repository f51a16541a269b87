//! The roomcast gateway node: WebSocket connections, rooms, fan-out and the publish API.
//!
//! # Layout
//!
//! - [`config`]: settings from a TOML file and `ROOMCAST_*` variables.
//! - [`server`]: the router, serving and draining; [`node`]: the state a node shares.
//! - [`connection`]: one WebSocket from upgrade to close (reader, session, writer, handle).
//! - [`outbox`]: a connection's bounded send queue; [`wire`]: server frames built once.
//! - [`rooms`]: the local room registry and membership guards.
//! - [`fanout`]: local delivery of what arrives for a room; [`broker`]: ordering and transport.
//! - [`api`]: `POST /api/publish`, `/api/members`, `/api/disconnect`.
//! - [`auth`]: JWT verification; [`ratelimit`]: the `emit` token bucket; [`origin`]: the browser Origin check.
//! - [`close`]: [`CloseReason`](close::CloseReason), every way a connection ends.
//! - [`metrics`]: every exported metric.

pub mod api;
pub mod auth;
pub mod broker;
pub mod close;
pub mod config;
pub mod connection;
pub mod fanout;
pub mod metrics;
pub mod node;
pub mod origin;
pub mod outbox;
pub mod ratelimit;
pub mod rooms;
pub mod server;
pub mod wire;

pub use config::Config;
pub use server::Server;
