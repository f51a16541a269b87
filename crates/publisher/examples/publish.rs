//! Publish one event the way a backend would.
//!
//! `cargo run -p roomcast-publisher --example publish -- redis://127.0.0.1:6379 dialog:42`
//!
//! Adds `u1` and `u2` to the room's member set, publishes a `message:new` from `u1` (kept from
//! u1's own connections) and prints where it landed.

use roomcast_publisher::{Event, Publisher, Target};
use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let room = args.next().unwrap_or_else(|| "dialog:42".to_owned());

    let publisher = Publisher::connect(Target::Redis(url)).await?;
    let (added, _) = publisher.update_members(&room, &["u1", "u2"], &[]).await?;
    let data = serde_json::json!({"text": "hello from the publisher crate", "from": "u1"});
    let published = publisher.publish(Event::new(&room, "message:new", &data).exclude_user("u1")).await?;
    writeln!(
        std::io::stdout(),
        "{room}: {added} member(s) added; published id {} at offset {} in epoch {}",
        published.id,
        published.offset,
        published.epoch
    )?;
    Ok(())
}
