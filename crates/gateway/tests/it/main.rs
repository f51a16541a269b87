//! The gateway's integration tests, in one binary (one link of the crate instead of one per
//! file): each module is one behaviour area, and they start real servers: in-process nodes on
//! port 0 (each with its own metrics), real `roomcast` processes, real `redis-server`s and
//! clusters, and the local nginx cluster.

mod common;
mod conformance;
mod ops;
mod webhook_sink;

mod api_errors;
mod asymmetric_tokens;
mod auto_join;
mod backend_events;
mod bad_tokens;
mod broadcast_history;
mod connection_limit;
mod dialog_access;
mod drain;
mod emit;
mod engine_io;
mod gap_repair;
mod grafana_dashboard;
mod half_open;
mod handshake;
mod json_shapes;
mod keepalive;
mod local_cluster_failover;
mod local_cluster_prometheus;
mod logging;
mod malformed;
mod member_removal;
mod metrics;
mod node_kill;
mod origin;
mod outage_recovery;
mod oversize;
mod panic_cleanup;
mod presence;
mod publish;
mod recovery;
mod recovery_under_load;
mod redis_acl;
mod redis_cluster;
mod redis_nodes;
mod redis_outage;
mod redis_sentinel;
mod redis_stall;
mod redis_tls;
mod refresh;
mod settings_names;
mod slow_consumer;
mod socket_io;
mod socketio_face;
mod subscribe_reply;
mod token_expiry;
mod token_forms;
mod token_kinds;
