//! Unit tests of the room registry and its ordered delivery.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use roomcast_proto::RoomName;

use super::*;
use crate::event::{Emitted, RoomEvent};
use crate::metrics::Metrics;
use crate::outbox::Outgoing;

fn registry() -> Arc<RoomRegistry> {
    RoomRegistry::new(Arc::new(Metrics::new("test")))
}

/// A registered connection; it stays registered while the returned guard lives.
fn conn(registry: &Arc<RoomRegistry>, id: ConnId, user: &str) -> (Arc<Member>, Registration) {
    conn_with_queue(registry, id, user, 1 << 20)
}

fn conn_with_queue(registry: &Arc<RoomRegistry>, id: ConnId, user: &str, queue: usize) -> (Arc<Member>, Registration) {
    let member = Arc::new(Member::new(id, Arc::from(user), queue, Arc::new(Metrics::new("test"))));
    let registration = registry.register(Arc::clone(&member));
    (member, registration)
}

/// Joins in one step at a known position (as the embedded broker does under its lock).
fn join(registry: &RoomRegistry, r: &RoomName, member: &Arc<Member>, floor: u64, epoch: &str) {
    join_then(registry, r, member, floor, epoch, || ());
}

fn join_then(
    registry: &RoomRegistry,
    r: &RoomName,
    member: &Arc<Member>,
    floor: u64,
    epoch: &str,
    then: impl FnOnce(),
) {
    registry.start_join(r, member).unwrap();
    let at = JoinPosition { offset: floor, epoch, recovered: &[] };
    registry.finish_join(r, member.id, at, then).unwrap();
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn frame(offset: u64) -> Bytes {
    Bytes::from(offset.to_string())
}

fn event(r: &RoomName, offset: u64, epoch: &str) -> Arc<RoomEvent> {
    RoomEvent::from_frame(r, offset, Arc::from(epoch), frame(offset), None, Instant::now())
}

fn send(registry: &RoomRegistry, r: &RoomName, offset: u64, epoch: &str) -> Delivered {
    registry.deliver(r, &event(r, offset, epoch))
}

fn held(offset: u64) -> Arc<RoomEvent> {
    event(&room("dialog:1"), offset, "E")
}

/// What was queued for `c`, as text (a reply's bytes, an event's frame).
fn received(c: &Member) -> Vec<String> {
    let text = |item: &Outgoing| {
        let bytes = match item {
            Outgoing::Ready(b) | Outgoing::Binary(b) | Outgoing::Control(b) => b.clone(),
            Outgoing::Event(e) => e.frame.clone(),
            Outgoing::Emit(e) => e.frame.clone(),
        };
        String::from_utf8_lossy(&bytes).into_owned()
    };
    c.outbox.take(Default::default()).frames.iter().map(text).collect()
}

#[test]
fn events_at_or_below_a_floor_or_the_cursor_are_not_delivered_again() {
    let registry = registry();
    let r = room("dialog:1");
    let ((early, _e), (late, _l)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u2"));
    join(&registry, &r, &early, 0, "E");
    assert_eq!(send(&registry, &r, 1, "E").sent, 1);
    // `late` joined having been told offset 3: copies of 2 and 3 still in flight skip it.
    join(&registry, &r, &late, 3, "E");
    assert_eq!(send(&registry, &r, 2, "E").sent, 1);
    assert_eq!(send(&registry, &r, 2, "E").sent, 0, "duplicate");
    assert_eq!(send(&registry, &r, 3, "E").sent, 1);
    assert_eq!(send(&registry, &r, 4, "E").sent, 2);
    assert_eq!(received(&early), ["1", "2", "3", "4"]);
    assert_eq!(received(&late), ["4"]);
}

#[test]
fn a_member_catching_up_gets_its_reply_then_recovered_then_held_events_once() {
    let registry = registry();
    let r = room("dialog:1");
    let ((live, _l), (joining, _j)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u2"));
    join(&registry, &r, &live, 5, "E");
    assert!(registry.start_join(&r, &joining).unwrap().new_member);
    // Arrive while the joining member reads history up to 7: 6 and 7 twice, then 8.
    for offset in [6, 7, 8] {
        send(&registry, &r, offset, "E");
    }
    let recovered = [held(4), held(5), held(6), held(7)];
    let at = JoinPosition { offset: 7, epoch: "E", recovered: &recovered };
    let ((), delivery) =
        registry.finish_join(&r, joining.id, at, || joining.send(Bytes::from("ok"), Instant::now())).unwrap();
    assert!(delivery.evicted.is_empty());
    send(&registry, &r, 9, "E");
    assert_eq!(received(&joining), ["ok", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(received(&live), ["6", "7", "8", "9"]);
}

#[test]
fn a_gap_holds_later_events_until_history_fills_it() {
    let registry = registry();
    let gaps = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&gaps);
    registry.on_gap(Box::new(move |room, cursor| seen.lock().unwrap().push((room.clone(), cursor.offset))));
    let r = room("dialog:1");
    let (a, _a) = conn(&registry, 1, "u1");
    join(&registry, &r, &a, 0, "E");
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
fn a_gap_history_cannot_fill_evicts_the_members_from_both_maps() {
    let registry = registry();
    registry.on_gap(Box::new(|_, _| ()));
    let r = room("dialog:1");
    let (a, _a) = conn(&registry, 1, "u1");
    join(&registry, &r, &a, 0, "E");
    send(&registry, &r, 1, "E");
    send(&registry, &r, 3, "E");
    let delivery = registry.finish_repair(&r, None);
    assert_eq!(delivery.evicted.len(), 1);
    assert_eq!(registry.member_count(&r), 0);
    assert_eq!(registry.room_count(), 0);
    assert!(!registry.is_in(a.id, &r), "the connection's side forgot the room too");
    assert_eq!(registry.rooms_joined(a.id), 0);
    // The connection can join again, and leaving then finds the new membership.
    join(&registry, &r, &a, 3, "E");
    assert!(registry.is_in(a.id, &r));
    assert!(registry.leave(&r, a.id));
    assert!(!registry.leave(&r, a.id));
    assert_eq!(registry.room_count(), 0);
}

#[test]
fn a_new_epoch_evicts_members_positioned_in_the_old_one() {
    let registry = registry();
    let r = room("dialog:1");
    let ((old, _o), (new, _n)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u2"));
    join(&registry, &r, &old, 7, "E");
    join(&registry, &r, &new, 0, "F");
    let delivery = send(&registry, &r, 1, "F");
    assert_eq!(delivery.evicted.len(), 1);
    assert_eq!(delivery.evicted[0].id, 1);
    assert_eq!(received(&new), ["1"]);
}

#[test]
fn a_join_starts_at_the_cursor_and_keeps_what_arrives_until_finished() {
    let registry = registry();
    let r = room("user:u1");
    let ((a, _a), (b, _b)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u1"));
    let start = registry.start_join(&r, &a).unwrap();
    assert!(start.cursor.is_none(), "nothing arrived yet");
    registry.finish_join(&r, a.id, JoinPosition { offset: 0, epoch: "E", recovered: &[] }, || ()).unwrap();
    send(&registry, &r, 1, "E");
    let start = registry.start_join(&r, &b).unwrap();
    assert_eq!(start.cursor.map(|c| c.offset), Some(1));
    send(&registry, &r, 2, "E");
    assert!(received(&b).is_empty(), "held until the join finishes");
    b.send(Bytes::from("connected"), Instant::now());
    registry.finish_join(&r, b.id, JoinPosition { offset: 1, epoch: "E", recovered: &[] }, || ()).unwrap();
    send(&registry, &r, 3, "E");
    assert_eq!(received(&b), ["connected", "2", "3"]);
}

#[test]
fn a_second_join_keeps_one_membership_and_leaving_removes_the_empty_room() {
    let registry = registry();
    let (a, _a) = conn(&registry, 1, "u1");
    join(&registry, &room("dialog:1"), &a, 0, "E");
    assert!(!registry.start_join(&room("dialog:1"), &a).unwrap().new_member);
    assert_eq!(registry.member_count(&room("dialog:1")), 1);
    assert_eq!((registry.room_count(), registry.rooms_joined(a.id)), (1, 1));
    assert!(registry.leave(&room("dialog:1"), a.id));
    assert_eq!(registry.member_count(&room("dialog:1")), 0);
    assert_eq!(registry.room_count(), 0);
}

#[test]
fn dropping_the_registration_leaves_every_room_and_refuses_later_joins() {
    let registry = registry();
    let (a, registration) = conn(&registry, 1, "u1");
    let (b, _b) = conn(&registry, 2, "u2");
    for name in ["user:u1", "org:o1", "dialog:1"] {
        join(&registry, &room(name), &a, 0, "E");
    }
    join(&registry, &room("org:o1"), &b, 0, "E");
    // One join left half done, as a task that panicked mid-join leaves it.
    registry.start_join(&room("dialog:2"), &a).unwrap();
    assert_eq!((registry.room_count(), registry.connection_count()), (4, 2));
    drop(registration);
    assert_eq!(registry.room_count(), 1, "only b's org:o1 is left");
    assert_eq!(registry.members(&room("org:o1")).iter().map(|m| m.id).collect::<Vec<_>>(), [b.id]);
    assert_eq!(registry.connection_count(), 1);
    assert_eq!(registry.rooms_joined(a.id), 0);
    assert!(registry.start_join(&room("dialog:3"), &a).is_err(), "an unregistered connection joins nothing");
    assert_eq!(registry.room_count(), 1);
}

#[test]
fn an_emit_skips_the_emitting_user_and_is_shared_not_copied() {
    let registry = registry();
    let r = room("dialog:1");
    let ((a, _a), (b, _b), (c, _c)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u2"), conn(&registry, 3, "u2"));
    for m in [&a, &b, &c] {
        join(&registry, &r, m, 0, "E");
    }
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    let emit = Emitted::new(&r, "typing:start", &data, "u2", Instant::now());
    assert_eq!(registry.broadcast(&emit), 1);
    let got = a.outbox.take(Default::default());
    assert_eq!(got.frames.len(), 1);
    // The same allocation for every recipient, not a copy.
    assert!(matches!(&got.frames[0], Outgoing::Emit(e) if Arc::ptr_eq(e, &emit)));
    assert_eq!(b.outbox.take(Default::default()).frames.len(), 0);
}

#[test]
fn a_full_member_is_closed_and_the_others_still_receive() {
    let registry = registry();
    let r = room("dialog:1");
    let (slow, _s) = conn_with_queue(&registry, 1, "slow", 10);
    let (fast, _f) = conn(&registry, 2, "fast");
    for m in [&slow, &fast] {
        join(&registry, &r, m, 0, "E");
    }
    for offset in 1..=5 {
        let e = RoomEvent::from_frame(&r, offset, Arc::from("E"), Bytes::from_static(b"123456"), None, Instant::now());
        registry.deliver(&r, &e);
    }
    assert_eq!(slow.outbox.close_reason(), Some(crate::close::CloseReason::SlowConsumer));
    assert_eq!(fast.outbox.take(Default::default()).frames.len(), 5);
}

#[test]
fn join_runs_its_closure_before_later_events() {
    let registry = registry();
    let r = room("dialog:1");
    let (a, _a) = conn(&registry, 1, "u1");
    join_then(&registry, &r, &a, 0, "E", || a.send(Bytes::from_static(b"ok"), Instant::now()));
    send(&registry, &r, 1, "E");
    assert_eq!(received(&a), ["ok", "1"]);
}

#[test]
fn a_member_catching_up_from_behind_gets_events_the_cursor_already_passed() {
    // Found by the property test: one member's position sets the room's cursor ahead of what
    // has arrived, while another member, positioned earlier, still needs those events.
    let registry = registry();
    let r = room("dialog:1");
    let ((ahead, _a), (behind, _b)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u2"));
    registry.start_join(&r, &ahead).unwrap();
    registry.start_join(&r, &behind).unwrap();
    registry.finish_join(&r, ahead.id, JoinPosition { offset: 5, epoch: "E", recovered: &[] }, || ()).unwrap();
    send(&registry, &r, 5, "E");
    send(&registry, &r, 6, "E");
    registry.finish_join(&r, behind.id, JoinPosition { offset: 4, epoch: "E", recovered: &[] }, || ()).unwrap();
    assert_eq!(received(&ahead), ["6"]);
    assert_eq!(received(&behind), ["5", "6"]);
}

#[test]
fn an_aborted_join_keeps_a_positioned_member_and_drops_a_new_one() {
    let registry = registry();
    let r = room("user:u1");
    let ((member, _m), (newcomer, _n)) = (conn(&registry, 1, "u1"), conn(&registry, 2, "u1"));
    join(&registry, &r, &member, 2, "E");
    send(&registry, &r, 3, "E");
    // A second subscribe to the room it is in, whose read then fails.
    assert!(!registry.start_join(&r, &member).unwrap().new_member, "already a member");
    assert!(registry.start_join(&r, &newcomer).unwrap().new_member);
    send(&registry, &r, 4, "E");
    assert_eq!(received(&member), ["3"], "4 is held");

    registry.abort_join(&r, newcomer.id);
    assert!(!registry.is_in(newcomer.id, &r), "a new member has no position to go on from");
    let delivery = registry.abort_join(&r, member.id);
    assert!(delivery.evicted.is_empty());
    assert!(registry.is_in(member.id, &r));
    send(&registry, &r, 5, "E");
    assert_eq!(received(&member), ["4", "5"], "held events after its own position, then live ones");
}
