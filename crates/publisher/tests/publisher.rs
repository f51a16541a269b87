//! The publisher against a real redis-server: offsets, epochs, members, the envelope on the
//! channel, and loud errors when Redis is unreachable.

use std::time::Duration;

use prost::Message;
use roomcast_proto::RoomName;
use roomcast_proto::envelope::{Envelope, envelope::Body};
use roomcast_publisher::{Error, Event, Publisher, Retention, Target};
use roomcast_testkit::RedisServer;
use serde_json::json;

#[tokio::test]
async fn offsets_increase_per_room_under_one_epoch() {
    let redis = RedisServer::start();
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let room = RoomName::parse("dialog:1").unwrap();
    let (offset, epoch) = publisher.position(&room).await.unwrap();
    assert_eq!(offset, 0);
    let mut offsets = Vec::new();
    for i in 0..5 {
        let p = publisher.publish(Event::new("dialog:1", "message:new", &json!({"i": i}))).await.unwrap();
        assert_eq!(p.epoch, epoch, "the epoch made at the first read stays");
        assert_eq!(p.id.len(), 32, "an id is made when none is given");
        offsets.push(p.offset);
    }
    assert_eq!(offsets, [1, 2, 3, 4, 5]);
    let other = publisher.publish(Event::new("dialog:2", "x", &json!(null)).id("given")).await.unwrap();
    assert_eq!((other.offset, other.id.as_str()), (1, "given"));
    assert_ne!(other.epoch, epoch, "each room has its own epoch");
    assert_eq!(publisher.position(&room).await.unwrap(), (5, epoch));
}

#[tokio::test]
async fn the_channel_carries_an_envelope_with_offset_and_epoch() {
    let redis = RedisServer::start();
    let publisher = Publisher::connect_with(Target::Redis(redis.url()), "rc:", "backend-1").await.unwrap();
    let mut sub = redis.connection().unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("rc:dialog:7").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let p = publisher
        .publish(Event::raw("dialog:7", "message:new", br#"{"text":"hi"}"#).id("m-7").exclude_user("u1"))
        .await
        .unwrap();
    let payload: Vec<u8> = pubsub.get_message().unwrap().get_payload().unwrap();
    let envelope = Envelope::decode(payload.as_slice()).unwrap();
    assert_eq!((envelope.room.as_str(), envelope.origin.as_str()), ("dialog:7", "backend-1"));
    assert_eq!((envelope.offset, envelope.epoch.as_str()), (p.offset, p.epoch.as_str()));
    let Some(Body::Event(event)) = envelope.body else { panic!("{envelope:?}") };
    assert_eq!((event.event.as_str(), event.id.as_str(), event.exclude_user.as_str()), ("message:new", "m-7", "u1"));
    assert_eq!(&event.data[..], br#"{"text":"hi"}"#);
}

#[tokio::test]
async fn member_changes_count_real_changes() {
    let redis = RedisServer::start();
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let room = RoomName::parse("dialog:3").unwrap();
    assert_eq!(publisher.update_members("dialog:3", &["a", "b"], &[]).await.unwrap(), (2, 0));
    assert_eq!(publisher.update_members("dialog:3", &["a"], &["b", "c"]).await.unwrap(), (0, 1));
    assert!(publisher.is_member(&room, "a").await.unwrap());
    assert!(!publisher.is_member(&room, "b").await.unwrap());
}

#[tokio::test]
async fn bad_input_is_refused_before_redis() {
    let redis = RedisServer::start();
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    let err = publisher.publish(Event::new("dialog 1", "x", &json!(1))).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRoom(_)), "{err}");
    let err = publisher.publish(Event::raw("dialog:1", "x", b"{nope")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)) && !err.is_retryable(), "{err}");
    let err = publisher.publish(Event::new("dialog:1", "", &json!(1))).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let connect = Publisher::connect(Target::Redis(format!("redis://127.0.0.1:{port}")));
    let err = tokio::time::timeout(Duration::from_secs(10), connect).await.expect("fails fast").unwrap_err();
    assert!(err.is_retryable(), "{err}");

    // A publisher whose Redis goes away fails its publishes loudly.
    let mut redis = RedisServer::start();
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    redis.kill();
    let publish = publisher.publish(Event::new("dialog:1", "x", &json!(1)));
    let err = tokio::time::timeout(Duration::from_secs(10), publish).await.expect("fails fast").unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn a_given_id_is_published_once_within_the_window() {
    let redis = RedisServer::start();
    let window = Retention { dedup_window: Duration::from_millis(300), ..Retention::default() };
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap().with_retention(window);
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(publisher.publish(Event::new("dialog:1", "m", &1).id("m-1")).await.unwrap());
    }
    assert_eq!(results.iter().map(|p| (p.offset, p.duplicate)).collect::<Vec<_>>(), [(1, false), (1, true), (1, true)]);
    assert!(results.iter().all(|p| p.epoch == results[0].epoch));
    let room = RoomName::parse("dialog:1").unwrap();
    assert_eq!(publisher.history(&room, Some((0, &results[0].epoch))).await.unwrap().events.len(), 1);
    // Past the window the id is a new message.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = publisher.publish(Event::new("dialog:1", "m", &1).id("m-1")).await.unwrap();
    assert_eq!((again.offset, again.duplicate), (2, false));
}

#[tokio::test]
async fn history_keeps_the_last_events_in_order_and_names_what_it_lost() {
    let redis = RedisServer::start();
    let small = Retention { history_size: 5, ..Retention::default() };
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap().with_retention(small);
    let room = RoomName::parse("dialog:1").unwrap();
    let mut epoch = String::new();
    for i in 0..8 {
        epoch = publisher.publish(Event::new("dialog:1", "m", &json!({"i": i}))).await.unwrap().epoch;
    }
    let history = publisher.history(&room, Some((5, &epoch))).await.unwrap();
    assert_eq!(history.offset, 8);
    assert_eq!(history.events.iter().map(|e| e.offset).collect::<Vec<_>>(), [6, 7, 8]);
    assert!(history.continues_from(5, &epoch));
    let trimmed = publisher.history(&room, Some((2, &epoch))).await.unwrap();
    assert_eq!(trimmed.events.first().map(|e| e.offset), Some(4), "1 to 3 were trimmed");
    assert!(!trimmed.continues_from(2, &epoch));
    // The stream may keep more (it is trimmed by whole nodes), but only the last 5 count.
    let page = publisher.history_page(&room, None, 100).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.offset).collect::<Vec<_>>(), [4, 5, 6, 7, 8]);
    let page = publisher.history_page(&room, Some((2, &epoch)), 100).await.unwrap();
    assert_eq!(page.events.first().map(|e| e.offset), Some(4));
    assert!(!page.continues_from(2, &epoch));
    let other_epoch = publisher.history(&room, Some((5, "elsewhere"))).await.unwrap();
    assert!(other_epoch.events.is_empty() && !other_epoch.continues_from(5, "elsewhere"));
    // Membership is checked in the same step as the read.
    assert!(publisher.history_if_member(&room, None, "u1").await.unwrap().is_none());
    publisher.update_members("dialog:1", &["u1"], &[]).await.unwrap();
    assert_eq!(publisher.history_if_member(&room, None, "u1").await.unwrap().map(|h| h.offset), Some(8));
}

#[tokio::test]
async fn the_first_call_after_a_redis_restart_succeeds() {
    let mut redis = RedisServer::start();
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap();
    publisher.ping().await.unwrap();
    redis.kill();
    redis.restart();
    // The connection died with the old server; the publisher notices on this call and retries.
    let published = publisher.publish(Event::new("dialog:1", "m", &1)).await.unwrap();
    assert_eq!(published.offset, 1);
}

/// Expiries are not refreshed on every publish, yet a room's keys never expire sooner than
/// their ttl after its last event, nor more than an eighth of `history_ttl` later.
#[tokio::test]
async fn a_room_s_keys_live_their_ttl_after_its_last_event_and_at_most_an_eighth_longer() {
    let redis = RedisServer::start();
    let ttl = Duration::from_millis(1600);
    let retention = Retention { history_ttl: ttl, ..Retention::default() };
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap().with_retention(retention);
    let channel = roomcast_publisher::layout::channel("", "dialog:ttl");
    let (history, position) =
        (roomcast_publisher::layout::history_key(&channel), roomcast_publisher::layout::position_key(&channel));
    let mut conn = redis.connection().unwrap();
    let position_ttl = retention.position_ttl().as_millis() as i64;
    let (ttl_ms, eighth) = (ttl.as_millis() as i64, ttl.as_millis() as i64 / 8);
    let mut refreshes = 0;
    let mut last_pttl = i64::MAX;
    // 40 publishes 25 ms apart: a second of traffic, five eighths of the ttl.
    for i in 0..40 {
        let before = std::time::Instant::now();
        publisher.publish(Event::new("dialog:ttl", "m", &i)).await.unwrap();
        let pttl: i64 = redis::cmd("PTTL").arg(&history).query(&mut conn).unwrap();
        let position_pttl: i64 = redis::cmd("PTTL").arg(&position).query(&mut conn).unwrap();
        let since_publish = before.elapsed().as_millis() as i64;
        assert!(
            pttl + since_publish >= ttl_ms,
            "publish {i}: history expires in {pttl} ms, {since_publish} ms after it"
        );
        assert!(pttl <= ttl_ms + eighth, "publish {i}: history ttl {pttl} ms");
        assert!(position_pttl + since_publish >= position_ttl && position_pttl <= position_ttl + eighth);
        if pttl > last_pttl {
            refreshes += 1;
        }
        last_pttl = pttl;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Once every 200 ms (an eighth) over a second, give or take one: not once per publish.
    assert!((3..=7).contains(&refreshes), "{refreshes} refreshes in 40 publishes");
}

/// A history read refreshes the room's position for its ttl (and the eighth a later publish may
/// not refresh), and a stream a read dropped (a room of an older era) gets its expiry back at
/// the next publish, however recent the last refresh was.
#[tokio::test]
async fn expiries_hold_after_a_history_read_and_after_an_era_change() {
    let redis = RedisServer::start();
    let retention = Retention { history_ttl: Duration::from_secs(60), ..Retention::default() };
    let publisher = Publisher::connect(Target::Redis(redis.url())).await.unwrap().with_retention(retention);
    let room = RoomName::parse("dialog:era").unwrap();
    let channel = roomcast_publisher::layout::channel("", "dialog:era");
    let (history, position) =
        (roomcast_publisher::layout::history_key(&channel), roomcast_publisher::layout::position_key(&channel));
    let mut conn = redis.connection().unwrap();
    let pttl = |conn: &mut redis::Connection, key: &str| -> i64 { redis::cmd("PTTL").arg(key).query(conn).unwrap() };
    let position_ttl = retention.position_ttl().as_millis() as i64;

    publisher.publish(Event::new("dialog:era", "m", &1)).await.unwrap();
    publisher.history(&room, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = std::time::Instant::now();
    publisher.publish(Event::new("dialog:era", "m", &2)).await.unwrap();
    let left = pttl(&mut conn, &position) + before.elapsed().as_millis() as i64;
    assert!(left >= position_ttl, "the position expires {left} ms after the publish, under {position_ttl}");

    // A new era: the next read starts a new epoch and drops the stream; the publish after it
    // (well within an eighth of the last refresh) must give the new stream an expiry.
    let _: () = redis::cmd("HSET")
        .arg(roomcast_publisher::layout::era_key(""))
        .arg("id")
        .arg("another")
        .query(&mut conn)
        .unwrap();
    publisher.history(&room, None).await.unwrap();
    let published = publisher.publish(Event::new("dialog:era", "m", &3)).await.unwrap();
    assert_eq!(published.offset, 1, "a new epoch");
    assert!(pttl(&mut conn, &history) > 0, "the new stream has an expiry");
}
