//! [`MemoryState`]: presence and online status on the embedded broker, where this node is the
//! whole deployment. The same state machine as the Redis scripts
//! (`roomcast_publisher::presence`): online, leaving for the grace period, offline.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use roomcast_proto::RoomName;
use roomcast_publisher::presence::{OnlineStatus, RoomChange, UserChange, UserState};

use crate::events::now_ms;

#[derive(Debug)]
struct User {
    connections: u64,
    state: UserState,
    seq: u64,
    last_seen: Option<u64>,
    due: Option<Instant>,
}

/// The one node's view, which is everyone's.
#[derive(Debug, Default)]
pub struct MemoryState {
    users: HashMap<String, User>,
    rooms: HashMap<RoomName, BTreeMap<String, u64>>,
}

impl MemoryState {
    /// Sets the connections of `user`; returns the change and the user's transition number.
    pub fn set_user(&mut self, user: &str, count: u64, grace: Duration) -> (UserChange, u64) {
        let u = self.users.entry(user.to_owned()).or_insert(User {
            connections: 0,
            state: UserState::Offline,
            seq: 0,
            last_seen: None,
            due: None,
        });
        u.connections = count;
        let change = match (count > 0, u.state) {
            (true, UserState::Leaving) => {
                u.state = UserState::Online;
                u.due = None;
                UserChange::None
            }
            (true, UserState::Offline) => {
                u.state = UserState::Online;
                u.seq += 1;
                UserChange::Online
            }
            (false, UserState::Online) => {
                u.state = UserState::Leaving;
                u.last_seen = Some(now_ms());
                u.due = Some(Instant::now() + grace);
                UserChange::Leaving
            }
            _ => UserChange::None,
        };
        (change, u.seq)
    }

    /// Users whose grace period is over: now offline, with their transition number and last
    /// connection time.
    pub fn settle(&mut self) -> Vec<(String, u64, u64)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (name, u) in &mut self.users {
            if u.state == UserState::Leaving && u.due.is_some_and(|due| due <= now) {
                u.state = UserState::Offline;
                u.due = None;
                u.seq += 1;
                out.push((name.clone(), u.seq, u.last_seen.unwrap_or_default()));
            }
        }
        out
    }

    /// Sets the connections of `user` in `room`.
    pub fn set_room(&mut self, room: &RoomName, user: &str, count: u64) -> RoomChange {
        let present = self.rooms.entry(room.clone()).or_default();
        let before = present.get(user).copied().unwrap_or(0);
        if count > 0 {
            present.insert(user.to_owned(), count);
        } else {
            present.remove(user);
        }
        if present.is_empty() {
            self.rooms.remove(room);
        }
        match (before > 0, count > 0) {
            (false, true) => RoomChange::Joined,
            (true, false) => RoomChange::Left,
            _ => RoomChange::None,
        }
    }

    /// The users present in `room` and their connections.
    pub fn presence(&self, room: &RoomName) -> BTreeMap<String, u64> {
        self.rooms.get(room).cloned().unwrap_or_default()
    }

    /// The online status of `users`.
    pub fn online(&self, users: &[String]) -> Vec<OnlineStatus> {
        users
            .iter()
            .map(|name| match self.users.get(name) {
                Some(u) => OnlineStatus {
                    user: name.clone(),
                    connections: u.connections,
                    state: u.state,
                    last_seen_ms: if u.connections > 0 { None } else { u.last_seen },
                },
                None => {
                    OnlineStatus { user: name.clone(), connections: 0, state: UserState::Offline, last_seen_ms: None }
                }
            })
            .collect()
    }

    /// Forgets users offline with no record worth keeping (bounded memory on a long-lived node).
    pub fn prune(&mut self, max_users: usize) {
        if self.users.len() > max_users {
            self.users.retain(|_, u| u.state != UserState::Offline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_goes_offline_once_after_the_grace_and_not_at_all_if_back_within_it() {
        let mut s = MemoryState::default();
        assert_eq!(s.set_user("u1", 1, Duration::ZERO).0, UserChange::Online);
        assert_eq!(s.set_user("u1", 0, Duration::from_secs(60)).0, UserChange::Leaving);
        assert!(s.settle().is_empty(), "inside the grace");
        assert_eq!(s.set_user("u1", 1, Duration::ZERO).0, UserChange::None, "back within the grace: no flap");
        assert_eq!(s.set_user("u1", 0, Duration::ZERO).0, UserChange::Leaving);
        let settled = s.settle();
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].1, 2, "transition numbers: online 1, offline 2");
        assert!(s.settle().is_empty(), "once");
        assert_eq!(s.online(&["u1".into()])[0].state, UserState::Offline);
    }

    #[test]
    fn room_presence_changes_on_first_and_last_connection() {
        let mut s = MemoryState::default();
        let room = RoomName::parse("dialog:1").unwrap();
        assert_eq!(s.set_room(&room, "u1", 1), RoomChange::Joined);
        assert_eq!(s.set_room(&room, "u1", 2), RoomChange::None);
        assert_eq!(s.presence(&room).get("u1"), Some(&2));
        assert_eq!(s.set_room(&room, "u1", 0), RoomChange::Left);
        assert!(s.presence(&room).is_empty());
    }
}
