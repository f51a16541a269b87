//! Publish events to roomcast rooms from backend services.
//!
//! A [`Publisher`] talks to the Redis (or Redis Cluster) that the gateway nodes share. Each
//! publish runs one Lua script that assigns the room's next offset, appends the event to the
//! room's history and publishes it on the channel named after the room, atomically, so the
//! offset order is the delivery order and the history order even with many concurrent
//! publishers. Every node with members in the room delivers it. A publish with a message id
//! seen in the room within the dedup window is not delivered again and returns the first
//! offset, so a publish that failed with [`Error::Unavailable`] can be retried safely.
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
//! In the order a publish crosses them:
//!
//! - Connect: [`Target`], where Redis is, and [`resp3_url`] (`target.rs`); [`RedisOptions`],
//!   TLS material and credentials (`options.rs`); [`client`] and [`cluster_builder`], the
//!   clients they make (`clients.rs`); [`Sentinels`], the master a Sentinel group names
//!   (`sentinel.rs`); [`MasterConnection`], a connection that follows the master and checks
//!   the era on each reconnect (`master.rs`, `era.rs`); [`Publisher`] (`publisher.rs`).
//! - Join: member sets and [`History`], a room's position and recent events read by a joining
//!   node (`history.rs`).
//! - Publish: [`Event`] and [`Published`] (`event.rs`); message ids and epochs (`ids.rs`);
//!   [`Retention`], history size and age and the dedup window (`retention.rs`);
//!   [`Publisher::broadcast`], one event into many rooms (`broadcast.rs`).
//! - Read back: [`Publisher::history_page`], a page of a room's history (`page.rs`).
//! - Repair: [`Publisher::restart_epoch_below`], a new epoch for a room Redis holds less of
//!   than a node delivered (`rollback.rs`).
//! - In Redis: [`layout`], channel and key names; `scripts.rs`, the Lua scripts.
//! - Presence: [`presence`], online status, room presence, node liveness and the event stream.
//! - [`Error`]: what a caller can branch on (`error.rs`).

mod broadcast;
mod clients;
mod era;
mod error;
mod event;
mod history;
mod ids;
pub mod layout;
mod master;
mod options;
mod page;
pub mod presence;
mod publisher;
mod replicated;
mod retention;
mod rollback;
mod scripts;
mod sentinel;
mod target;

pub use broadcast::{MAX_BROADCAST_BYTES, MAX_BROADCAST_ROOMS};
pub use clients::{client, cluster_builder};
pub use error::Error;
pub use event::{Event, Published};
pub use history::History;
pub use ids::{new_epoch, new_message_id};
pub use master::{MasterAt, MasterConnection};
pub use options::{ClientCert, RedisOptions, Tls};
pub use page::MAX_HISTORY_PAGE;
pub use publisher::Publisher;
pub use retention::Retention;
pub use sentinel::Sentinels;
pub use target::{Target, resp3_url};
