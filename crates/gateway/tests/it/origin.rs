//! The Origin check: browsers from pages not on `allowed_origins` get 403 before the upgrade;
//! listed pages and clients without `Origin` connect.

use crate::common::TestGateway;
use roomcast_gateway::origin::AllowedOrigins;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::Error as WsError;

async fn gateway() -> TestGateway {
    TestGateway::start_with(|c| {
        c.allowed_origins =
            AllowedOrigins::parse(&["https://app.example.com".to_owned(), "https://*.example.org".to_owned()]).unwrap();
    })
    .await
}

/// Upgrades with `Origin: origin` and returns the HTTP status, 101 when the socket opened.
async fn upgrade_status(gw: &TestGateway, origin: Option<&str>) -> u16 {
    let url = format!("{}?token={}", gw.ws_url(), gw.token("u1", None));
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected upgrade failure: {e}"),
    }
}

#[tokio::test]
async fn foreign_origins_get_403_before_the_upgrade() {
    let gw = gateway().await;
    assert_eq!(upgrade_status(&gw, Some("https://evil.example.net")).await, 403);
    assert_eq!(upgrade_status(&gw, Some("https://example.org")).await, 403, "the bare domain is not a subdomain");
    assert_eq!(upgrade_status(&gw, Some("null")).await, 403);
}

#[tokio::test]
async fn listed_origins_and_non_browser_clients_connect() {
    let gw = gateway().await;
    assert_eq!(upgrade_status(&gw, Some("https://app.example.com")).await, 101);
    assert_eq!(upgrade_status(&gw, Some("https://chat.example.org")).await, 101);
    assert_eq!(upgrade_status(&gw, None).await, 101, "no Origin: not a browser");
}

#[tokio::test]
async fn every_origin_connects_when_the_setting_is_unset() {
    let gw = TestGateway::start().await;
    assert_eq!(upgrade_status(&gw, Some("https://evil.example.net")).await, 101);
}
