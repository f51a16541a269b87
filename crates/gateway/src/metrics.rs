//! Every metric the node exports, named and described in one place.
//!
//! Labels come only from bounded sets ([`CloseReason`](crate::close::CloseReason) labels,
//! command names), never from room, user or connection ids. Histograms have explicit buckets:
//! without them the Prometheus exporter renders summaries.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open WebSocket connections.
pub const CONNECTIONS_OPEN: &str = "roomcast_connections_open";
/// Connections authenticated and opened.
pub const CONNECTIONS_OPENED: &str = "roomcast_connections_opened_total";
/// Connections closed, by `reason`.
pub const CONNECTIONS_CLOSED: &str = "roomcast_connections_closed_total";
/// Tokens refused at connect or refresh, by `reason`.
pub const AUTH_FAILURES: &str = "roomcast_auth_failures_total";
/// Rooms with at least one local member.
pub const ROOMS: &str = "roomcast_rooms";
/// Local memberships (connection, room).
pub const SUBSCRIPTIONS: &str = "roomcast_subscriptions";
/// Events accepted by this node's publish API.
pub const EVENTS_PUBLISHED: &str = "roomcast_events_published_total";
/// Events this node fanned out to its members, by `kind` (`event`, `emit`).
pub const EVENTS_FANNED_OUT: &str = "roomcast_events_fanned_out_total";
/// Frames queued to members by fan-out.
pub const DELIVERIES: &str = "roomcast_deliveries_total";
/// WebSocket frames written to sockets.
pub const FRAMES_SENT: &str = "roomcast_frames_sent_total";
/// Bytes written to sockets.
pub const BYTES_SENT: &str = "roomcast_bytes_sent_total";
/// Connections closed because their send queue overflowed.
pub const SLOW_CONSUMER_CLOSES: &str = "roomcast_slow_consumer_closes_total";
/// Time from an event's arrival at the node to its frame being written to a socket.
pub const FANOUT_LATENCY: &str = "roomcast_fanout_latency_seconds";
/// Client commands received, by `command`.
pub const COMMANDS: &str = "roomcast_commands_total";
/// Counter: events recovered from history, by why (`since`: a client's subscribe, `gap`: the node's repair).
pub const EVENTS_RECOVERED: &str = "roomcast_events_recovered_total";
/// Counter: gaps the node found in a room's offsets (or assumed after a lost subscription), by outcome.
pub const GAP_REPAIRS: &str = "roomcast_gap_repairs_total";
/// Counter: members told `left: resubscribe` because continuity could not be kept.
pub const RESUBSCRIBES: &str = "roomcast_resubscribes_total";
/// 1 while the node's broker is ready (in Redis mode: its subscriber connection is up), else 0.
pub const BROKER_UP: &str = "roomcast_broker_up";

/// Every metric above, for dashboards and alerts to be checked against.
pub const ALL: &[&str] = &[
    CONNECTIONS_OPEN,
    CONNECTIONS_OPENED,
    CONNECTIONS_CLOSED,
    AUTH_FAILURES,
    ROOMS,
    SUBSCRIPTIONS,
    EVENTS_PUBLISHED,
    EVENTS_FANNED_OUT,
    DELIVERIES,
    FRAMES_SENT,
    BYTES_SENT,
    SLOW_CONSUMER_CLOSES,
    FANOUT_LATENCY,
    COMMANDS,
    EVENTS_RECOVERED,
    GAP_REPAIRS,
    RESUBSCRIBES,
    BROKER_UP,
];

/// Buckets of the fan-out latency histogram, in seconds.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// How often histogram and summary storage is compacted.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder once and returns its handle.
///
/// Every series carries `node="<node_id>"` of the first caller. Later calls (several
/// in-process servers in one test binary) share the same recorder.
pub fn install(node_id: &str) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .add_global_label("node", node_id)
                .set_buckets_for_metric(Matcher::Full(FANOUT_LATENCY.to_owned()), LATENCY_BUCKETS)
                .expect("latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Runs histogram upkeep forever; spawn it once per server.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    describe_gauge!(CONNECTIONS_OPEN, "Open WebSocket connections.");
    describe_counter!(CONNECTIONS_OPENED, "Connections authenticated and opened.");
    describe_counter!(CONNECTIONS_CLOSED, "Connections closed, by reason.");
    describe_counter!(AUTH_FAILURES, "Tokens refused at connect or refresh, by reason.");
    describe_gauge!(ROOMS, "Rooms with at least one local member.");
    describe_gauge!(SUBSCRIPTIONS, "Local memberships (connection, room).");
    describe_counter!(EVENTS_PUBLISHED, "Events accepted by this node's publish API.");
    describe_counter!(EVENTS_FANNED_OUT, "Events fanned out to local members, by kind.");
    describe_counter!(DELIVERIES, "Frames queued to members by fan-out.");
    describe_counter!(FRAMES_SENT, "WebSocket frames written to sockets.");
    describe_counter!(BYTES_SENT, Unit::Bytes, "Bytes written to sockets.");
    describe_counter!(SLOW_CONSUMER_CLOSES, "Connections closed with 4008 because their send queue overflowed.");
    describe_histogram!(FANOUT_LATENCY, Unit::Seconds, "Event arrival at the node to frame written to the socket.");
    describe_counter!(COMMANDS, "Client commands received, by command.");
    describe_counter!(EVENTS_RECOVERED, "Events delivered from history, by why (since, gap).");
    describe_counter!(GAP_REPAIRS, "Room gaps repaired from history, by outcome (repaired, failed).");
    describe_counter!(RESUBSCRIBES, "Members told left: resubscribe because continuity could not be kept.");
    describe_gauge!(BROKER_UP, "1 while the broker (Redis) connection is up, else 0.");
}

/// The broker's readiness, sampled when `/metrics` is scraped.
pub fn broker_up(ready: bool) {
    gauge!(BROKER_UP).set(if ready { 1.0 } else { 0.0 });
}

/// A connection was authenticated.
pub fn connection_opened() {
    counter!(CONNECTIONS_OPENED).increment(1);
    gauge!(CONNECTIONS_OPEN).increment(1.0);
}

/// An authenticated connection ended for `reason`.
pub fn connection_closed(reason: &'static str) {
    gauge!(CONNECTIONS_OPEN).decrement(1.0);
    connection_refused(reason);
}

/// A connection ended before it was authenticated (it was never counted as open).
pub fn connection_refused(reason: &'static str) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
}

/// A token was refused.
pub fn auth_failed(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// A membership was added; `new_room` when it was the room's first member.
pub fn subscription_added(new_room: bool) {
    gauge!(SUBSCRIPTIONS).increment(1.0);
    if new_room {
        gauge!(ROOMS).increment(1.0);
    }
}

/// A membership was removed.
pub fn subscription_removed() {
    gauge!(SUBSCRIPTIONS).decrement(1.0);
}

/// Members were told `left: resubscribe` because continuity could not be kept.
pub fn resubscribe_sent(members: usize) {
    counter!(RESUBSCRIBES).increment(members as u64);
}

/// Events were delivered from history (`why`: `since` or `gap`).
pub fn events_recovered(why: &'static str, events: usize) {
    counter!(EVENTS_RECOVERED, "why" => why).increment(events as u64);
}

/// A gap repair ended (`outcome`: `repaired` or `failed`).
pub fn gap_repair(outcome: &'static str) {
    counter!(GAP_REPAIRS, "outcome" => outcome).increment(1);
}

/// A room lost its last local member.
pub fn room_removed() {
    gauge!(ROOMS).decrement(1.0);
}

/// The publish API accepted an event.
pub fn event_published() {
    counter!(EVENTS_PUBLISHED).increment(1);
}

/// An event of `kind` was fanned out to `deliveries` local members.
pub fn event_fanned_out(kind: &'static str, deliveries: usize) {
    counter!(EVENTS_FANNED_OUT, "kind" => kind).increment(1);
    counter!(DELIVERIES).increment(deliveries as u64);
}

/// A writer flushed `frames` frames of `bytes` bytes; the oldest had waited `latency`.
pub fn batch_written(frames: usize, bytes: usize, latency: Option<Duration>) {
    counter!(FRAMES_SENT).increment(frames as u64);
    counter!(BYTES_SENT).increment(bytes as u64);
    if let Some(latency) = latency {
        histogram!(FANOUT_LATENCY).record(latency.as_secs_f64());
    }
}

/// A connection was closed as a slow consumer.
pub fn slow_consumer_closed() {
    counter!(SLOW_CONSUMER_CLOSES).increment(1);
}

/// A client command arrived.
pub fn command(name: &'static str) {
    counter!(COMMANDS, "command" => name).increment(1);
}
