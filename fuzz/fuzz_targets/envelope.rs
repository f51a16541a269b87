//! The broker's `Envelope` (protobuf, from Redis: other nodes, backends with the publisher
//! crate, or anyone who can write to Redis) through the gateway's fan-out: decoding, the room
//! name, the event's JSON data, framing, delivery to a member of `dialog:1` and `user:u1` (gap
//! detection included), member removal and disconnects. No input panics, and an event framed for
//! delivery is a well-formed JSON `event` frame of its room.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use roomcast_gateway::fanout::Fanout;
use roomcast_gateway::metrics::Metrics;
use roomcast_gateway::rooms::{JoinPosition, Member, RoomRegistry};
use roomcast_proto::RoomName;
use roomcast_proto::envelope::Envelope;

static METRICS: LazyLock<Arc<Metrics>> = LazyLock::new(|| Arc::new(Metrics::new("fuzz")));

fuzz_target!(|data: &[u8]| {
    // A node with one connection of u1 in dialog:1 (and its user: room), fresh for every input.
    let registry = RoomRegistry::new(Arc::clone(&METRICS));
    let fanout = Fanout::new(Arc::clone(&registry), Arc::clone(&METRICS));
    let member = Arc::new(Member::new(1, Arc::from("u1"), 1 << 20, Arc::clone(&METRICS)));
    let _registration = registry.register(Arc::clone(&member));
    for room in ["dialog:1", "user:u1"] {
        let room = RoomName::parse(room).expect("a room name");
        let _ = fanout.start_join(&room, &member);
        let _ = fanout.finish_join(&room, member.id, JoinPosition { offset: 0, epoch: "e", recovered: &[] }, || ());
    }

    let decoded = Envelope::decode(data).ok();
    if fanout.envelope(data, Instant::now()).is_some() {
        let envelope = decoded.as_ref().expect("delivered, so it decoded");
        assert!(RoomName::parse(&envelope.room).is_ok(), "delivered for an invalid room");
    }
    let Some(envelope) = decoded else { return };
    let Ok(room) = RoomName::parse(&envelope.room) else { return };
    // The history path: events read back from Redis are framed the same way.
    for event in fanout.room_events(&room, std::slice::from_ref(&envelope)) {
        let json: serde_json::Value =
            serde_json::from_slice(roomcast_gateway::wire::payload(&event.frame)).expect("an event frame is JSON");
        assert_eq!(json["type"], "event");
        assert_eq!(json["room"], room.as_str());
    }
});
