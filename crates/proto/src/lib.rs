//! Wire types shared by the roomcast gateway, the publisher crate and the load tester.
//!
//! # Layout
//!
//! - [`envelope`]: the protobuf [`Envelope`](envelope::Envelope) that travels on a room's broker
//!   channel, generated from `proto/roomcast.proto` at build time (protox, no `protoc`).
//! - [`room`]: room names (`user:<id>`, `org:<id>`, `dialog:<id>`), their validation and kinds.
//! - [`frames`]: the JSON frames of the v1 WebSocket protocol, client to server and back.
//! - [`api`]: the JSON bodies of the publish API (`/api/publish`, `/api/members`, `/api/disconnect`).

pub mod api;
pub mod frames;
pub mod room;

/// The protobuf messages of `proto/roomcast.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod envelope {
    include!(concat!(env!("OUT_DIR"), "/roomcast.v1.rs"));
}

pub use room::{RoomKind, RoomName, RoomNameError};
