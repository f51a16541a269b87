//! [`Publisher::broadcast`]: one event into many rooms at once (every participant's `user:` room,
//! say), each room giving it its own offset.

use std::collections::HashSet;

use futures::stream::{self, StreamExt, TryStreamExt};
use roomcast_proto::RoomName;

use crate::ids::new_message_id;
use crate::publisher::checked_data;
use crate::{Error, Event, Published, Publisher};

/// Most rooms one [`Publisher::broadcast`] may name.
pub const MAX_BROADCAST_ROOMS: usize = 1000;

/// Most bytes of data times rooms one broadcast may make (each room's envelope carries the data).
pub const MAX_BROADCAST_BYTES: usize = 16 << 20;

/// Publishes of one broadcast in flight at once: enough to fill the pipeline, few enough that
/// one broadcast does not hold the connection for everything else (presence, joins).
const IN_FLIGHT: usize = 64;

impl Publisher {
    /// Publishes `event` into each of `rooms` (1 to [`MAX_BROADCAST_ROOMS`], each once; the
    /// room `event` was built with is not used) with one message id, and returns where it
    /// landed in each, in the order given.
    ///
    /// Every room is checked before anything is sent. The publishes then go out together (one
    /// multiplexed connection pipelines them, 64 at a time), each atomic in its own room but not across
    /// rooms: when Redis fails midway some rooms have the event and the call fails with the
    /// first error. Give the event an id and retry with it: rooms that have it already return
    /// their first offset (`duplicate`) and deliver nothing again.
    pub async fn broadcast<S: AsRef<str>>(&self, rooms: &[S], event: Event<'_>) -> Result<Vec<Published>, Error> {
        let rooms = check_rooms(rooms)?;
        let data = checked_data(&event)?;
        if data.len().saturating_mul(rooms.len()) > MAX_BROADCAST_BYTES {
            return Err(Error::InvalidArgument(format!(
                "data of {} bytes into {} rooms is over {MAX_BROADCAST_BYTES} bytes in all",
                data.len(),
                rooms.len()
            )));
        }
        // Only a caller's id is remembered: a made-up one can never come again.
        let dedup = event.id.is_some();
        let id = event.id.map_or_else(new_message_id, str::to_owned);
        // Collected first: a lazy map's closure would make the future not Send (its lifetimes
        // are not general enough for axum's handler bound).
        let publishes: Vec<_> = rooms.iter().map(|room| self.publish_checked(room, &event, data, &id, dedup)).collect();
        // In the order given; the first failure ends the broadcast (later rooms are not sent).
        stream::iter(publishes).buffered(IN_FLIGHT).try_collect().await
    }
}

/// The rooms of a broadcast, parsed: 1 to [`MAX_BROADCAST_ROOMS`], none twice.
fn check_rooms<S: AsRef<str>>(rooms: &[S]) -> Result<Vec<RoomName>, Error> {
    if rooms.is_empty() || rooms.len() > MAX_BROADCAST_ROOMS {
        return Err(Error::InvalidArgument(format!(
            "a broadcast names 1 to {MAX_BROADCAST_ROOMS} rooms, not {}",
            rooms.len()
        )));
    }
    let mut seen = HashSet::with_capacity(rooms.len());
    rooms
        .iter()
        .enumerate()
        .map(|(i, room)| {
            let room =
                RoomName::parse(room.as_ref()).map_err(|e| Error::InvalidArgument(format!("rooms[{i}]: {e}")))?;
            if !seen.insert(room.clone()) {
                return Err(Error::InvalidArgument(format!("rooms[{i}]: {room} is named twice")));
            }
            Ok(room)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_checked_before_anything_is_sent() {
        let message = |rooms: &[&str]| check_rooms(rooms).unwrap_err().to_string();
        assert!(message(&[]).contains("1 to 1000 rooms, not 0"));
        assert!(message(&["user:a", "no colon"]).contains("rooms[1]:"));
        assert!(message(&["user:a", "user:b", "user:a"]).contains("rooms[2]: user:a is named twice"));
        let many: Vec<String> = (0..1001).map(|i| format!("user:u{i}")).collect();
        assert!(check_rooms(&many).unwrap_err().to_string().contains("not 1001"));
        assert_eq!(check_rooms(&many[..1000]).unwrap().len(), 1000);
    }
}
