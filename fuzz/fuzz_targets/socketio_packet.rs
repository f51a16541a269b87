//! The Socket.IO face's parsers: Engine.IO packets (`Packet::parse_text`, one WebSocket text
//! frame; `Packet::parse_payload`, a long-polling body of packets split by `\x1e` with binary
//! ones in base64) and the Socket.IO packets they carry (`Packet::parse`, `Packet::event`, and
//! the event table's room templates on the event's first argument). No input panics; a packet
//! that parses is well formed, and an EVENT or ACK encoded back from what was parsed parses to
//! the same packet.
//!
//! Input: one byte choosing the transport (even: a WebSocket text frame, odd: a polling
//! payload), then the frame or payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_gateway::socketio::engine::packet::{Packet as EnginePacket, SEPARATOR, append_to_payload};
use roomcast_gateway::socketio::events::EventTable;
use roomcast_gateway::socketio::packet::{self, Kind, MAIN, Packet};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let packets = if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(input) else { return };
        match EnginePacket::parse_text(text) {
            Ok(p) => vec![p],
            Err(_) => return,
        }
    } else {
        match EnginePacket::parse_payload(input) {
            Ok(packets) => {
                // A payload holds at most one packet more than it has separators.
                let separators = input.iter().filter(|&&b| b == SEPARATOR).count();
                assert_eq!(packets.len(), separators + 1, "packets of a payload");
                packets
            }
            Err(_) => return,
        }
    };
    for engine in packets {
        match engine {
            EnginePacket::Message(text) => socket_io(&text),
            EnginePacket::Binary(bytes) => {
                // What was decoded from base64 encodes back to a payload that decodes to it.
                let mut payload = Vec::new();
                append_to_payload(&mut payload, None, Some(&bytes));
                assert_eq!(EnginePacket::parse_payload(&payload), Ok(vec![EnginePacket::Binary(bytes)]));
            }
            _ => {}
        }
    }
});

/// One Socket.IO packet, as the face reads an Engine.IO message.
fn socket_io(text: &str) {
    let Ok(p) = Packet::parse(text) else { return };
    assert!(p.namespace == MAIN || (p.namespace.starts_with('/') && !p.namespace.contains(',')), "namespace");
    assert!(p.attachments == 0 || matches!(p.kind, Kind::BinaryEvent | Kind::BinaryAck), "attachments");
    let shape = p.data.map(|d| d.get().as_bytes()[0]);
    match p.kind {
        Kind::Connect => assert!(matches!(shape, None | Some(b'{')) && p.id.is_none()),
        Kind::Disconnect => assert!(p.id.is_none()),
        Kind::Event | Kind::BinaryEvent => assert_eq!(shape, Some(b'[')),
        Kind::Ack | Kind::BinaryAck => assert!(shape == Some(b'[') && p.id.is_some()),
        Kind::ConnectError => panic!("a client's CONNECT_ERROR parsed"),
    }
    let binary = p.attachments > 0;
    let encoded = match (p.kind, p.data) {
        (Kind::Event | Kind::BinaryEvent, Some(d)) => Some(packet::event(p.namespace, p.id, p.attachments, d.get())),
        (Kind::Ack | Kind::BinaryAck, Some(d)) => p.id.map(|id| packet::ack(p.namespace, id, p.attachments, d.get())),
        _ => None,
    };
    if let Some(encoded) = encoded {
        let again = Packet::parse(&encoded).expect("an encoded packet parses");
        assert_eq!(again.namespace, p.namespace, "{encoded}");
        assert_eq!((again.id, again.attachments), (p.id, p.attachments), "{encoded}");
        assert_eq!(again.data.map(|d| d.get()), p.data.map(|d| d.get()), "{encoded}");
        // `50-[...]` (a binary event announcing none) comes back as a plain event.
        if binary || matches!(p.kind, Kind::Event | Kind::Ack) {
            assert_eq!(again.kind, p.kind, "{encoded}");
        }
    }
    if matches!(p.kind, Kind::Event | Kind::BinaryEvent)
        && let Ok((name, args)) = p.event()
    {
        // The face looks the name up in its table and fills room templates from the first argument.
        let arg = args.first().and_then(|a| serde_json::from_str::<serde_json::Value>(a.get()).ok());
        if let Some(mapping) = EventTable::defaults().get(&name)
            && let Some(room) = mapping.room(arg.as_ref())
        {
            assert!(room.starts_with("dialog:"), "{room}");
        }
    }
}
