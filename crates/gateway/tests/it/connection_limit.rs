//! Over `max_connections` a socket is upgraded, told why, and closed with 4029.

use crate::common::TestGateway;

#[tokio::test]
async fn the_connection_over_the_limit_is_closed_4029() {
    let gw = TestGateway::start_with(|c| c.max_connections = 2).await;
    let mut a = gw.connect("u1", None).await;
    let _b = gw.connect("u2", None).await;
    let mut over = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u3", None))).await;
    let (code, frames) = over.recv_close().await;
    assert_eq!(code, 4029);
    assert_eq!(frames[0]["type"], "error", "{frames:?}");
    a.roundtrip().await;

    // A closed connection frees its slot.
    drop(over);
    drop(a);
    let deadline = std::time::Instant::now() + crate::common::PATIENCE;
    loop {
        let mut c = gw.connect_url(&format!("{}?token={}", gw.ws_url(), gw.token("u4", None))).await;
        if c.recv().await["type"] == "connected" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
