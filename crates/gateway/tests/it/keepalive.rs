//! Server pings keep a listening client alive; a client silent past the idle timeout is closed.

use std::time::{Duration, Instant};

use crate::common::TestGateway;
use futures::StreamExt;
use roomcast_gateway::Config;
use tokio_tungstenite::tungstenite::Message;

fn fast_pings(c: &mut Config) {
    c.ping_interval = Duration::from_millis(200);
    c.idle_timeout = Duration::from_millis(800);
}

#[tokio::test]
async fn a_client_that_answers_pings_outlives_the_idle_timeout() {
    let gw = TestGateway::start_with(fast_pings).await;
    let mut c = gw.connect("u1", None).await;
    let until = Instant::now() + Duration::from_secs(2);
    let mut pings = 0;
    // tungstenite answers each ping while it reads.
    while let Ok(message) = tokio::time::timeout_at(until.into(), c.ws.next()).await {
        match message {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 5, "{pings} pings in 2 s at a 200 ms interval");
    c.roundtrip().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let gw = TestGateway::start_with(fast_pings).await;
    let mut c = gw.connect("u1", None).await;
    // Stay silent (not even pongs) for longer than the idle timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.recv_close().await.0, 1001);
}
