//! The WebSocket opening handshake's request, checked as RFC 6455 §4.2.1 asks before anything is
//! upgraded: `GET`, HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`, a
//! `Sec-WebSocket-Key` of 16 base64 bytes and `Sec-WebSocket-Version: 13`.
//!
//! fastwebsockets' upgrade only looks for the key and the version, so `Upgrade: h2c` or
//! `Connection: keep-alive` would be switched to a WebSocket. A request that is not an upgrade
//! gets 400; one for another protocol version gets 426 with `Sec-WebSocket-Version: 13` (§4.2.2),
//! so that a client can retry with the version the server speaks.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a WebSocket upgrade request (400); says what is missing or wrong.
    #[error("expected a WebSocket upgrade request: {0}")]
    NotAnUpgrade(&'static str),
    /// A `Sec-WebSocket-Version` other than 13, or none (426).
    #[error("this server speaks WebSocket version 13 (RFC 6455)")]
    Version,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let text = format!("{self}\n");
        match self {
            Refusal::NotAnUpgrade(_) => (StatusCode::BAD_REQUEST, text).into_response(),
            Refusal::Version => {
                (StatusCode::UPGRADE_REQUIRED, [(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"))], text)
                    .into_response()
            }
        }
    }
}

/// Middleware for a WebSocket route: refuses what [`check`] refuses, passes the rest on.
pub async fn require_upgrade(request: Request, next: Next) -> Response {
    match check(request.method(), request.version(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks an upgrade request's method, version and headers.
pub fn check(method: &Method, version: Version, headers: &HeaderMap) -> Result<(), Refusal> {
    if method != Method::GET {
        return Err(Refusal::NotAnUpgrade("the method must be GET"));
    }
    if version != Version::HTTP_11 {
        return Err(Refusal::NotAnUpgrade("the request must be HTTP/1.1"));
    }
    if !has_token(headers, &header::UPGRADE, "websocket") {
        return Err(Refusal::NotAnUpgrade("no Upgrade: websocket"));
    }
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(Refusal::NotAnUpgrade("no Connection: upgrade"));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(Refusal::Version);
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_16_bytes_of_base64(key.as_bytes()) => Ok(()),
        Some(_) => Err(Refusal::NotAnUpgrade("Sec-WebSocket-Key is not 16 bytes in base64")),
        None => Err(Refusal::NotAnUpgrade("no Sec-WebSocket-Key")),
    }
}

/// Whether any `name` header lists `token` (comma-separated, case-insensitive).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether `key` is the base64 of 16 bytes: 22 base64 characters and `==`.
fn is_16_bytes_of_base64(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    const KEY: (&str, &str) = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    const VERSION: (&str, &str) = ("sec-websocket-version", "13");

    #[test]
    fn a_proper_upgrade_passes_with_any_case_and_token_lists() {
        let h = headers(&[("upgrade", "WebSocket"), ("connection", "keep-alive, Upgrade"), KEY, VERSION]);
        assert_eq!(check(&Method::GET, Version::HTTP_11, &h), Ok(()));
    }

    #[test]
    fn each_missing_part_is_named() {
        let good = [("upgrade", "websocket"), ("connection", "upgrade"), KEY, VERSION];
        assert!(matches!(check(&Method::POST, Version::HTTP_11, &headers(&good)), Err(Refusal::NotAnUpgrade(_))));
        assert!(matches!(check(&Method::GET, Version::HTTP_10, &headers(&good)), Err(Refusal::NotAnUpgrade(_))));
        for (index, value, refusal) in [
            (0, ("upgrade", "h2c"), Refusal::NotAnUpgrade("no Upgrade: websocket")),
            (1, ("connection", "keep-alive"), Refusal::NotAnUpgrade("no Connection: upgrade")),
            (1, ("connection", "upgraded"), Refusal::NotAnUpgrade("no Connection: upgrade")),
            (2, ("sec-websocket-key", "abc"), Refusal::NotAnUpgrade("Sec-WebSocket-Key is not 16 bytes in base64")),
            (
                2,
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=!"),
                Refusal::NotAnUpgrade("Sec-WebSocket-Key is not 16 bytes in base64"),
            ),
            (3, ("sec-websocket-version", "8"), Refusal::Version),
            (3, ("sec-websocket-version", "13, 8"), Refusal::Version),
        ] {
            let mut pairs = good.to_vec();
            pairs[index] = value;
            assert_eq!(check(&Method::GET, Version::HTTP_11, &headers(&pairs)), Err(refusal), "{value:?}");
        }
        let no_version = headers(&[("upgrade", "websocket"), ("connection", "upgrade"), KEY]);
        assert_eq!(check(&Method::GET, Version::HTTP_11, &no_version), Err(Refusal::Version));
    }
}
