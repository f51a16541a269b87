//! The roomcast gateway node: WebSocket connections, rooms, fan-out and the publish API.
//!
//! # Layout
//!
//! In the order an event's path crosses them:
//!
//! - [`config`]: settings from a TOML file and `ROOMCAST_*` variables; [`node`]: the state a
//!   node shares; [`server`]: the router, serving and draining.
//! - Connect: [`listener`] accepts sockets and serves HTTP on them with read deadlines;
//!   [`handshake`] checks an upgrade request as RFC 6455 asks; [`origin`] checks a browser's
//!   `Origin`; [`connection`] runs one WebSocket from upgrade to close (its reader, session,
//!   writer and the guard that ends it).
//! - Authenticate: [`auth`], JWT verification.
//! - Join: [`rooms`], the registry of which connection is in which room, and each room's
//!   ordered delivery; [`ratelimit`]: the `emit` token bucket.
//! - Publish: [`api`], `POST /api/publish`, `/api/members`, `/api/disconnect`; [`broker`]:
//!   where events are ordered and how they travel between nodes (embedded or Redis).
//! - Fan-out: [`fanout`], what reaches the node handed to its local members; [`event`]: an
//!   event as it is shared by every recipient, encoded once per node for each face.
//! - Write: [`wire`], server frames built once; [`outbox`], a connection's bounded send queue.
//! - Hear back: [`presence`], who is in which room and online, counting every node;
//!   [`events`], what the backend hears (stream, webhooks, receipts).
//! - [`close`]: [`CloseReason`](close::CloseReason), every way a connection ends; [`metrics`]:
//!   every exported metric, per node.

pub mod config;
pub mod node;
pub mod server;

pub mod connection;
pub mod event;
pub mod handshake;
pub mod listener;
pub mod origin;

pub mod auth;

pub mod ratelimit;
pub mod rooms;

pub mod api;
pub mod broker;

pub mod events;
pub mod fanout;
pub mod presence;

pub mod outbox;
pub mod wire;

pub mod close;
pub mod metrics;
pub mod socketio;

pub use config::Config;
pub use server::Server;
