//! Socket.IO v5 packets: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`.
//!
//! Types: `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT,
//! `6` BINARY_ACK. A binary packet names how many binary attachments follow it (each its own
//! Engine.IO binary message) and stands them in its JSON as `{"_placeholder":true,"num":N}`.
//! Anything that does not parse closes the connection, as Socket.IO's own server does.

use serde_json::value::RawValue;

/// The main namespace.
pub const MAIN: &str = "/";

/// Most binary attachments one packet may announce.
const MAX_ATTACHMENTS: usize = 64;

/// A packet's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Join a namespace (with an auth payload).
    Connect,
    /// Leave a namespace.
    Disconnect,
    /// An event: `["name", args...]`.
    Event,
    /// The answer to an event that asked for one: `[args...]`.
    Ack,
    /// A refused connect (server to client only).
    ConnectError,
    /// An event with binary attachments.
    BinaryEvent,
    /// An ack with binary attachments.
    BinaryAck,
}

/// A client packet, borrowed from the text it was parsed from.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    /// Its type.
    pub kind: Kind,
    /// Its namespace (`/` when not given).
    pub namespace: &'a str,
    /// The ack id an event asks an answer for, or an ack answers.
    pub id: Option<u64>,
    /// Binary attachments that follow (binary packets only).
    pub attachments: usize,
    /// Its JSON payload: an object (CONNECT), an array (EVENT, ACK).
    pub data: Option<&'a RawValue>,
}

/// A packet that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Socket.IO packet: {0}")]
pub struct InvalidPacket(pub &'static str);

impl<'a> Packet<'a> {
    /// Parses a packet from a client (CONNECT_ERROR is refused: only servers send it).
    pub fn parse(text: &'a str) -> Result<Self, InvalidPacket> {
        let bytes = text.as_bytes();
        let kind = match bytes.first() {
            Some(b'0') => Kind::Connect,
            Some(b'1') => Kind::Disconnect,
            Some(b'2') => Kind::Event,
            Some(b'3') => Kind::Ack,
            Some(b'5') => Kind::BinaryEvent,
            Some(b'6') => Kind::BinaryAck,
            _ => return Err(InvalidPacket("unknown packet type")),
        };
        let mut at = 1;
        let mut attachments = 0;
        if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
            let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || bytes.get(at + digits) != Some(&b'-') {
                return Err(InvalidPacket("binary packet without its attachment count"));
            }
            attachments = text[at..at + digits].parse().map_err(|_| InvalidPacket("attachment count"))?;
            if attachments > MAX_ATTACHMENTS {
                return Err(InvalidPacket("too many attachments"));
            }
            at += digits + 1;
        }
        let mut namespace = MAIN;
        if bytes.get(at) == Some(&b'/') {
            let end = text[at..].find(',').map_or(text.len(), |i| at + i);
            namespace = &text[at..end];
            at = (end + 1).min(text.len());
        }
        let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        let id = match digits {
            0 => None,
            _ => Some(text[at..at + digits].parse::<u64>().map_err(|_| InvalidPacket("ack id out of range"))?),
        };
        at += digits;
        let rest = &text[at..];
        let data = match rest {
            "" => None,
            json => Some(serde_json::from_str::<&RawValue>(json).map_err(|_| InvalidPacket("payload is not JSON"))?),
        };
        let shape = data.map(|d| d.get().as_bytes()[0]);
        match kind {
            Kind::Connect if !matches!(shape, None | Some(b'{')) => return Err(InvalidPacket("CONNECT payload")),
            Kind::Event | Kind::BinaryEvent if shape != Some(b'[') => return Err(InvalidPacket("EVENT payload")),
            Kind::Ack | Kind::BinaryAck if shape != Some(b'[') || id.is_none() => {
                return Err(InvalidPacket("ACK payload"));
            }
            Kind::Connect | Kind::Disconnect if id.is_some() => return Err(InvalidPacket("id on CONNECT")),
            _ => {}
        }
        Ok(Self { kind, namespace, id, attachments, data })
    }

    /// An event's name and its arguments (the array after the name), if it is an event.
    pub fn event(&self) -> Result<(String, Vec<&'a RawValue>), InvalidPacket> {
        let data = self.data.ok_or(InvalidPacket("EVENT payload"))?;
        let mut items: Vec<&'a RawValue> =
            serde_json::from_str(data.get()).map_err(|_| InvalidPacket("EVENT payload"))?;
        if items.is_empty() {
            return Err(InvalidPacket("EVENT without a name"));
        }
        let name: String = serde_json::from_str(items.remove(0).get()).map_err(|_| InvalidPacket("EVENT name"))?;
        Ok((name, items))
    }
}

/// The Engine.IO message packet (`4`) that carries the Socket.IO packet `packet`.
pub fn message(packet: &str) -> String {
    format!("4{packet}")
}

/// Writes the namespace part of a packet (nothing for the main namespace).
fn namespace_part(out: &mut String, namespace: &str) {
    if namespace != MAIN {
        out.push_str(namespace);
        out.push(',');
    }
}

/// `0[namespace,]{"sid":...[,"pid":...]}`: the answer to a CONNECT.
pub fn connect(namespace: &str, sid: &str, pid: Option<&str>) -> String {
    let mut out = String::from("0");
    namespace_part(&mut out, namespace);
    let body = match pid {
        Some(pid) => serde_json::json!({"sid": sid, "pid": pid}),
        None => serde_json::json!({"sid": sid}),
    };
    out.push_str(&body.to_string());
    out
}

/// `4[namespace,]{"message":...[,"data":...]}`: a refused CONNECT.
pub fn connect_error(namespace: &str, message: &str, data: Option<serde_json::Value>) -> String {
    let mut out = String::from("4");
    namespace_part(&mut out, namespace);
    let body = match data {
        Some(data) => serde_json::json!({"message": message, "data": data}),
        None => serde_json::json!({"message": message}),
    };
    out.push_str(&body.to_string());
    out
}

/// `1[namespace,]`: the server ends the client's namespace (socket.io-client does not reconnect).
pub fn disconnect(namespace: &str) -> String {
    let mut out = String::from("1");
    namespace_part(&mut out, namespace);
    out
}

/// An EVENT (or BINARY_EVENT with `attachments`) whose JSON array is `array`.
pub fn event(namespace: &str, id: Option<u64>, attachments: usize, array: &str) -> String {
    let mut out = String::with_capacity(array.len() + 8);
    out.push(if attachments > 0 { '5' } else { '2' });
    if attachments > 0 {
        out.push_str(&attachments.to_string());
        out.push('-');
    }
    namespace_part(&mut out, namespace);
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    out.push_str(array);
    out
}

/// An ACK (or BINARY_ACK) answering `id` with the JSON array `array`.
pub fn ack(namespace: &str, id: u64, attachments: usize, array: &str) -> String {
    let mut out = String::with_capacity(array.len() + 8);
    out.push(if attachments > 0 { '6' } else { '3' });
    if attachments > 0 {
        out.push_str(&attachments.to_string());
        out.push('-');
    }
    namespace_part(&mut out, namespace);
    out.push_str(&id.to_string());
    out.push_str(array);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_suites_packets_parse() {
        let p = Packet::parse(r#"0{"token":"123"}"#).unwrap();
        assert_eq!((p.kind, p.namespace, p.data.map(RawValue::get)), (Kind::Connect, "/", Some(r#"{"token":"123"}"#)));
        let p = Packet::parse("0/custom,").unwrap();
        assert_eq!((p.namespace, p.data.is_none()), ("/custom", true));
        assert_eq!(Packet::parse("0/random").unwrap().namespace, "/random");
        let p = Packet::parse(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#).unwrap();
        assert_eq!((p.kind, p.id), (Kind::Event, Some(456)));
        let (name, args) = p.event().unwrap();
        assert_eq!((name.as_str(), args.len(), args[2].get()), ("message-with-ack", 3, r#"{"3":[false]}"#));
        let p =
            Packet::parse(r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
                .unwrap();
        assert_eq!((p.kind, p.attachments, p.id), (Kind::BinaryEvent, 2, Some(789)));
        let p = Packet::parse("1/custom,").unwrap();
        assert_eq!((p.kind, p.namespace), (Kind::Disconnect, "/custom"));
    }

    #[test]
    fn what_socket_io_refuses_is_refused() {
        for bad in ["abc", "2{}", r#"2abc["message-with-ack",1]"#, "3[1]", "4{}", "5[\"a\"]", "2", "0[1]", "9", ""] {
            assert!(Packet::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(Packet::parse("2{}").is_err());
        assert!(Packet::parse(r#"2abc["m"]"#).is_err());
        assert!(Packet::parse("3[1]").is_err(), "an ack needs its id");
        assert!(Packet::parse(r#"299999999999999999999["m"]"#).is_err(), "ids past u64 do not wrap");
        assert!(Packet::parse(r#"2[]"#).unwrap().event().is_err(), "an event needs a name");
        assert!(Packet::parse(r#"2[1]"#).unwrap().event().is_err(), "a name is a string");
    }

    #[test]
    fn server_packets_are_encoded_as_the_suites_expect() {
        assert_eq!(connect("/custom", "s", None), r#"0/custom,{"sid":"s"}"#);
        let with_pid: serde_json::Value = serde_json::from_str(&connect("/", "s", Some("p"))[1..]).unwrap();
        assert_eq!(with_pid, serde_json::json!({"sid": "s", "pid": "p"}));
        assert_eq!(connect_error("/random", "Invalid namespace", None), r#"4/random,{"message":"Invalid namespace"}"#);
        assert_eq!(event("/", None, 0, r#"["auth",{}]"#), r#"2["auth",{}]"#);
        assert_eq!(event("/custom", None, 0, r#"["auth",{}]"#), r#"2/custom,["auth",{}]"#);
        assert_eq!(ack("/", 456, 0, "[1]"), "3456[1]");
        assert_eq!(ack("/", 789, 2, "[{}]"), "62-789[{}]");
        assert_eq!(event("/", None, 2, "[\"m\"]"), "52-[\"m\"]");
        assert_eq!(disconnect("/"), "1");
    }
}
