//! Wire types shared by the roomcast gateway, the publisher crate and the load tester.
//!
//! # Layout
//!
//! In the order an event's path meets them:
//!
//! - [`frames`]: the JSON frames of the v1 WebSocket protocol (`auth`, `connected`, commands,
//!   replies and events), client to server and back.
//! - [`room`]: room names (`user:<id>`, `org:<id>`, `dialog:<id>`) a connection joins, their
//!   validation and kinds.
//! - [`json`]: the JSON shapes every frame and body must have: objects, nested at most so deep.
//! - [`api`]: the JSON bodies of the publish API (`/api/publish`, `/api/members`, `/api/disconnect`).
//! - [`envelope`]: the protobuf [`Envelope`](envelope::Envelope) that carries a publish on a
//!   room's broker channel to every node, generated from `proto/roomcast.proto` at build time
//!   (protox, no `protoc`).

pub mod api;
pub mod frames;
pub mod json;
pub mod room;

/// The protobuf messages of `proto/roomcast.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod envelope {
    include!(concat!(env!("OUT_DIR"), "/roomcast.v1.rs"));
}

pub use room::{RoomKind, RoomName, RoomNameError, UserIdError, check_user_id};
