//! [`Event`]: what to publish; [`Published`]: where it landed.

use serde::Serialize;

/// An event to publish to a room.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub(crate) room: &'a str,
    pub(crate) event: &'a str,
    pub(crate) data: Result<Vec<u8>, String>,
    pub(crate) id: Option<&'a str>,
    pub(crate) exclude_user: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// An event named `event` (e.g. `message:new`) for `room`, carrying `data` as JSON.
    pub fn new(room: &'a str, event: &'a str, data: &impl Serialize) -> Self {
        let data = serde_json::to_vec(data).map_err(|e| e.to_string());
        Self { room, event, data, id: None, exclude_user: None }
    }

    /// An event whose data is already JSON text (it is checked, not re-encoded).
    pub fn raw(room: &'a str, event: &'a str, json: &[u8]) -> Self {
        let data = match serde_json::from_slice::<serde::de::IgnoredAny>(json) {
            Ok(_) => Ok(json.to_vec()),
            Err(e) => Err(format!("data is not JSON: {e}")),
        };
        Self { room, event, data, id: None, exclude_user: None }
    }

    /// An event whose data is a JSON value already checked by `serde_json`.
    pub fn from_raw(room: &'a str, event: &'a str, json: &serde_json::value::RawValue) -> Self {
        Self { room, event, data: Ok(json.get().as_bytes().to_vec()), id: None, exclude_user: None }
    }

    /// The message id clients use to drop duplicates; one is made when not given. A given id
    /// is also remembered in the room for the dedup window: publishing it again there returns
    /// the first offset and delivers nothing.
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// Keeps the event from this user's connections (the sender already has it).
    pub fn exclude_user(mut self, user: &'a str) -> Self {
        self.exclude_user = Some(user);
        self
    }
}

/// Where a published event landed in its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's offset in the room (1 for the first event).
    pub offset: u64,
    /// The room's epoch: offsets compare only within one epoch.
    pub epoch: String,
    /// The message id (given, or made by the publisher).
    pub id: String,
    /// The id was published to the room within the dedup window: nothing was delivered again,
    /// and `offset`/`epoch` are the first publish's.
    pub duplicate: bool,
}
