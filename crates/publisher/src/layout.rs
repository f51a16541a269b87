//! Names in Redis: one channel per room, and keys that carry the channel as their hash tag so
//! that a room's keys and its sharded channel live in one Redis Cluster slot.

/// The channel of `room` behind `prefix` (`""` or e.g. `"rc:"`).
pub fn channel(prefix: &str, room: &str) -> String {
    format!("{prefix}{room}")
}

/// The hash holding the room's `offset` and `epoch`.
pub fn position_key(channel: &str) -> String {
    format!("{{{channel}}}:pos")
}

/// The stream holding the room's recent events, with ids `<offset>-0`.
pub fn history_key(channel: &str) -> String {
    format!("{{{channel}}}:history")
}

/// The key remembering that message `id` was published to the room (its offset and epoch).
pub fn message_id_key(channel: &str, id: &str) -> String {
    format!("{{{channel}}}:id:{id}")
}

/// The set of users allowed to subscribe to the room.
pub fn members_key(channel: &str) -> String {
    format!("{{{channel}}}:members")
}

/// The hash of the room's presence: `<user> <node>` → that node's connections of the user.
pub fn presence_key(channel: &str) -> String {
    format!("{{{channel}}}:presence")
}

/// The hash of the room's users present: user → number of nodes with a connection of theirs.
pub fn presence_users_key(channel: &str) -> String {
    format!("{{{channel}}}:presence:users")
}

/// The hash holding the deployment's era (one Redis only; see the crate's `era.rs`).
pub fn era_key(prefix: &str) -> String {
    format!("{prefix}roomcast:era")
}

/// Checks a channel prefix: braces would break the hash tags.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.contains(['{', '}']) || prefix.chars().any(char::is_whitespace) {
        return Err(format!("channel prefix {prefix:?} may not contain braces or spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_channel_as_hash_tag() {
        let ch = channel("rc:", "dialog:42");
        assert_eq!(ch, "rc:dialog:42");
        assert_eq!(position_key(&ch), "{rc:dialog:42}:pos");
        assert_eq!(members_key(&ch), "{rc:dialog:42}:members");
        assert_eq!(history_key(&ch), "{rc:dialog:42}:history");
        assert_eq!(message_id_key(&ch, "m-1"), "{rc:dialog:42}:id:m-1");
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("rc:").is_ok());
    }
}
