//! [`Metrics`]: every metric a node exports, named, described and registered in one place.
//!
//! Each node owns its own Prometheus recorder, so several nodes can run in one process (the
//! integration tests do) without sharing counters. Every series is registered when the node
//! starts, for every value of its label's bounded set ([`CloseReason`] labels, auth failure
//! reasons, command names, outcomes), so `/metrics` shows each one at 0 from the first scrape,
//! as Prometheus' instrumentation guidelines ask: a dashboard or an alert on a rate never meets
//! a series that does not exist yet. Labels never carry room, user or connection ids.
//! Histograms have explicit buckets; without them the exporter renders summaries.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::close::CloseReason;

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
/// Events recovered from history, by `why` (`since`: a client's subscribe, `gap`: the node's repair).
pub const EVENTS_RECOVERED: &str = "roomcast_events_recovered_total";
/// Gaps the node found in a room's offsets (or assumed after a lost subscription), by `outcome`.
pub const GAP_REPAIRS: &str = "roomcast_gap_repairs_total";
/// Members told `left: resubscribe` because continuity could not be kept.
pub const RESUBSCRIBES: &str = "roomcast_resubscribes_total";
/// 1 while the node's broker is ready (in Redis mode: its subscriber connection is up), else 0.
pub const BROKER_UP: &str = "roomcast_broker_up";
/// Events for the backend this node wrote to its sinks, by `type`.
pub const BACKEND_EVENTS: &str = "roomcast_backend_events_total";
/// Events for the backend dropped because a bounded queue was full, by `queue`.
pub const BACKEND_EVENTS_DROPPED: &str = "roomcast_backend_events_dropped_total";
/// Webhook POSTs, by `result` (`ok`, `failed`).
pub const WEBHOOK_POSTS: &str = "roomcast_webhook_posts_total";
/// Events waiting for the webhook (on the node relaying them).
pub const WEBHOOK_BACKLOG: &str = "roomcast_webhook_backlog";

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
    BACKEND_EVENTS,
    BACKEND_EVENTS_DROPPED,
    WEBHOOK_POSTS,
    WEBHOOK_BACKLOG,
];

/// Values of `roomcast_auth_failures_total{reason}`.
pub const AUTH_FAILURE_REASONS: &[&str] = &["expired", "invalid", "refresh_other_identity"];
/// Values of `roomcast_commands_total{command}`; `invalid` counts frames that did not parse.
pub const COMMAND_NAMES: &[&str] =
    &["auth", "subscribe", "unsubscribe", "emit", "refresh", "ping", "presence", "presence_stats", "ack", "invalid"];
/// Values of `roomcast_backend_events_total{type}`.
pub const BACKEND_EVENT_TYPES: &[&str] =
    &["user_online", "user_offline", "subscribed", "unsubscribed", "emit", "delivered"];
/// Values of `roomcast_backend_events_dropped_total{queue}`.
pub const BACKEND_EVENT_QUEUES: &[&str] = &["node", "webhook"];
/// Values of `roomcast_webhook_posts_total{result}`.
pub const WEBHOOK_RESULTS: &[&str] = &["ok", "failed"];
/// Values of `roomcast_events_fanned_out_total{kind}`.
pub const FANOUT_KINDS: &[&str] = &["event", "emit"];
/// Values of `roomcast_events_recovered_total{why}`.
pub const RECOVERY_REASONS: &[&str] = &["since", "gap"];
/// Values of `roomcast_gap_repairs_total{outcome}`.
pub const REPAIR_OUTCOMES: &[&str] = &["repaired", "failed"];

/// Buckets of the fan-out latency histogram, in seconds.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// How often histogram storage is compacted.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// One counter per value of a bounded label set.
#[derive(Debug)]
struct Labelled {
    counters: Vec<(&'static str, Counter)>,
}

impl Labelled {
    /// The counter of `value`; a value outside the set (a bug) goes to the first one rather
    /// than creating an unbounded series.
    fn get(&self, value: &str) -> &Counter {
        let found = self.counters.iter().find(|(v, _)| *v == value);
        debug_assert!(found.is_some(), "{value} is not a registered label value");
        &found.unwrap_or(&self.counters[0]).1
    }
}

/// A node's metrics: its recorder's handle and every series, registered at start.
#[derive(Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
    connections_open: Gauge,
    connections_opened: Counter,
    connections_closed: Labelled,
    auth_failures: Labelled,
    rooms: Gauge,
    subscriptions: Gauge,
    events_published: Counter,
    events_fanned_out: Labelled,
    deliveries: Counter,
    frames_sent: Counter,
    bytes_sent: Counter,
    slow_consumer_closes: Counter,
    fanout_latency: Histogram,
    commands: Labelled,
    events_recovered: Labelled,
    gap_repairs: Labelled,
    resubscribes: Counter,
    broker_up: Gauge,
    backend_events: Labelled,
    backend_events_dropped: Labelled,
    webhook_posts: Labelled,
    webhook_backlog: Gauge,
}

/// Registers and describes series on one recorder.
struct Registrar {
    recorder: PrometheusRecorder,
}

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

impl Registrar {
    fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        self.recorder.register_counter(&Key::from_static_name(name), &METADATA)
    }

    fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.recorder.describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
        self.recorder.register_gauge(&Key::from_static_name(name), &METADATA)
    }

    fn labelled(
        &self,
        name: &'static str,
        label: &'static str,
        values: &[&'static str],
        help: &'static str,
    ) -> Labelled {
        self.recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        let counters = values
            .iter()
            .map(|&value| {
                let key = Key::from_parts(name, vec![Label::new(label, value)]);
                (value, self.recorder.register_counter(&key, &METADATA))
            })
            .collect();
        Labelled { counters }
    }
}

impl Metrics {
    /// A recorder for the node `node_id` (every series carries `node="<node_id>"`), with every
    /// series registered at 0.
    pub fn new(node_id: &str) -> Self {
        let recorder = PrometheusBuilder::new()
            .add_global_label("node", node_id)
            .set_buckets_for_metric(Matcher::Full(FANOUT_LATENCY.to_owned()), LATENCY_BUCKETS)
            .expect("latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let r = Registrar { recorder };
        r.recorder.describe_histogram(
            KeyName::from_const_str(FANOUT_LATENCY),
            Some(Unit::Seconds),
            SharedString::const_str("Event arrival at the node to frame written to the socket."),
        );
        r.recorder.describe_counter(
            KeyName::from_const_str(BYTES_SENT),
            Some(Unit::Bytes),
            SharedString::const_str("Bytes written to sockets."),
        );
        let metrics = Self {
            connections_open: r.gauge(CONNECTIONS_OPEN, "Open WebSocket connections."),
            connections_opened: r.counter(CONNECTIONS_OPENED, "Connections authenticated and opened."),
            connections_closed: r.labelled(
                CONNECTIONS_CLOSED,
                "reason",
                CloseReason::LABELS,
                "Connections closed, by reason.",
            ),
            auth_failures: r.labelled(
                AUTH_FAILURES,
                "reason",
                AUTH_FAILURE_REASONS,
                "Tokens refused at connect or refresh, by reason.",
            ),
            rooms: r.gauge(ROOMS, "Rooms with at least one local member."),
            subscriptions: r.gauge(SUBSCRIPTIONS, "Local memberships (connection, room)."),
            events_published: r.counter(EVENTS_PUBLISHED, "Events accepted by this node's publish API."),
            events_fanned_out: r.labelled(
                EVENTS_FANNED_OUT,
                "kind",
                FANOUT_KINDS,
                "Events fanned out to local members, by kind.",
            ),
            deliveries: r.counter(DELIVERIES, "Frames queued to members by fan-out."),
            frames_sent: r.counter(FRAMES_SENT, "WebSocket frames written to sockets."),
            bytes_sent: r.recorder.register_counter(&Key::from_static_name(BYTES_SENT), &METADATA),
            slow_consumer_closes: r
                .counter(SLOW_CONSUMER_CLOSES, "Connections closed with 4008 because their send queue overflowed."),
            fanout_latency: r.recorder.register_histogram(&Key::from_static_name(FANOUT_LATENCY), &METADATA),
            commands: r.labelled(COMMANDS, "command", COMMAND_NAMES, "Client commands received, by command."),
            events_recovered: r.labelled(
                EVENTS_RECOVERED,
                "why",
                RECOVERY_REASONS,
                "Events delivered from history, by why (since, gap).",
            ),
            gap_repairs: r.labelled(
                GAP_REPAIRS,
                "outcome",
                REPAIR_OUTCOMES,
                "Room gaps repaired from history, by outcome (repaired, failed).",
            ),
            resubscribes: r
                .counter(RESUBSCRIBES, "Members told left: resubscribe because continuity could not be kept."),
            broker_up: r.gauge(BROKER_UP, "1 while the broker (Redis) connection is up, else 0."),
            backend_events: r.labelled(
                BACKEND_EVENTS,
                "type",
                BACKEND_EVENT_TYPES,
                "Events for the backend written by this node, by type.",
            ),
            backend_events_dropped: r.labelled(
                BACKEND_EVENTS_DROPPED,
                "queue",
                BACKEND_EVENT_QUEUES,
                "Events for the backend dropped because a bounded queue was full, by queue.",
            ),
            webhook_posts: r.labelled(WEBHOOK_POSTS, "result", WEBHOOK_RESULTS, "Webhook POSTs, by result."),
            webhook_backlog: r.gauge(WEBHOOK_BACKLOG, "Events waiting for the webhook, on the node relaying them."),
            handle,
        };
        // Publishes the descriptions and creates the (empty) histogram, so the first scrape
        // already shows every series.
        metrics.handle.run_upkeep();
        metrics
    }

    /// `events` backend events of `kind` were written.
    pub fn backend_events(&self, kind: &'static str, events: usize) {
        self.backend_events.get(kind).increment(events as u64);
    }

    /// `events` backend events were dropped from `queue` (full).
    pub fn backend_events_dropped(&self, queue: &'static str, events: usize) {
        self.backend_events_dropped.get(queue).increment(events as u64);
    }

    /// A webhook POST ended with `result`.
    pub fn webhook_post(&self, result: &'static str) {
        self.webhook_posts.get(result).increment(1);
    }

    /// Events waiting for the webhook.
    pub fn webhook_backlog(&self, events: usize) {
        self.webhook_backlog.set(events as f64);
    }

    /// The text exposition, for `/metrics`.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Runs histogram upkeep until the task is dropped; spawn it once per node.
    pub async fn upkeep(handle: PrometheusHandle) {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    }

    /// The recorder's handle (for the upkeep task).
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    /// The broker's readiness, sampled when `/metrics` is scraped.
    pub fn broker_up(&self, ready: bool) {
        self.broker_up.set(if ready { 1.0 } else { 0.0 });
    }

    /// A connection was authenticated.
    pub fn connection_opened(&self) {
        self.connections_opened.increment(1);
        self.connections_open.increment(1.0);
    }

    /// An authenticated connection ended for `reason`.
    pub fn connection_closed(&self, reason: &CloseReason) {
        self.connections_open.decrement(1.0);
        self.connection_refused(reason);
    }

    /// A connection ended before it was authenticated (it was never counted as open).
    pub fn connection_refused(&self, reason: &CloseReason) {
        self.connections_closed.get(reason.label()).increment(1);
    }

    /// A token was refused (`reason`: one of [`AUTH_FAILURE_REASONS`]).
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures.get(reason).increment(1);
    }

    /// A membership was added; `new_room` when it was the room's first member.
    pub fn subscription_added(&self, new_room: bool) {
        self.subscriptions.increment(1.0);
        if new_room {
            self.rooms.increment(1.0);
        }
    }

    /// A membership was removed.
    pub fn subscription_removed(&self) {
        self.subscriptions.decrement(1.0);
    }

    /// A room lost its last local member.
    pub fn room_removed(&self) {
        self.rooms.decrement(1.0);
    }

    /// Members were told `left: resubscribe` because continuity could not be kept.
    pub fn resubscribe_sent(&self, members: usize) {
        self.resubscribes.increment(members as u64);
    }

    /// Events were delivered from history (`why`: `since` or `gap`).
    pub fn events_recovered(&self, why: &'static str, events: usize) {
        self.events_recovered.get(why).increment(events as u64);
    }

    /// A gap repair ended (`outcome`: `repaired` or `failed`).
    pub fn gap_repair(&self, outcome: &'static str) {
        self.gap_repairs.get(outcome).increment(1);
    }

    /// The publish API accepted an event.
    pub fn event_published(&self) {
        self.events_published.increment(1);
    }

    /// An event of `kind` was fanned out to `deliveries` local members.
    pub fn event_fanned_out(&self, kind: &'static str, deliveries: usize) {
        self.events_fanned_out.get(kind).increment(1);
        self.deliveries.increment(deliveries as u64);
    }

    /// A writer flushed `frames` frames of `bytes` bytes; the oldest had waited `latency`.
    pub fn batch_written(&self, frames: usize, bytes: usize, latency: Option<Duration>) {
        self.frames_sent.increment(frames as u64);
        self.bytes_sent.increment(bytes as u64);
        if let Some(latency) = latency {
            self.fanout_latency.record(latency.as_secs_f64());
        }
    }

    /// A connection was closed as a slow consumer.
    pub fn slow_consumer_closed(&self) {
        self.slow_consumer_closes.increment(1);
    }

    /// A client command arrived (`name`: one of [`COMMAND_NAMES`]).
    pub fn command(&self, name: &'static str) {
        self.commands.get(name).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn a_fresh_recorder_shows_every_series_at_zero() {
        let metrics = Metrics::new("n1");
        let text = metrics.render();
        for name in ALL {
            assert!(text.contains(&format!("# TYPE {name}")), "{name} is missing:\n{text}");
        }
        for reason in CloseReason::LABELS {
            let series = format!(r#"{CONNECTIONS_CLOSED}{{node="n1",reason="{reason}"}}"#);
            assert_eq!(value(&text, &series), Some(0.0), "{series}:\n{text}");
        }
        assert_eq!(value(&text, r#"roomcast_gap_repairs_total{node="n1",outcome="failed"}"#), Some(0.0));
    }

    #[test]
    fn two_nodes_in_one_process_count_apart() {
        let (a, b) = (Metrics::new("a"), Metrics::new("b"));
        a.connection_opened();
        a.command("ping");
        assert_eq!(value(&a.render(), r#"roomcast_connections_opened_total{node="a"}"#), Some(1.0));
        assert_eq!(value(&b.render(), r#"roomcast_connections_opened_total{node="b"}"#), Some(0.0));
        assert_eq!(value(&a.render(), r#"roomcast_commands_total{node="a",command="ping"}"#), Some(1.0));
    }
}
