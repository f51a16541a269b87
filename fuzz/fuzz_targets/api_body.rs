//! The publish API's bodies (`/api/publish`, `/api/members`, `/api/disconnect`) through the
//! gateway's own checks: no input panics, and a body that passes has a valid room, valid user
//! ids, a code the API may send, and nesting within the limit.
//!
//! Input: one byte choosing the endpoint, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_gateway::api::checks;
use roomcast_proto::check_user_id;
use roomcast_proto::json::check_depth;

const DEPTH: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&endpoint, body)) = data.split_first() else { return };
    let passed = match endpoint % 3 {
        0 => checks::publish(body, DEPTH).map(|p| {
            assert!(p.body.exclude_user.as_deref().is_none_or(|u| check_user_id(u).is_ok()));
            assert!(!p.body.event.is_empty() && p.body.event.len() <= checks::MAX_NAME_LEN);
        }),
        1 => checks::members(body, DEPTH).map(|m| {
            assert!(m.body.add.iter().chain(&m.body.remove).all(|u| check_user_id(u).is_ok()));
        }),
        _ => checks::disconnect(body, DEPTH).map(|d| {
            assert!(check_user_id(&d.user).is_ok());
            assert!(d.code == 1000 || (4000..=4999).contains(&d.code));
        }),
    };
    if passed.is_ok() {
        assert!(check_depth(body, DEPTH).is_ok());
        assert_eq!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(&b'{'), "a body that is not an object");
    }
});
