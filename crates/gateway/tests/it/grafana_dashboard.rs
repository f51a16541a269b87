//! Every query of the Grafana dashboard (`deploy/grafana/roomcast.json`) names metrics the
//! gateway exports, and the dashboard covers what operators watch. (The local-cluster Prometheus
//! test also runs each query against a real Prometheus.)

use roomcast_gateway::metrics;

#[test]
fn every_query_names_an_exported_metric() {
    let queries = crate::ops::dashboard_queries();
    assert!(queries.len() >= 10, "panels and the node variable: {queries:?}");
    for query in &queries {
        let names = crate::ops::metric_names(query);
        let builtin = query.contains("up{job=");
        assert!(!names.is_empty() || builtin, "a query names no roomcast metric: {query}");
        for name in names {
            assert!(metrics::ALL.contains(&name.as_str()), "{name} (in {query}) is not exported by the gateway");
        }
    }
}

#[test]
fn the_dashboard_covers_the_series_operators_watch() {
    let used: Vec<String> = crate::ops::dashboard_queries().iter().flat_map(|q| crate::ops::metric_names(q)).collect();
    let watched = [
        metrics::CONNECTIONS_OPEN,
        metrics::SUBSCRIPTIONS,
        metrics::EVENTS_PUBLISHED,
        metrics::EVENTS_FANNED_OUT,
        metrics::FANOUT_LATENCY,
        metrics::SLOW_CONSUMER_CLOSES,
        metrics::BROKER_UP,
    ];
    for metric in watched {
        assert!(used.iter().any(|u| u == metric), "no panel shows {metric}");
    }
    let queries = crate::ops::dashboard_queries();
    assert!(queries.iter().filter(|q| q.contains("histogram_quantile")).count() >= 3, "fan-out latency percentiles");
    let panel_queries = queries.iter().filter(|q| q.contains("roomcast_") && !q.starts_with("label_values"));
    assert!(panel_queries.clone().count() >= 10);
    for query in panel_queries {
        assert!(query.contains(r#"node=~"$node""#), "every panel filters by the node variable: {query}");
    }
}

#[test]
fn metric_names_are_read_from_promql() {
    let q = r#"histogram_quantile(0.99, sum by (node, le) (rate(roomcast_fanout_latency_seconds_bucket{node=~"$node"}[1m]))) / roomcast_x"#;
    assert_eq!(crate::ops::metric_names(q), ["roomcast_fanout_latency_seconds", "roomcast_x"]);
}

/// The `roomcast_*` metric names in the alert rules' `expr` lines.
fn alert_metric_names() -> Vec<String> {
    let rules = std::fs::read_to_string(crate::ops::repo().join("deploy/prometheus/alerts.yml")).unwrap();
    rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")).flat_map(crate::ops::metric_names).collect()
}

#[tokio::test]
async fn a_fresh_node_exports_every_series_the_dashboard_and_alerts_query() {
    // Before any connection, close, auth failure or repair: a rate over a series that does not
    // exist yet shows "no data" instead of 0, and an alert on it never fires.
    let gw = crate::common::TestGateway::start().await;
    let (status, text) = gw.get("/metrics").await;
    assert_eq!(status, 200);
    let used: Vec<String> = ops_names().into_iter().chain(alert_metric_names()).collect();
    assert!(used.iter().any(|n| n == metrics::SLOW_CONSUMER_CLOSES), "{used:?}");
    for name in &used {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} is not on a fresh node's /metrics:\n{text}");
    }
    for name in metrics::ALL {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} is missing:\n{text}");
    }
    for (name, label, values) in [
        (metrics::CONNECTIONS_CLOSED, "reason", roomcast_gateway::close::CloseReason::LABELS),
        (metrics::AUTH_FAILURES, "reason", metrics::AUTH_FAILURE_REASONS),
        (metrics::COMMANDS, "command", metrics::COMMAND_NAMES),
        (metrics::GAP_REPAIRS, "outcome", metrics::REPAIR_OUTCOMES),
    ] {
        for value in values {
            let series = format!(r#"{name}{{{label}="{value}"}}"#);
            let line = text.lines().find(|l| l.starts_with(name) && l.contains(&format!(r#"{label}="{value}""#)));
            assert!(line.is_some_and(|l| l.ends_with(" 0")), "{series} is not exported at 0:\n{text}");
        }
    }
    assert_eq!(crate::common::metric_value(&text, metrics::RESUBSCRIBES), 0.0);
}

fn ops_names() -> Vec<String> {
    crate::ops::dashboard_queries().iter().flat_map(|q| crate::ops::metric_names(q)).collect()
}
