//! Engine.IO v4 packets and the long-polling payload that carries several of them.
//!
//! A packet is one type digit and its data: `0` open, `1` close, `2` ping, `3` pong,
//! `4` message, `5` upgrade, `6` noop. Over WebSocket each text frame is one packet and a
//! binary frame is a binary message; in a polling payload packets are joined with the record
//! separator `\x1e`, and a binary message is `b` followed by its base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

/// The record separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// One Engine.IO packet from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `1`: the client closes the session.
    Close,
    /// `2` (with `probe` during an upgrade).
    Ping(String),
    /// `3` (with `probe` during an upgrade).
    Pong(String),
    /// `4`: an application message (for Socket.IO, one Socket.IO packet).
    Message(String),
    /// A binary message (a Socket.IO attachment).
    Binary(Bytes),
    /// `5`: the client switched to the probed transport.
    Upgrade,
    /// `6`: nothing.
    Noop,
}

/// A packet that does not parse; the session it came on is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Engine.IO packet: {0}")]
pub struct InvalidPacket(pub &'static str);

impl Packet {
    /// Parses one text packet (a WebSocket text frame, or one part of a polling payload).
    pub fn parse_text(text: &str) -> Result<Self, InvalidPacket> {
        let mut chars = text.chars();
        let data = || text[1..].to_owned();
        Ok(match chars.next() {
            Some('1') => Packet::Close,
            Some('2') => Packet::Ping(data()),
            Some('3') => Packet::Pong(data()),
            Some('4') => Packet::Message(data()),
            Some('5') => Packet::Upgrade,
            Some('6') => Packet::Noop,
            // `0` (open) is only ever sent by the server.
            Some(_) => return Err(InvalidPacket("unknown packet type")),
            None => return Err(InvalidPacket("empty packet")),
        })
    }

    /// Parses a polling payload: packets separated by `\x1e`, binary ones as `b<base64>`.
    pub fn parse_payload(payload: &[u8]) -> Result<Vec<Self>, InvalidPacket> {
        let text = std::str::from_utf8(payload).map_err(|_| InvalidPacket("payload is not UTF-8"))?;
        text.split(SEPARATOR as char)
            .map(|part| match part.strip_prefix('b') {
                Some(encoded) => BASE64
                    .decode(encoded)
                    .map(|bytes| Packet::Binary(bytes.into()))
                    .map_err(|_| InvalidPacket("binary packet is not base64")),
                None => Self::parse_text(part),
            })
            .collect()
    }
}

/// The open packet's text: `0` and the handshake.
pub fn open(sid: &str, upgrades: &[&str], ping_interval_ms: u64, ping_timeout_ms: u64, max_payload: usize) -> String {
    let handshake = serde_json::json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    });
    format!("0{handshake}")
}

/// Appends one packet to a polling payload being built.
pub fn append_to_payload(payload: &mut Vec<u8>, text: Option<&[u8]>, binary: Option<&[u8]>) {
    if !payload.is_empty() {
        payload.push(SEPARATOR);
    }
    if let Some(text) = text {
        payload.extend_from_slice(text);
    }
    if let Some(binary) = binary {
        payload.push(b'b');
        payload.extend_from_slice(BASE64.encode(binary).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_packets_parse_by_their_type_digit() {
        assert_eq!(Packet::parse_text("4hello"), Ok(Packet::Message("hello".into())));
        assert_eq!(Packet::parse_text("2probe"), Ok(Packet::Ping("probe".into())));
        assert_eq!(Packet::parse_text("3"), Ok(Packet::Pong(String::new())));
        assert_eq!(Packet::parse_text("5"), Ok(Packet::Upgrade));
        assert_eq!(Packet::parse_text("1"), Ok(Packet::Close));
        assert!(Packet::parse_text("abc").is_err());
        assert!(Packet::parse_text("0{}").is_err(), "a client never opens");
        assert!(Packet::parse_text("").is_err());
    }

    #[test]
    fn a_payload_splits_on_the_separator_and_decodes_base64() {
        let got = Packet::parse_payload(b"4hello\x1ebAQIDBA==\x1e4x").unwrap();
        assert_eq!(
            got,
            [
                Packet::Message("hello".into()),
                Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
                Packet::Message("x".into())
            ]
        );
        assert!(Packet::parse_payload(b"b!!").is_err());
        assert!(Packet::parse_payload(&[0xff]).is_err());
    }

    #[test]
    fn payloads_are_built_with_separators_and_base64() {
        let mut payload = Vec::new();
        append_to_payload(&mut payload, Some(b"4hello"), None);
        append_to_payload(&mut payload, None, Some(&[1, 2, 3, 4]));
        assert_eq!(payload, b"4hello\x1ebAQIDBA==");
        let open = open("s1", &["websocket"], 300, 200, 1_000_000);
        let handshake: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
        assert_eq!(handshake["upgrades"], serde_json::json!(["websocket"]));
        assert_eq!(handshake["pingInterval"], 300);
    }
}
