//! [`Publisher::history_page`]: what a backend reads of a room's history, without changing it.

use std::sync::LazyLock;

use redis::Script;
use roomcast_proto::RoomName;

use crate::{Error, History, Publisher, layout, scripts};

/// Most events one [`Publisher::history_page`] returns.
pub const MAX_HISTORY_PAGE: usize = 1000;

static HISTORY_PAGE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::HISTORY_PAGE));

impl Publisher {
    /// The room's position and up to `limit` (1 to [`MAX_HISTORY_PAGE`]) kept events, oldest
    /// first: without `since` the latest ones, with `since` (offset, epoch) the first ones after
    /// it when it is in the room's epoch (none otherwise). Unlike [`Publisher::history`] it
    /// writes nothing: a room that never had an event reads as offset 0 with an empty epoch.
    pub async fn history_page(
        &self,
        room: &RoomName,
        since: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<History, Error> {
        if limit == 0 || limit > MAX_HISTORY_PAGE {
            return Err(Error::InvalidArgument(format!("limit is 1 to {MAX_HISTORY_PAGE}, not {limit}")));
        }
        let channel = layout::channel(self.prefix(), room.as_str());
        let mut invocation = HISTORY_PAGE.key(layout::position_key(&channel));
        invocation.key(layout::history_key(&channel));
        if let Some(era) = self.era_key() {
            invocation.key(era);
        }
        let (since_offset, since_epoch) = since.map_or((String::new(), ""), |(o, e)| (o.to_string(), e));
        invocation
            .arg(since_offset)
            .arg(since_epoch)
            .arg(limit)
            .arg(if self.confirms() { "1" } else { "0" })
            .arg(self.retention().history_size);
        let history = History::from_reply(self.invoke(&invocation).await?)?;
        history.ok_or_else(|| Error::Reply("the history page script answered as if a user was checked".into()))
    }
}
