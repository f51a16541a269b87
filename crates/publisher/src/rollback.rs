//! [`Publisher::restart_epoch_below`]: a room whose Redis came back with less than a node
//! delivered of it (a Cluster shard's asynchronous failover, a restart trusted as durable that
//! was not) gets a new epoch from the node that sees it, so that no offset the node delivered is
//! handed out again for another event, and clients offline meanwhile learn it from the epoch.

use std::sync::LazyLock;

use redis::Script;
use roomcast_proto::RoomName;

use crate::ids::new_epoch;
use crate::{Error, Publisher, layout, scripts};

static RESTART_EPOCH: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RESTART_EPOCH));

impl Publisher {
    /// Gives `room` a new epoch (offset 0, history dropped) if it is still in `epoch` with an
    /// offset below `delivered`, the offset a node delivered; compare-and-set, so that of the
    /// nodes that notice, one restarts it. Returns whether this call did.
    pub async fn restart_epoch_below(&self, room: &RoomName, epoch: &str, delivered: u64) -> Result<bool, Error> {
        let channel = layout::channel(self.prefix(), room.as_str());
        let mut invocation = RESTART_EPOCH.key(layout::position_key(&channel));
        invocation.key(layout::history_key(&channel));
        if let Some(era) = self.era_key() {
            invocation.key(era);
        }
        invocation.arg(epoch).arg(delivered).arg(new_epoch());
        let restarted: u8 = self.invoke(&invocation).await?;
        Ok(restarted == 1)
    }
}
