//! Socket.IO v4 over a WebSocket: Engine.IO v4 packets and the Socket.IO packets inside them.
//!
//! Only the client side the scenarios need: the Engine.IO `open` (0), `ping` (2) answered with
//! `pong` (3), and Engine.IO `message` (4) carrying Socket.IO `CONNECT` (0), `EVENT` (2), `ACK`
//! (3) and `CONNECT_ERROR` (4) packets in the default namespace, e.g. `40{"token":"..."}` and
//! `421["subscribe",{"room":"dialog:1"}]`.

/// The Engine.IO path a WebSocket-only Socket.IO client opens.
pub const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// An Engine.IO packet received as a text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// Handshake with the session's JSON parameters.
    Open(&'a [u8]),
    /// The server closes the session.
    Close,
    /// Heartbeat to answer with [`PONG`].
    Ping,
    /// Heartbeat answer.
    Pong,
    /// A Socket.IO packet.
    Message(SocketPacket<'a>),
    /// Anything else (upgrade, noop, malformed).
    Other,
}

/// A Socket.IO packet of the default namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketPacket<'a> {
    /// The namespace connection was accepted, with its JSON payload.
    Connect(&'a [u8]),
    /// The namespace connection ended.
    Disconnect,
    /// An event: optional ack id, then the JSON array `["name", args...]`.
    Event(Option<u64>, &'a [u8]),
    /// An acknowledgement of the client's event `id`, with the JSON array of arguments.
    Ack(u64, &'a [u8]),
    /// The namespace connection was refused, with the JSON error.
    ConnectError(&'a [u8]),
    /// A packet type the client does not use (binary events).
    Other,
}

/// The Engine.IO pong a client sends for every ping.
pub const PONG: &[u8] = b"3";

/// Parses one Engine.IO packet.
pub fn parse(text: &[u8]) -> EnginePacket<'_> {
    match text.first() {
        Some(b'0') => EnginePacket::Open(&text[1..]),
        Some(b'1') => EnginePacket::Close,
        Some(b'2') => EnginePacket::Ping,
        Some(b'3') => EnginePacket::Pong,
        Some(b'4') => EnginePacket::Message(parse_socket(&text[1..])),
        _ => EnginePacket::Other,
    }
}

fn parse_socket(text: &[u8]) -> SocketPacket<'_> {
    let Some((&kind, mut rest)) = text.split_first() else { return SocketPacket::Other };
    // A namespace other than "/" is written "/name," before the id; the scenarios use "/" only.
    if rest.first() == Some(&b'/') {
        rest = rest.iter().position(|&b| b == b',').map_or(&[][..], |comma| &rest[comma + 1..]);
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let id = std::str::from_utf8(&rest[..digits]).ok().and_then(|d| d.parse::<u64>().ok());
    let payload = &rest[digits..];
    match (kind, id) {
        (b'0', _) => SocketPacket::Connect(payload),
        (b'1', _) => SocketPacket::Disconnect,
        (b'2', id) => SocketPacket::Event(id, payload),
        (b'3', Some(id)) => SocketPacket::Ack(id, payload),
        (b'4', _) => SocketPacket::ConnectError(payload),
        _ => SocketPacket::Other,
    }
}

/// The name of an event whose payload is `["name", ...]`, when it is a plain string.
pub fn event_name(payload: &[u8]) -> Option<&str> {
    let rest = payload.strip_prefix(b"[\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    (rest.get(end) == Some(&b'"')).then(|| std::str::from_utf8(&rest[..end]).ok()).flatten()
}

/// `40{auth}`: connects the default namespace with `auth` (a JSON object).
pub fn connect(auth: &serde_json::Value) -> Vec<u8> {
    format!("40{auth}").into_bytes()
}

/// `42<id>["name",data]`: an event, asking for an acknowledgement when `ack` is set.
pub fn event(ack: Option<u64>, name: &str, data: &serde_json::Value) -> Vec<u8> {
    let array = serde_json::json!([name, data]);
    match ack {
        Some(id) => format!("42{id}{array}").into_bytes(),
        None => format!("42{array}").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_packets() {
        assert_eq!(
            parse(br#"0{"sid":"a","pingInterval":25000}"#),
            EnginePacket::Open(br#"{"sid":"a","pingInterval":25000}"#)
        );
        assert_eq!(parse(b"2"), EnginePacket::Ping);
        assert_eq!(parse(b"3"), EnginePacket::Pong);
        assert_eq!(parse(b"1"), EnginePacket::Close);
        assert_eq!(parse(b""), EnginePacket::Other);
    }

    #[test]
    fn socket_packets_with_ids_and_namespaces() {
        assert_eq!(parse(br#"40{"sid":"x"}"#), EnginePacket::Message(SocketPacket::Connect(br#"{"sid":"x"}"#)));
        assert_eq!(parse(br#"42["m",{"a":1}]"#), EnginePacket::Message(SocketPacket::Event(None, br#"["m",{"a":1}]"#)));
        assert_eq!(parse(br#"4217["m",1]"#), EnginePacket::Message(SocketPacket::Event(Some(17), br#"["m",1]"#)));
        assert_eq!(parse(br#"4312[{"ok":true}]"#), EnginePacket::Message(SocketPacket::Ack(12, br#"[{"ok":true}]"#)));
        assert_eq!(parse(br#"42/chat,3["m"]"#), EnginePacket::Message(SocketPacket::Event(Some(3), br#"["m"]"#)));
        assert_eq!(
            parse(br#"44{"message":"unauthorized"}"#),
            EnginePacket::Message(SocketPacket::ConnectError(br#"{"message":"unauthorized"}"#))
        );
        assert_eq!(parse(b"41"), EnginePacket::Message(SocketPacket::Disconnect));
    }

    #[test]
    fn builds_connect_and_events() {
        assert_eq!(connect(&serde_json::json!({"token": "t"})), br#"40{"token":"t"}"#);
        let sub = event(Some(5), "subscribe", &serde_json::json!({"room": "dialog:1"}));
        assert_eq!(sub, br#"425["subscribe",{"room":"dialog:1"}]"#);
        assert_eq!(event_name(br#"["message:new",{"_s":1}]"#), Some("message:new"));
        assert_eq!(event_name(br#"[1]"#), None);
    }
}
