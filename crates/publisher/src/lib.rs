//! Publish events to roomcast rooms from backend services.
//!
//! A [`Publisher`] talks to the Redis (or Redis Cluster) that the gateway nodes share. Each
//! publish runs one Lua script that assigns the room's next offset and publishes the event on
//! the channel named after the room, atomically, so the offset order is the delivery order
//! even with many concurrent publishers. Every node with members in the room delivers it.
//!
//! ```no_run
//! # async fn run() -> Result<(), roomcast_publisher::Error> {
//! use roomcast_publisher::{Event, Publisher, Target};
//!
//! let publisher = Publisher::connect(Target::Redis("redis://127.0.0.1:6379".into())).await?;
//! publisher.update_members("dialog:42", &["u1", "u2"], &[]).await?;
//! let data = serde_json::json!({"text": "hi"});
//! let published = publisher
//!     .publish(Event::new("dialog:42", "message:new", &data).id("m-1").exclude_user("u1"))
//!     .await?;
//! println!("offset {} in epoch {}", published.offset, published.epoch);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`Publisher`] and its [`Target`] (`publisher.rs`); [`Event`] and [`Published`] (`event.rs`).
//! - [`Error`]: what a caller can branch on (`error.rs`).
//! - [`layout`]: channel and key names in Redis; `scripts.rs`: the Lua scripts.

mod error;
mod event;
pub mod layout;
mod publisher;
mod scripts;

pub use error::Error;
pub use event::{Event, Published, new_message_id};
pub use publisher::{Publisher, Target};
