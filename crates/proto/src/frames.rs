//! The JSON frames of the v1 WebSocket protocol (`docs/protocol.md`).
//!
//! Every frame is a JSON object whose `type` names it. The gateway parses [`ClientFrame`]s and
//! writes [`ServerFrame`]s; clients (tests, the load tester) do the reverse, so both directions
//! implement `Serialize` and `Deserialize`. The gateway's hot path encodes `event` frames with
//! [`encode_event`], once per event per node, and hands the same bytes to every member.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::json::{Object, TooDeep, check_depth};

/// A position in a room's event sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Object<PositionFields>")]
pub struct Position {
    /// Offset of the last event seen (events are numbered from 1).
    pub offset: u64,
    /// Epoch the offset belongs to.
    pub epoch: String,
}

/// [`Position`]'s fields, read from a JSON object only (see [`Object`]).
#[derive(Debug, Deserialize)]
#[doc(hidden)]
pub struct PositionFields {
    offset: u64,
    epoch: String,
}

impl From<Object<PositionFields>> for Position {
    fn from(Object(f): Object<PositionFields>) -> Self {
        Self { offset: f.offset, epoch: f.epoch }
    }
}

/// A frame sent by a client.
///
/// Parsed through [`FlatClientFrame`] because serde cannot buffer a `RawValue` inside an
/// internally tagged enum; that route also names the missing field in its error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "FlatClientFrame")]
pub enum ClientFrame {
    /// Authenticates a connection that gave no token on the upgrade request.
    Auth {
        /// The connection token.
        token: String,
    },
    /// Joins a room.
    Subscribe {
        /// Command id, repeated in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Room to join.
        room: String,
        /// Subscription token for the room, when the member registry does not list the user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Position after which the client wants the room's history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
        /// Whether the client wants `join` and `leave` frames for the room (presence rooms).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        presence: bool,
    },
    /// Leaves a room.
    Unsubscribe {
        /// Command id, repeated in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Room to leave.
        room: String,
    },
    /// Relays an ephemeral event to the other members of a room.
    Emit {
        /// Command id; when present, success is acknowledged with `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Room the client has joined.
        room: String,
        /// Event name; must be on the node's allow-list.
        event: String,
        /// Event data (any JSON); `null` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Box<RawValue>>,
    },
    /// Replaces the connection's token.
    Refresh {
        /// Command id, repeated in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The new connection token; its `sub` must equal the current one.
        token: String,
    },
    /// Asks who is in a room the client has joined (a presence room).
    Presence {
        /// Command id, repeated in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The room.
        room: String,
    },
    /// Asks how many users and connections are in a room, without the list.
    PresenceStats {
        /// Command id, repeated in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The room.
        room: String,
    },
    /// Acknowledges the events of a room up to an offset (delivery receipts).
    Ack {
        /// Command id; when present, the ack is answered with `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The room.
        room: String,
        /// Offset of the last event received.
        offset: u64,
        /// The epoch that offset belongs to; an ack from another epoch is refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// Asks for a `pong`.
    Ping {
        /// Command id, repeated in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// Why a client message is not a [`ClientFrame`].
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Nested deeper than the node allows.
    #[error("{0} (max_json_depth)")]
    TooDeep(#[from] TooDeep),
    /// Not JSON, not an object, an unknown `type`, a missing or mistyped field.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl ClientFrame {
    /// Parses a client message: a JSON object, nested at most `max_depth` levels deep (the frame
    /// itself counting as one), of a known `type` with its fields.
    pub fn parse(text: &[u8], max_depth: usize) -> Result<Self, FrameError> {
        // Before parsing: `data` is kept raw and relayed to other clients, so serde alone would
        // let any depth through.
        check_depth(text, max_depth)?;
        Ok(serde_json::from_slice(text)?)
    }
}

/// Every field any client frame may carry, before it is checked against its `type`; read from
/// a JSON object only, so that an array of values in field order is not a command.
#[derive(Debug, Deserialize)]
#[serde(from = "Object<FlatFields>")]
#[doc(hidden)]
pub struct FlatClientFrame(FlatFields);

impl From<Object<FlatFields>> for FlatClientFrame {
    fn from(Object(fields): Object<FlatFields>) -> Self {
        Self(fields)
    }
}

/// The fields of a [`FlatClientFrame`].
#[derive(Debug, Deserialize)]
#[doc(hidden)]
pub struct FlatFields {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    since: Option<Position>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    presence: Option<bool>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
}

impl TryFrom<FlatClientFrame> for ClientFrame {
    type Error = String;

    fn try_from(FlatClientFrame(f): FlatClientFrame) -> Result<Self, String> {
        let kind = f.kind;
        let need = |field: Option<String>, name: &str| field.ok_or_else(|| format!("{kind} needs a string \"{name}\""));
        Ok(match kind.as_str() {
            "auth" => ClientFrame::Auth { token: need(f.token, "token")? },
            "subscribe" => ClientFrame::Subscribe {
                id: f.id,
                room: need(f.room, "room")?,
                token: f.token,
                since: f.since,
                presence: f.presence.unwrap_or(false),
            },
            "unsubscribe" => ClientFrame::Unsubscribe { id: f.id, room: need(f.room, "room")? },
            "emit" => ClientFrame::Emit {
                id: f.id,
                room: need(f.room, "room")?,
                event: need(f.event, "event")?,
                data: f.data,
            },
            "refresh" => ClientFrame::Refresh { id: f.id, token: need(f.token, "token")? },
            "presence" => ClientFrame::Presence { id: f.id, room: need(f.room, "room")? },
            "presence_stats" => ClientFrame::PresenceStats { id: f.id, room: need(f.room, "room")? },
            "ack" => ClientFrame::Ack {
                id: f.id,
                room: need(f.room, "room")?,
                offset: f.offset.ok_or_else(|| format!("{kind} needs an unsigned integer \"offset\""))?,
                epoch: f.epoch,
            },
            "ping" => ClientFrame::Ping { id: f.id },
            other => return Err(format!("unknown type {other:?}")),
        })
    }
}

/// The `type` and `id` of a frame that did not parse as a [`ClientFrame`], so that the error
/// reply can still carry the command's id.
#[derive(Debug, Default, Deserialize)]
pub struct FrameHead {
    /// The frame's `type`, if it had a string one.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The frame's `id`, if it had an unsigned integer one.
    pub id: Option<u64>,
}

impl FrameHead {
    /// Reads what it can of a frame, ignoring everything that does not parse.
    pub fn peek(text: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Loose {
            #[serde(rename = "type")]
            kind: Option<serde_json::Value>,
            id: Option<serde_json::Value>,
        }
        let Ok(loose) = serde_json::from_slice::<Loose>(text) else {
            return Self::default();
        };
        Self { kind: loose.kind.and_then(|v| v.as_str().map(str::to_owned)), id: loose.id.and_then(|v| v.as_u64()) }
    }
}

/// Error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or its arguments are malformed.
    BadRequest,
    /// The token is missing, invalid or expired.
    Unauthorized,
    /// The client may not do this (join that room, emit there, ...).
    Forbidden,
    /// The room or thing named does not exist for this connection.
    NotFound,
    /// Too many commands of this kind.
    RateLimited,
    /// A limit was reached (rooms per connection, size).
    TooLarge,
    /// The node failed; the command may be retried.
    Internal,
}

/// Why a subscription ended without the client asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// The user was removed from the room's member set.
    Removed,
    /// Continuity could not be guaranteed: subscribe again with `since`.
    Resubscribe,
}

/// A frame sent by the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of an authenticated connection.
    Connected {
        /// Connection id, unique within the node.
        conn: String,
        /// Node id.
        node: String,
        /// The token's `sub`.
        user: String,
        /// The token's `org`, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        org: Option<String>,
        /// Rooms joined automatically.
        rooms: Vec<String>,
        /// The current position of each room in `rooms`: where a client's `since` for it starts.
        #[serde(default)]
        positions: BTreeMap<String, Position>,
        /// Token expiry, Unix seconds.
        expires_at: u64,
        /// Interval of server pings, in milliseconds.
        ping_interval_ms: u64,
    },
    /// An event published to a room, or emitted by another member.
    Event {
        /// Room the event belongs to.
        room: String,
        /// Event name.
        event: String,
        /// Event data.
        data: serde_json::Value,
        /// Message id (published events only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Offset in the room (published events only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// Epoch of the offset (published events only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        /// The user who emitted it (ephemeral `emit` events only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Success reply to a command.
    Ok(OkReply),
    /// Failure reply to a command, or a failure the client should know about.
    Error {
        /// The failed command's id, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// What kind of failure.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// A subscription ended without the client asking.
    Left {
        /// The room left.
        room: String,
        /// Why.
        reason: LeftReason,
    },
    /// A user's first connection entered a presence room the client asked presence of.
    Join {
        /// The room.
        room: String,
        /// The user.
        user: String,
    },
    /// A user's last connection left a presence room the client asked presence of.
    Leave {
        /// The room.
        room: String,
        /// The user.
        user: String,
    },
    /// Reply to `ping`.
    Pong {
        /// The ping's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

/// The body of an `ok` reply; which fields are set depends on the command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkReply {
    /// The command's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Room subscribed or unsubscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The room's current offset (subscribe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The room's current epoch (subscribe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// Whether the history since the given position was delivered (subscribe with `since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// The new token expiry, Unix seconds (refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The users in the room and their connections, counting every node (presence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<BTreeMap<String, PresenceEntry>>,
    /// Number of users in the room (presence_stats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// Number of connections in the room (presence_stats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}

/// One user's place in a room's presence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// The user's connections in the room, on every node.
    pub connections: u64,
}

/// Borrowed form of a published `event` frame, for encoding without copies.
#[derive(Serialize)]
struct EventOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    event: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
}

/// The parts of an `event` frame, borrowed from wherever the event came from.
#[derive(Debug, Clone, Copy)]
pub struct EventParts<'a> {
    /// Room name.
    pub room: &'a str,
    /// Event name.
    pub event: &'a str,
    /// Event data, already-validated JSON.
    pub data: &'a RawValue,
    /// Message id, for published events.
    pub id: Option<&'a str>,
    /// Offset and epoch, for published events.
    pub position: Option<(u64, &'a str)>,
    /// Emitting user, for ephemeral events.
    pub from: Option<&'a str>,
}

/// Encodes an `event` frame to JSON text.
pub fn encode_event(parts: EventParts<'_>) -> Vec<u8> {
    let out = EventOut {
        kind: "event",
        room: parts.room,
        event: parts.event,
        data: parts.data,
        id: parts.id,
        offset: parts.position.map(|(o, _)| o),
        epoch: parts.position.map(|(_, e)| e),
        from: parts.from,
    };
    // Serializing plain strings, numbers and already-valid raw JSON into a Vec cannot fail.
    serde_json::to_vec(&out).expect("event frame serializes")
}

impl ServerFrame {
    /// Encodes the frame to JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        // Every field is a string, a number, a bool or valid raw JSON: serialization cannot fail.
        serde_json::to_vec(self).expect("server frame serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_as_in_the_contract() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"subscribe","id":1,"room":"dialog:42","since":{"offset":17,"epoch":"e"},"extra":1}"#,
        )
        .unwrap();
        let ClientFrame::Subscribe { id, room, since, token, .. } = f else { panic!("{f:?}") };
        assert_eq!((id, room.as_str(), token), (Some(1), "dialog:42", None));
        assert_eq!(since, Some(Position { offset: 17, epoch: "e".into() }));

        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"emit","room":"r","event":"typing:start","data":{"a":[1]}}"#).unwrap();
        let ClientFrame::Emit { data, .. } = f else { panic!() };
        assert_eq!(data.unwrap().get(), r#"{"a":[1]}"#);
    }

    #[test]
    fn only_objects_are_frames() {
        for text in
            [r#"["ping",31]"#, r#"["subscribe",32,"dialog:pos"]"#, r#"["emit",34,"org:o1",null,null,"typing:start"]"#]
        {
            let err = serde_json::from_str::<ClientFrame>(text).unwrap_err();
            assert!(err.to_string().contains("expected a JSON object"), "{text}: {err}");
        }
        let err =
            serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","room":"r","since":[1,"e"]}"#).unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
        let f: ClientFrame = serde_json::from_str(r#" {"type":"ping","id":3}"#).unwrap();
        assert!(matches!(f, ClientFrame::Ping { id: Some(3) }));
    }

    #[test]
    fn parse_bounds_the_depth() {
        let at_limit = r#"{"type":"emit","room":"r","event":"e","data":[[1]]}"#;
        assert!(ClientFrame::parse(at_limit.as_bytes(), 3).is_ok());
        let err = ClientFrame::parse(at_limit.as_bytes(), 2).unwrap_err();
        assert!(matches!(err, FrameError::TooDeep(_)), "{err}");
        assert!(err.to_string().contains("max_json_depth"), "{err}");
        assert!(matches!(ClientFrame::parse(b"[]", 3), Err(FrameError::Json(_))));
    }

    #[test]
    fn head_recovers_id_of_a_bad_frame() {
        let head = FrameHead::peek(br#"{"type":"nope","id":7}"#);
        assert_eq!((head.kind.as_deref(), head.id), (Some("nope"), Some(7)));
        let head = FrameHead::peek(b"not json");
        assert_eq!((head.kind, head.id), (None, None));
    }

    #[test]
    fn client_frame_errors_name_the_problem() {
        let err = serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","id":1}"#).unwrap_err();
        assert!(err.to_string().contains("subscribe needs a string \"room\""), "{err}");
        let err = serde_json::from_str::<ClientFrame>(r#"{"type":"jump"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown type \"jump\""), "{err}");
    }

    #[test]
    fn event_frame_encodes_with_raw_data() {
        let data = RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap();
        let bytes = encode_event(EventParts {
            room: "dialog:1",
            event: "message:new",
            data: &data,
            id: Some("m-1"),
            position: Some((3, "E")),
            from: None,
        });
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"type":"event","room":"dialog:1","event":"message:new","data":{"text":"hi"},"id":"m-1","offset":3,"epoch":"E"}"#
        );
        let back: ServerFrame = serde_json::from_slice(&bytes).unwrap();
        assert!(matches!(back, ServerFrame::Event { offset: Some(3), .. }));
    }

    #[test]
    fn ok_reply_is_flat() {
        let frame = ServerFrame::Ok(OkReply { id: Some(1), room: Some("dialog:1".into()), ..Default::default() });
        assert_eq!(String::from_utf8(frame.to_json()).unwrap(), r#"{"type":"ok","id":1,"room":"dialog:1"}"#);
    }
}
