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
