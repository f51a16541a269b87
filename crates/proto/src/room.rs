//! Room names: what a valid name is, and which kind of room it denotes.
//!
//! A room name is 1 to 128 bytes of `[A-Za-z0-9_.:@-]`. Its prefix decides who may join:
//! `user:<sub>` and `org:<org>` are joined automatically by their own users and by nobody
//! else; every other room (`dialog:<id>` and any other prefix) is joined through the member
//! registry or a subscription token. A user id (a token's `sub`, a member id, `exclude_user`) is
//! what fits after `user:`: 1 to 123 bytes of the same alphabet ([`check_user_id`]).

use std::fmt;
use std::sync::Arc;

/// Longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 128;

/// Prefix of a user's personal room.
pub const USER_PREFIX: &str = "user:";
/// Prefix of an organisation's room.
pub const ORG_PREFIX: &str = "org:";

/// Why a string is not a room name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// The name is empty.
    #[error("room name is empty")]
    Empty,
    /// The name is longer than [`MAX_ROOM_LEN`] bytes.
    #[error("room name is {0} bytes, the limit is 128")]
    TooLong(usize),
    /// The name holds a character outside `[A-Za-z0-9_.:@-]`.
    #[error("room name has {0:?}, only A-Z a-z 0-9 _ . : @ - are allowed")]
    BadChar(char),
    /// A `user:` or `org:` room without an id after the prefix.
    #[error("room name {0:?} has no id after its prefix")]
    MissingId(String),
}

/// Longest user id, in bytes: a token's `sub` becomes the room `user:<sub>`, so every user id
/// (member ids, `exclude_user`, `/api/disconnect`'s `user`) has the room alphabet and leaves
/// room for the prefix.
pub const MAX_USER_ID_LEN: usize = MAX_ROOM_LEN - USER_PREFIX.len();

/// Why a string is not a user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    /// The id is empty.
    #[error("the user id is empty")]
    Empty,
    /// The id is longer than [`MAX_USER_ID_LEN`] bytes.
    #[error("the user id is {0} bytes, the limit is 123 (user:<id> must be a room name of at most 128 bytes)")]
    TooLong(usize),
    /// The id holds a character outside `[A-Za-z0-9_.:@-]`.
    #[error("the user id has {0:?}, only A-Z a-z 0-9 _ . : @ - are allowed")]
    BadChar(char),
}

/// Checks that `id` can be a user id: what a connection token's `sub` may be.
pub fn check_user_id(id: &str) -> Result<(), UserIdError> {
    if id.is_empty() {
        return Err(UserIdError::Empty);
    }
    if id.len() > MAX_USER_ID_LEN {
        return Err(UserIdError::TooLong(id.len()));
    }
    match id.chars().find(|c| !is_room_char(*c)) {
        Some(bad) => Err(UserIdError::BadChar(bad)),
        None => Ok(()),
    }
}

/// A validated room name; cheap to clone (one reference count).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

/// Which rule decides who may join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind<'a> {
    /// `user:<id>`: only connections of user `<id>`, joined at connect.
    User(&'a str),
    /// `org:<id>`: only connections whose token carries org `<id>`, joined at connect.
    Org(&'a str),
    /// Any other room (`dialog:<id>`, ...): joined when the member registry or a
    /// subscription token allows it.
    Members,
}

impl RoomName {
    /// Validates `name` and returns it as a room name.
    pub fn parse(name: &str) -> Result<Self, RoomNameError> {
        validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The personal room of user `sub`.
    pub fn user(sub: &str) -> Result<Self, RoomNameError> {
        Self::parse(&format!("{USER_PREFIX}{sub}"))
    }

    /// The room of organisation `org`.
    pub fn org(org: &str) -> Result<Self, RoomNameError> {
        Self::parse(&format!("{ORG_PREFIX}{org}"))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind of room, which decides who may join it.
    pub fn kind(&self) -> RoomKind<'_> {
        if let Some(id) = self.0.strip_prefix(USER_PREFIX) {
            RoomKind::User(id)
        } else if let Some(id) = self.0.strip_prefix(ORG_PREFIX) {
            RoomKind::Org(id)
        } else {
            RoomKind::Members
        }
    }
}

fn validate(name: &str) -> Result<(), RoomNameError> {
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    if name.len() > MAX_ROOM_LEN {
        return Err(RoomNameError::TooLong(name.len()));
    }
    if let Some(bad) = name.chars().find(|c| !is_room_char(*c)) {
        return Err(RoomNameError::BadChar(bad));
    }
    if name == "user:" || name == "org:" {
        return Err(RoomNameError::MissingId(name.to_owned()));
    }
    Ok(())
}

fn is_room_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-')
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RoomName {
    type Err = RoomNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for RoomName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for name in ["dialog:42", "org:7", "user:u1", "a", "x_y.z:w@v-1", &"a".repeat(128)] {
            assert!(RoomName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(RoomName::parse(&"a".repeat(129)), Err(RoomNameError::TooLong(129)));
        assert_eq!(RoomName::parse("dialog 1"), Err(RoomNameError::BadChar(' ')));
        assert_eq!(RoomName::parse("dialog/1"), Err(RoomNameError::BadChar('/')));
        assert_eq!(RoomName::parse("dïalog"), Err(RoomNameError::BadChar('ï')));
        assert_eq!(RoomName::parse("{dialog}"), Err(RoomNameError::BadChar('{')));
        assert!(matches!(RoomName::parse("user:"), Err(RoomNameError::MissingId(_))));
        assert!(matches!(RoomName::parse("org:"), Err(RoomNameError::MissingId(_))));
    }

    #[test]
    fn kind_follows_the_prefix() {
        assert_eq!(RoomName::parse("user:u1").unwrap().kind(), RoomKind::User("u1"));
        assert_eq!(RoomName::parse("org:o1").unwrap().kind(), RoomKind::Org("o1"));
        assert_eq!(RoomName::parse("dialog:1").unwrap().kind(), RoomKind::Members);
        assert_eq!(RoomName::parse("channel:1").unwrap().kind(), RoomKind::Members);
        assert_eq!(RoomName::parse("users:1").unwrap().kind(), RoomKind::Members);
    }

    #[test]
    fn user_ids_are_what_a_user_room_can_hold() {
        assert_eq!(check_user_id("u-1@x.y:z_2"), Ok(()));
        assert_eq!(check_user_id(&"u".repeat(123)), Ok(()));
        assert!(RoomName::user(&"u".repeat(123)).is_ok(), "the longest user id makes a valid room");
        assert_eq!(check_user_id(&"u".repeat(124)), Err(UserIdError::TooLong(124)));
        assert_eq!(check_user_id(""), Err(UserIdError::Empty));
        assert_eq!(check_user_id("u 1"), Err(UserIdError::BadChar(' ')));
        assert_eq!(check_user_id("u/../x"), Err(UserIdError::BadChar('/')));
    }

    #[test]
    fn user_and_org_rooms_validate_their_ids() {
        assert_eq!(RoomName::user("u1").unwrap().as_str(), "user:u1");
        assert!(RoomName::user("a b").is_err());
        assert!(RoomName::user("").is_err());
        assert!(RoomName::org(&"o".repeat(130)).is_err());
    }
}
