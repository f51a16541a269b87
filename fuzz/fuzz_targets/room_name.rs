//! Room names and user ids: validation never panics, and what passes keeps the rules (at most
//! 128 bytes of `[A-Za-z0-9_.:@-]`; a valid user id makes a valid `user:` room).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_proto::room::{MAX_ROOM_LEN, USER_PREFIX};
use roomcast_proto::{RoomKind, RoomName, check_user_id};

fn alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(room) = RoomName::parse(text) {
        assert!(!text.is_empty() && text.len() <= MAX_ROOM_LEN && text.chars().all(alphabet));
        match room.kind() {
            RoomKind::User(id) => assert!(!id.is_empty() && text.starts_with(USER_PREFIX)),
            RoomKind::Org(id) => assert!(!id.is_empty()),
            RoomKind::Members => assert!(!text.starts_with(USER_PREFIX) && !text.starts_with("org:")),
        }
        assert_eq!(room.as_str(), text);
    }
    if check_user_id(text).is_ok() {
        let room = RoomName::user(text).expect("a valid user id makes a valid user: room");
        assert_eq!(room.kind(), RoomKind::User(text));
    }
});
