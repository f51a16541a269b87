//! The commands that ask about a room rather than change it: `presence` and `presence_stats`
//! (who is there, counting every node), and `ack` (a delivery receipt).

use std::collections::BTreeMap;

use roomcast_proto::RoomName;
use roomcast_proto::frames::{ErrorCode, OkReply, PresenceEntry};

use super::refusal::{Refusal, Reply};
use crate::node::Node;
use crate::rooms::Member;

fn joined_room(node: &Node, member: &Member, room: &str) -> Result<RoomName, Refusal> {
    let room = RoomName::parse(room).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
    if !node.registry.is_in(member.id, &room) {
        return Err(Refusal::new(ErrorCode::Forbidden, format!("not subscribed to {room}")));
    }
    Ok(room)
}

/// Who is in `room` (a presence room the member is in): the users and their connections, or
/// with `stats` only the counts.
pub(super) async fn presence(node: &Node, member: &Member, room: &str, stats: bool) -> Reply {
    let room = joined_room(node, member, room)?;
    if !node.presence.keeps(&room) {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("presence is not kept for {room} (see presence_rooms)"),
        ));
    }
    let users = node.presence.room(&room).await.map_err(|e| {
        let e = crate::broker::BrokerError::from(e);
        tracing::warn!(%room, error = %crate::broker::causes(&e), "presence read failed");
        Refusal::broker(&e)
    })?;
    let mut reply = OkReply { room: Some(room.to_string()), ..OkReply::default() };
    if stats {
        reply.users = Some(users.len() as u64);
        reply.connections = Some(users.values().sum());
    } else {
        let entries: BTreeMap<String, PresenceEntry> =
            users.into_iter().map(|(user, connections)| (user, PresenceEntry { connections })).collect();
        reply.presence = Some(entries);
    }
    Ok(Some(reply))
}

/// The member received `room`'s events up to `offset` (a receipt room it is in).
pub(super) fn ack(node: &Node, member: &Member, room: &str, offset: u64, epoch: Option<&str>) -> Result<(), Refusal> {
    let room = joined_room(node, member, room)?;
    if !node.receipts.covers(&room) {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("receipts are not taken for {room} (see receipt_rooms)"),
        ));
    }
    // What this connection was sent (live, recovered, or told of in its `ok`), in its epoch.
    let Some(delivered) = node.registry.delivered(&room, member.id) else {
        return Err(Refusal::new(ErrorCode::BadRequest, format!("{room} is still being joined")));
    };
    if let Some(epoch) = epoch
        && epoch != &*delivered.epoch
    {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("epoch {epoch:?} is not {room}'s current epoch; its offsets are not this epoch's"),
        ));
    }
    if offset > delivered.offset {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("offset {offset} is past the last event delivered in {room} ({})", delivered.offset),
        ));
    }
    node.receipts.ack(&room, &member.user, offset, &delivered.epoch);
    Ok(())
}
