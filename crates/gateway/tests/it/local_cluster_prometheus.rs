//! Prometheus for real: the local cluster's Prometheus (Debian's package) scrapes all three
//! nodes, and its HTTP query API shows roomcast's series (connections, events, fan-out latency
//! buckets, broker health) per node; every Grafana dashboard query and alert rule evaluates.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

use crate::common::TestGateway;
use crate::ops::{LocalCluster, sample_value};
use serde_json::{Value, json};

fn nodes_of(result: &[Value]) -> BTreeSet<String> {
    result.iter().filter_map(|s| s["metric"]["node"].as_str().map(str::to_owned)).collect()
}

fn all_three(result: &[Value]) -> bool {
    nodes_of(result) == BTreeSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_roomcast_series_from_every_node() {
    let started = Instant::now();
    let mut cluster = LocalCluster::start("prometheus");
    let lb = TestGateway::attach(cluster.lb);

    // Six clients spread over the nodes by nginx, all in one dialog, and ten events to it.
    let mut clients = Vec::new();
    for i in 0..6 {
        let user = format!("u{i}");
        lb.add_members("dialog:ops", &[&user]).await;
        let mut client = lb.connect(&user, None).await;
        client.subscribe("dialog:ops").await;
        clients.push(client);
    }
    for n in 0..10 {
        lb.publish(json!({"room": "dialog:ops", "event": "message:new", "data": n})).await;
    }
    for client in &mut clients {
        for n in 0..10 {
            assert_eq!(client.recv().await["data"], n);
        }
    }

    let up = cluster.query_until(r#"up{job="roomcast"} == 1"#, |r| r.len() == 3).await;
    assert_eq!(up.len(), 3, "three scrape targets up");
    let open = cluster
        .query_until("roomcast_connections_open", |r| all_three(r) && r.iter().map(sample_value).sum::<f64>() == 6.0)
        .await;
    assert!(open.iter().all(|s| sample_value(s) >= 1.0), "least_conn puts clients on every node: {open:?}");
    cluster
        .query_until("sum(roomcast_events_published_total)", |r| r.first().is_some_and(|s| sample_value(s) == 10.0))
        .await;
    // Each node fans every event out to its own members.
    cluster.query_until(r#"roomcast_events_fanned_out_total{kind="event"} >= 10"#, all_three).await;
    cluster.query_until("roomcast_subscriptions", all_three).await;
    let buckets = cluster.query_until(r#"roomcast_fanout_latency_seconds_bucket{le="+Inf"}"#, all_three).await;
    assert!(buckets.iter().all(|s| sample_value(s) >= 10.0), "{buckets:?}");
    let le: BTreeSet<String> = cluster
        .query(r#"roomcast_fanout_latency_seconds_bucket{node="a"}"#)
        .await
        .iter()
        .filter_map(|s| s["metric"]["le"].as_str().map(str::to_owned))
        .collect();
    assert!(le.len() >= 10 && le.contains("0.001"), "histogram buckets, not a summary: {le:?}");
    let broker = cluster.query_until("roomcast_broker_up", all_three).await;
    assert!(broker.iter().all(|s| sample_value(s) == 1.0), "{broker:?}");

    // Every roomcast series Prometheus holds is a declared metric.
    let names = cluster.prometheus_get("/api/v1/label/__name__/values").await;
    for name in names["data"].as_array().unwrap().iter().filter_map(Value::as_str) {
        for base in crate::ops::metric_names(name) {
            assert!(roomcast_gateway::metrics::ALL.contains(&base.as_str()), "{name} is not in metrics::ALL");
        }
    }

    // The dashboard's queries run in a real Prometheus, and the main ones have data.
    for query in crate::ops::dashboard_queries().iter().filter(|q| !q.starts_with("label_values")) {
        let promql = crate::ops::without_grafana_variables(query);
        let needs_data = ["roomcast_connections_open{", "roomcast_events_fanned_out_total{", "roomcast_broker_up{"];
        if needs_data.iter().any(|m| query.contains(m)) {
            // rate() needs two scrapes in its window: poll rather than assume.
            cluster.query_until(&promql, |r| !r.is_empty()).await;
        } else {
            cluster.query(&promql).await;
        }
    }
    // The alert rules loaded and evaluate without errors.
    let rules = cluster.prometheus_get("/api/v1/rules").await;
    let rules: Vec<&Value> =
        rules["data"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    assert!(rules.len() >= 5, "{rules:?}");
    for rule in rules {
        assert_ne!(rule["health"], "err", "{rule}");
    }

    drop(clients);
    let pids = cluster.pids();
    cluster.stop();
    for pid in pids {
        assert!(!crate::ops::process_alive(pid), "pid {pid} outlived cluster.sh stop");
    }
    let _ =
        writeln!(std::io::stderr(), "prometheus: cluster start, scrape checks and stop took {:?}", started.elapsed());
}
