//! Unit tests of the room registry and its ordered delivery.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;

use super::*;
use crate::connection::handle::{ConnId, ConnectionHandle};

fn conn(id: ConnId, user: &str) -> Arc<ConnectionHandle> {
    Arc::new(ConnectionHandle::new(id, Arc::from(user), 1 << 20))
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn frame(offset: u64) -> Bytes {
    Bytes::from(offset.to_string())
}

fn send(registry: &RoomRegistry, r: &RoomName, offset: u64, epoch: &str) -> Delivery {
    let frame = frame(offset);
    registry.broadcast_event(r, EventRef { offset, epoch, frame: &frame, exclude_user: None, received: Instant::now() })
}

fn held(offset: u64) -> HeldEvent {
    HeldEvent { offset, epoch: Arc::from("E"), frame: frame(offset), exclude_user: None, received: Instant::now() }
}

fn received(c: &ConnectionHandle) -> Vec<String> {
    c.outbox.take(Default::default()).frames.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

#[test]
fn events_at_or_below_a_floor_or_the_cursor_are_not_delivered_again() {
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let (early, late) = (conn(1, "u1"), conn(2, "u2"));
    let _a = registry.join_at(&r, &early, 0, "E", || ()).0.unwrap();
    assert_eq!(send(&registry, &r, 1, "E").sent, 1);
    // `late` joined having been told offset 3: copies of 2 and 3 still in flight skip it.
    let _b = registry.join_at(&r, &late, 3, "E", || ()).0.unwrap();
    assert_eq!(send(&registry, &r, 2, "E").sent, 1);
    assert_eq!(send(&registry, &r, 2, "E").sent, 0, "duplicate");
    assert_eq!(send(&registry, &r, 3, "E").sent, 1);
    assert_eq!(send(&registry, &r, 4, "E").sent, 2);
    assert_eq!(received(&early), ["1", "2", "3", "4"]);
    assert_eq!(received(&late), ["4"]);
}

#[test]
fn a_member_catching_up_gets_its_reply_then_recovered_then_held_events_once() {
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let (live, joining) = (conn(1, "u1"), conn(2, "u2"));
    let _a = registry.join_at(&r, &live, 5, "E", || ()).0.unwrap();
    let _b = registry.begin_catch_up(&r, &joining).unwrap();
    // Arrive while the joining member reads history up to 7: 6 and 7 twice, then 8.
    for offset in [6, 7, 8] {
        send(&registry, &r, offset, "E");
    }
    let recovered = [held(4), held(5), held(6), held(7)];
    let catch_up = CatchUp { offset: 7, epoch: "E", recovered: &recovered };
    let ((), delivery) =
        registry.finish_catch_up(&r, &joining, catch_up, || joining.send(Bytes::from("ok"), Instant::now())).unwrap();
    assert!(delivery.evicted.is_empty());
    send(&registry, &r, 9, "E");
    assert_eq!(received(&joining), ["ok", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(received(&live), ["6", "7", "8", "9"]);
}

#[test]
fn a_gap_holds_later_events_until_history_fills_it() {
    let registry = RoomRegistry::new();
    let gaps = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&gaps);
    registry.on_gap(Box::new(move |room, cursor| seen.lock().unwrap().push((room.clone(), cursor.offset))));
    let r = room("dialog:1");
    let a = conn(1, "u1");
    let _m = registry.join_at(&r, &a, 0, "E", || ()).0.unwrap();
    send(&registry, &r, 1, "E");
    let gap = send(&registry, &r, 4, "E");
    assert_eq!(gap.gap.map(|c| c.offset), Some(1));
    assert_eq!(*gaps.lock().unwrap(), [(r.clone(), 1)]);
    send(&registry, &r, 5, "E");
    assert_eq!(received(&a), ["1"], "nothing after the gap before the repair");
    let history = [held(2), held(3), held(4)];
    registry.finish_repair(&r, Some(&history));
    send(&registry, &r, 6, "E");
    assert_eq!(received(&a), ["2", "3", "4", "5", "6"]);
}

#[test]
fn a_gap_history_cannot_fill_evicts_the_members() {
    let registry = RoomRegistry::new();
    registry.on_gap(Box::new(|_, _| ()));
    let r = room("dialog:1");
    let a = conn(1, "u1");
    a.add_membership(registry.join_at(&r, &a, 0, "E", || ()).0.unwrap());
    send(&registry, &r, 1, "E");
    send(&registry, &r, 3, "E");
    let delivery = registry.finish_repair(&r, None);
    assert_eq!(delivery.evicted.len(), 1);
    assert_eq!(registry.member_count(&r), 0);
    assert_eq!(registry.room_count(), 0);
    // The stale guard on the connection must not touch a later membership.
    let again = registry.join_at(&r, &a, 3, "E", || ()).0.unwrap();
    assert!(a.leave(&r), "the evicted guard is still on the connection until dropped");
    assert_eq!(registry.member_count(&r), 1, "dropping the stale guard left the new membership alone");
    drop(again);
    assert_eq!(registry.member_count(&r), 0);
}

#[test]
fn a_new_epoch_evicts_members_positioned_in_the_old_one() {
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let (old, new) = (conn(1, "u1"), conn(2, "u2"));
    let _a = registry.join_at(&r, &old, 7, "E", || ()).0.unwrap();
    let _b = registry.join_at(&r, &new, 0, "F", || ()).0.unwrap();
    let delivery = send(&registry, &r, 1, "F");
    assert_eq!(delivery.evicted.len(), 1);
    assert_eq!(delivery.evicted[0].id, 1);
    assert_eq!(received(&new), ["1"]);
}

#[test]
fn a_hold_starts_at_the_cursor_and_keeps_what_arrives_until_released() {
    let registry = RoomRegistry::new();
    let r = room("user:u1");
    let (a, b) = (conn(1, "u1"), conn(2, "u1"));
    let (_a, cursor) = registry.hold(&r, &a);
    assert!(cursor.is_none(), "nothing arrived yet");
    registry.finish_catch_up(&r, &a, CatchUp { offset: 0, epoch: "E", recovered: &[] }, || ()).unwrap();
    send(&registry, &r, 1, "E");
    let (_b, cursor) = registry.hold(&r, &b);
    assert_eq!(cursor.map(|c| c.offset), Some(1));
    send(&registry, &r, 2, "E");
    assert!(received(&b).is_empty(), "held until released");
    b.send(Bytes::from("connected"), Instant::now());
    registry.finish_catch_up(&r, &b, CatchUp { offset: 1, epoch: "E", recovered: &[] }, || ()).unwrap();
    send(&registry, &r, 3, "E");
    assert_eq!(received(&b), ["connected", "2", "3"]);
}

#[test]
fn dropping_the_membership_leaves_and_removes_the_empty_room() {
    let registry = RoomRegistry::new();
    let a = conn(1, "u1");
    let (m, ()) = registry.join_at(&room("dialog:1"), &a, 0, "E", || ());
    let (again, ()) = registry.join_at(&room("dialog:1"), &a, 0, "E", || ());
    assert!(again.is_none(), "a second join must not hand out a second guard");
    assert_eq!(registry.member_count(&room("dialog:1")), 1);
    assert_eq!(registry.room_count(), 1);
    drop(m);
    assert_eq!(registry.member_count(&room("dialog:1")), 0);
    assert_eq!(registry.room_count(), 0);
}

#[test]
fn leave_all_on_the_handle_releases_every_room() {
    let registry = RoomRegistry::new();
    let a = conn(1, "u1");
    for name in ["user:u1", "org:o1", "dialog:1"] {
        let (m, ()) = registry.join_at(&room(name), &a, 0, "E", || ());
        a.add_membership(m.unwrap());
    }
    assert_eq!(registry.room_count(), 3);
    assert!(a.leave(&room("org:o1")));
    assert!(!a.leave(&room("org:o1")));
    assert_eq!(registry.room_count(), 2);
    a.leave_all();
    assert_eq!(registry.room_count(), 0);
    assert_eq!(a.room_count(), 0);
}

#[test]
fn broadcast_skips_the_excluded_user_and_shares_the_bytes() {
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let (a, b, c) = (conn(1, "u1"), conn(2, "u2"), conn(3, "u2"));
    let _m: Vec<_> = [&a, &b, &c].iter().map(|h| registry.join_at(&r, h, 0, "E", || ()).0.unwrap()).collect();
    let frame = Bytes::from_static(b"event");
    assert_eq!(registry.broadcast(&r, &frame, Instant::now(), Some("u2")), 1);
    assert_eq!(registry.broadcast(&r, &frame, Instant::now(), None), 3);
    let got = a.outbox.take(Default::default());
    assert_eq!(got.frames.len(), 2);
    // Same allocation, not a copy.
    assert_eq!(got.frames[0].as_ptr(), frame.as_ptr());
    assert_eq!(b.outbox.take(Default::default()).frames.len(), 1);
}

#[test]
fn a_full_member_is_closed_and_the_others_still_receive() {
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let slow = Arc::new(ConnectionHandle::new(1, Arc::from("slow"), 10));
    let fast = conn(2, "fast");
    let _m: Vec<_> = [&slow, &fast].iter().map(|h| registry.join_at(&r, h, 0, "E", || ()).0.unwrap()).collect();
    for offset in 1..=5 {
        let frame = Bytes::from_static(b"123456");
        let e = EventRef { offset, epoch: "E", frame: &frame, exclude_user: None, received: Instant::now() };
        registry.broadcast_event(&r, e);
    }
    assert_eq!(slow.outbox.close_reason(), Some(crate::close::CloseReason::SlowConsumer));
    assert_eq!(fast.outbox.take(Default::default()).frames.len(), 5);
}

#[test]
fn join_runs_its_closure_before_later_events() {
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let a = conn(1, "u1");
    let (_m, ()) = registry.join_at(&r, &a, 0, "E", || a.send(Bytes::from_static(b"ok"), Instant::now()));
    send(&registry, &r, 1, "E");
    assert_eq!(received(&a), ["ok", "1"]);
}

#[test]
fn a_member_catching_up_from_behind_gets_events_the_cursor_already_passed() {
    // Found by the property test: one member's position sets the room's cursor ahead of what
    // has arrived, while another member, positioned earlier, still needs those events.
    let registry = RoomRegistry::new();
    let r = room("dialog:1");
    let (ahead, behind) = (conn(1, "u1"), conn(2, "u2"));
    let _a = registry.begin_catch_up(&r, &ahead).unwrap();
    let _b = registry.begin_catch_up(&r, &behind).unwrap();
    let none = CatchUp { offset: 5, epoch: "E", recovered: &[] };
    registry.finish_catch_up(&r, &ahead, none, || ()).unwrap();
    send(&registry, &r, 5, "E");
    send(&registry, &r, 6, "E");
    registry.finish_catch_up(&r, &behind, CatchUp { offset: 4, epoch: "E", recovered: &[] }, || ()).unwrap();
    assert_eq!(received(&ahead), ["6"]);
    assert_eq!(received(&behind), ["5", "6"]);
}

#[test]
fn an_aborted_catch_up_keeps_a_positioned_member_and_drops_a_new_one() {
    let registry = RoomRegistry::new();
    let r = room("user:u1");
    let (member, newcomer) = (conn(1, "u1"), conn(2, "u1"));
    let _a = registry.join_at(&r, &member, 2, "E", || ()).0.unwrap();
    send(&registry, &r, 3, "E");
    // A second subscribe to the room it is in, whose read then fails.
    assert!(registry.begin_catch_up(&r, &member).is_none(), "already a member");
    let _b = registry.begin_catch_up(&r, &newcomer).unwrap();
    send(&registry, &r, 4, "E");
    assert_eq!(received(&member), ["3"], "4 is held");

    assert!(registry.abort_catch_up(&r, &newcomer).is_none(), "a new member has no position to go on from");
    let delivery = registry.abort_catch_up(&r, &member).expect("the member goes on");
    assert!(delivery.evicted.is_empty());
    send(&registry, &r, 5, "E");
    assert_eq!(received(&member), ["4", "5"], "held events after its own position, then live ones");
}
