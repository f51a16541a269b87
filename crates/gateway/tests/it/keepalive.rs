//! Server pings keep a listening client alive; a client silent past the idle timeout is closed.
//! (The ping schedule itself is checked with a paused clock in `connection/writer.rs`.)

use std::time::Duration;

use futures::StreamExt;
use roomcast_gateway::Config;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{SilentClient, TestGateway};

const PING_INTERVAL: Duration = Duration::from_millis(50);
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

fn fast_pings(c: &mut Config) {
    c.ping_interval = PING_INTERVAL;
    c.idle_timeout = IDLE_TIMEOUT;
}

#[tokio::test]
async fn a_client_that_answers_pings_outlives_the_idle_timeout() {
    let gw = TestGateway::start_with(fast_pings).await;
    let mut c = gw.connect("u1", None).await;
    // Pings come one interval apart at the earliest, so this many of them span two idle
    // timeouts of server time, during which the client sent nothing but its pongs.
    let spanning_two_timeouts = (2 * IDLE_TIMEOUT.as_millis() / PING_INTERVAL.as_millis()) as usize + 1;
    let mut pings = 0;
    while pings < spanning_two_timeouts {
        // tungstenite answers each ping while it reads.
        match c.ws.next().await {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("after {pings} pings: {other:?}"),
        }
    }
    c.roundtrip().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let gw = TestGateway::start_with(fast_pings).await;
    let mut silent = SilentClient::connect(gw.addr, &format!("/ws?token={}", gw.token("u1", None))).await;
    let (code, before) = silent.until_close().await;
    assert_eq!(code, 1001);
    assert_eq!(before.first(), Some(&0x1), "connected first");
    assert!(before[1..].iter().all(|&op| op == 0x9), "then only unanswered pings: {before:?}");
    assert!(before.len() > 2, "pings went out before the idle timeout: {before:?}");
}
