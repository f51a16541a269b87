//! What each API endpoint accepts, as pure functions of the body's bytes: the body is parsed and
//! every field checked before anything is written, so a refused request changes nothing.
//!
//! A body is a JSON object (serde would also take an array of the fields in order), nested at
//! most `max_json_depth` deep. Rooms are room names; user ids (`exclude_user`, member ids,
//! `/api/disconnect`'s `user`) are what a token's `sub` may be; event names and message ids are
//! 1 to 256 bytes.

use std::collections::HashSet;

use roomcast_proto::api::{BroadcastRequest, DisconnectRequest, HistoryRequest, MembersRequest, PublishRequest};
use roomcast_proto::frames::Position;
use roomcast_proto::json::{Object, check_depth};
use roomcast_proto::{RoomKind, RoomName, check_user_id};
use roomcast_publisher::{MAX_BROADCAST_BYTES, MAX_BROADCAST_ROOMS, MAX_HISTORY_PAGE};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Longest event name or message id accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// A checked `/api/publish` body.
#[derive(Debug)]
pub struct Publish {
    /// The room, validated.
    pub room: RoomName,
    /// The body; every field checked.
    pub body: PublishRequest,
}

/// A checked `/api/broadcast` body.
#[derive(Debug)]
pub struct Broadcast {
    /// The rooms, validated, each once, in the order given.
    pub rooms: Vec<RoomName>,
    /// The body; every field checked.
    pub body: BroadcastRequest,
}

/// A checked `/api/history` body.
#[derive(Debug)]
pub struct History {
    /// The room, validated.
    pub room: RoomName,
    /// Events after this position only.
    pub since: Option<Position>,
    /// Most events to return.
    pub limit: usize,
}

/// Events `/api/history` returns when the body has no `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// A checked `/api/members` body.
#[derive(Debug)]
pub struct Members {
    /// The room: not a `user:` or `org:` room.
    pub room: RoomName,
    /// The body; every user id checked.
    pub body: MembersRequest,
}

/// A checked `/api/disconnect` body.
#[derive(Debug)]
pub struct Disconnect {
    /// The user, a valid user id.
    pub user: String,
    /// The close code: 1000 or 4000-4999 (4003 when the body has none).
    pub code: u16,
}

/// Reads and checks a `/api/publish` body.
pub fn publish(bytes: &[u8], max_depth: usize) -> Result<Publish, ApiError> {
    let body: PublishRequest = parse(bytes, max_depth)?;
    let room = parse_room(&body.room)?;
    check_name("event", &body.event)?;
    if let Some(id) = &body.id {
        check_name("id", id)?;
    }
    if let Some(user) = &body.exclude_user {
        check_user_id(user).map_err(|e| ApiError::bad_request(format!("exclude_user: {e}")))?;
    }
    Ok(Publish { room, body })
}

/// Reads and checks a `/api/broadcast` body: 1 to 1000 rooms, none twice, and the fields of a
/// publish.
pub fn broadcast(bytes: &[u8], max_depth: usize) -> Result<Broadcast, ApiError> {
    let body: BroadcastRequest = parse(bytes, max_depth)?;
    if body.rooms.is_empty() || body.rooms.len() > MAX_BROADCAST_ROOMS {
        return Err(ApiError::bad_request(format!(
            "rooms: {} rooms, a broadcast names 1 to {MAX_BROADCAST_ROOMS}",
            body.rooms.len()
        )));
    }
    let mut seen = HashSet::with_capacity(body.rooms.len());
    let mut rooms = Vec::with_capacity(body.rooms.len());
    for (i, room) in body.rooms.iter().enumerate() {
        let room = RoomName::parse(room).map_err(|e| ApiError::bad_request(format!("rooms[{i}]: {e}")))?;
        if !seen.insert(room.clone()) {
            return Err(ApiError::bad_request(format!("rooms[{i}]: {room} is named twice")));
        }
        rooms.push(room);
    }
    check_name("event", &body.event)?;
    if let Some(id) = &body.id {
        check_name("id", id)?;
    }
    if let Some(user) = &body.exclude_user {
        check_user_id(user).map_err(|e| ApiError::bad_request(format!("exclude_user: {e}")))?;
    }
    let size = body.data.as_ref().map_or(4, |d| d.get().len());
    if size.saturating_mul(rooms.len()) > MAX_BROADCAST_BYTES {
        return Err(ApiError::bad_request(format!(
            "data: {size} bytes into {} rooms is over {MAX_BROADCAST_BYTES} bytes in all; send a smaller payload (a link to it) or fewer rooms",
            rooms.len()
        )));
    }
    Ok(Broadcast { rooms, body })
}

/// Reads and checks a `/api/history` body: a room, an optional position, a limit of 1 to 1000.
pub fn history(bytes: &[u8], max_depth: usize) -> Result<History, ApiError> {
    let body: HistoryRequest = parse(bytes, max_depth)?;
    let room = parse_room(&body.room)?;
    let limit = match body.limit {
        None => DEFAULT_HISTORY_LIMIT,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_HISTORY_PAGE).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit: {n} is not 1 to {MAX_HISTORY_PAGE}")))?,
    };
    if let Some(since) = &body.since
        && since.epoch.len() > MAX_NAME_LEN
    {
        return Err(ApiError::bad_request(format!(
            "since.epoch: is {} bytes, the limit is {MAX_NAME_LEN}",
            since.epoch.len()
        )));
    }
    Ok(History { room, since: body.since, limit })
}

/// Reads and checks a `/api/members` body.
pub fn members(bytes: &[u8], max_depth: usize) -> Result<Members, ApiError> {
    let body: MembersRequest = parse(bytes, max_depth)?;
    let room = parse_room(&body.room)?;
    if room.kind() != RoomKind::Members {
        return Err(ApiError::bad_request(format!(
            "room: {room} is joined through its token's sub or org; member sets apply to other rooms such as dialog:<id>"
        )));
    }
    for (field, users) in [("add", &body.add), ("remove", &body.remove)] {
        for (i, user) in users.iter().enumerate() {
            check_user_id(user).map_err(|e| ApiError::bad_request(format!("{field}[{i}]: {e}")))?;
        }
    }
    Ok(Members { room, body })
}

/// Reads and checks a `/api/disconnect` body.
pub fn disconnect(bytes: &[u8], max_depth: usize) -> Result<Disconnect, ApiError> {
    let body: DisconnectRequest = parse(bytes, max_depth)?;
    check_user_id(&body.user).map_err(|e| ApiError::bad_request(format!("user: {e}")))?;
    let code = body.code.unwrap_or(4003);
    if !(code == 1000 || (4000..=4999).contains(&code)) {
        return Err(ApiError::bad_request(format!("code: {code} is not 1000 or 4000-4999")));
    }
    Ok(Disconnect { user: body.user, code })
}

/// Parses a body: a JSON object, nested at most `max_depth` deep.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, ApiError> {
    check_depth(bytes, max_depth)
        .map_err(|e| ApiError::bad_request(format!("body: {e}; the limit is max_json_depth ({max_depth})")))?;
    serde_json::from_slice::<Object<T>>(bytes)
        .map(|Object(body)| body)
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

fn parse_room(room: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(room).map_err(|e| ApiError::bad_request(format!("room: {e}")))
}

fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: is empty")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!("{field}: is {} bytes, the limit is {MAX_NAME_LEN}", value.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        result.unwrap_err().message
    }

    #[test]
    fn bodies_are_objects_of_bounded_depth() {
        assert!(message(publish(br#"["dialog:1","e",{}]"#, 64)).contains("expected a JSON object"));
        assert!(message(members(br#"["dialog:1",["u"],[]]"#, 64)).contains("expected a JSON object"));
        assert!(message(disconnect(br#"["u",4000]"#, 64)).contains("expected a JSON object"));
        let deep = format!(r#"{{"room":"dialog:1","event":"e","data":{}1{}}}"#, "[".repeat(64), "]".repeat(64));
        assert!(message(publish(deep.as_bytes(), 64)).contains("max_json_depth (64)"));
        assert!(publish(deep.as_bytes(), 65).is_ok());
    }

    #[test]
    fn user_ids_are_checked_in_every_field() {
        let long = "u".repeat(124);
        let body = format!(r#"{{"room":"dialog:1","event":"e","exclude_user":"{long}"}}"#);
        assert!(message(publish(body.as_bytes(), 64)).starts_with("exclude_user: the user id is 124 bytes"));
        assert!(
            message(members(br#"{"room":"dialog:1","add":["a","u 1"]}"#, 64))
                .starts_with("add[1]: the user id has ' '")
        );
        assert!(
            message(members(br#"{"room":"dialog:1","remove":[""]}"#, 64))
                .starts_with("remove[0]: the user id is empty")
        );
        assert!(message(disconnect(br#"{"user":"u/../x"}"#, 64)).starts_with("user: the user id has '/'"));
        let ok = disconnect(br#"{"user":"u-1@x.y"}"#, 64).unwrap();
        assert_eq!((ok.user.as_str(), ok.code), ("u-1@x.y", 4003));
    }
}
