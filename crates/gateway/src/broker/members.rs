//! [`MemberCache`]: recent positive answers of the Redis member registry.
//!
//! Only "is a member" answers are cached, so a user added a moment ago can subscribe at once.
//! A removal published through Redis clears the entries of that room on every node that holds
//! the room; a node that holds none of the room's members may keep answering "member" for up
//! to [`MEMBER_CACHE_TTL`] after a removal. That is the bound on staleness.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a positive answer is trusted.
pub const MEMBER_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; past it the cache starts over rather than grow.
const MAX_ENTRIES: usize = 100_000;

/// Recently confirmed (room, user) memberships.
#[derive(Debug, Default)]
pub struct MemberCache {
    // std mutex: lookups and inserts only, never across `.await`.
    entries: Mutex<HashMap<(String, String), Instant>>,
}

impl MemberCache {
    /// Whether `user` was confirmed a member of `room` within the TTL.
    pub fn is_member(&self, room: &str, user: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&(room.to_owned(), user.to_owned())).is_some_and(|at| at.elapsed() < MEMBER_CACHE_TTL)
    }

    /// Records that Redis confirmed the membership.
    pub fn confirm(&self, room: &str, user: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((room.to_owned(), user.to_owned()), Instant::now());
    }

    /// Forgets memberships a removal ended.
    pub fn forget(&self, room: &str, users: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for user in users {
            entries.remove(&(room.to_owned(), user.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_members_are_remembered_until_removed() {
        let cache = MemberCache::default();
        assert!(!cache.is_member("dialog:1", "u1"));
        cache.confirm("dialog:1", "u1");
        assert!(cache.is_member("dialog:1", "u1"));
        assert!(!cache.is_member("dialog:1", "u2"));
        cache.forget("dialog:1", &["u1".to_owned()]);
        assert!(!cache.is_member("dialog:1", "u1"));
    }
}
