//! `/metrics` exports the node's counters in Prometheus text format, and they move.

use crate::common::TestGateway;
use serde_json::json;

#[tokio::test]
async fn counters_move_with_traffic() {
    let gw = TestGateway::start().await;
    let opened = gw.metric("roomcast_connections_opened_total").await;
    let published = gw.metric("roomcast_events_published_total").await;
    let deliveries = gw.metric("roomcast_deliveries_total").await;
    let frames = gw.metric("roomcast_frames_sent_total").await;

    gw.add_members("dialog:m", &["u1"]).await;
    let mut c = gw.connect("u1", None).await;
    c.subscribe("dialog:m").await;
    gw.publish(json!({"room": "dialog:m", "event": "message:new"})).await;
    c.recv().await;

    assert_eq!(gw.metric("roomcast_connections_opened_total").await, opened + 1.0);
    assert_eq!(gw.metric("roomcast_connections_open").await, 1.0);
    assert_eq!(gw.metric("roomcast_events_published_total").await, published + 1.0);
    assert_eq!(gw.metric("roomcast_deliveries_total").await, deliveries + 1.0);
    assert!(gw.metric("roomcast_frames_sent_total").await >= frames + 3.0, "connected, ok and the event");
    assert_eq!(gw.metric("roomcast_rooms").await, 2.0, "user:u1 and dialog:m");
    assert!(gw.metric(r#"roomcast_commands_total{command="subscribe"}"#).await >= 1.0);
    let (status, text) = gw.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE roomcast_fanout_latency_seconds histogram"), "{text}");
    assert!(text.contains(r#"node="test-node""#), "every series names its node: {text}");
    assert!(
        crate::common::metric_value(&text, r#"roomcast_fanout_latency_seconds_bucket{le="+Inf"}"#) >= 1.0,
        "{text}"
    );

    c.ws.close(None).await.unwrap();
    let closed = r#"roomcast_connections_closed_total{reason="client_closed"}"#;
    roomcast_testkit::eventually("the close to be counted", async || gw.metric(closed).await == 1.0).await;
    assert_eq!(gw.metric("roomcast_connections_open").await, 0.0);
    assert_eq!(gw.metric("roomcast_rooms").await, 0.0);
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.get("/healthz").await.0, 200);
    assert_eq!(gw.get("/readyz").await.0, 200);
}
