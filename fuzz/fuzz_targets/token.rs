//! Token handling: the header and the claims of connection and subscription tokens, through
//! the gateway's `TokenVerifier` (signature, algorithm, claims, times). No input panics, a
//! verified token's times are clamped, and a connection's time left is bounded.
//!
//! Input: one byte choosing the mode, then
//! - 0: a whole token as text (header, payload and signature as the client sent them);
//! - 1: claims JSON, signed with the node's key under a valid HS256 header, so that the claims
//!   handling is reached past the signature check;
//! - 2: a header JSON, with valid claims, signed: the header's parsing and algorithm pinning.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use roomcast_gateway::Config;
use roomcast_gateway::auth::{LATEST, LONGEST_TIMER, TokenVerifier, time_left};

const SECRET: &str = "fuzz-secret";

static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| {
    let mut config = Config::with_secret(SECRET).jwt;
    config.leeway = Duration::from_secs(5);
    TokenVerifier::new(&config).expect("an HS256 verifier")
});

/// `header.payload.signature`, signed with the node's secret whatever the header says.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET.as_bytes()), Algorithm::HS256)
            .expect("HS256 signs anything");
    format!("{message}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => signed(br#"{"alg":"HS256","typ":"JWT"}"#, rest),
        _ => signed(rest, br#"{"sub":"u1","exp":253402300799}"#),
    };
    if let Ok(claims) = VERIFIER.verify_connection(&token) {
        assert!(claims.exp <= LATEST, "exp {} not clamped", claims.exp);
        assert!(time_left(claims.exp, VERIFIER.leeway()) <= LONGEST_TIMER);
        assert!(VERIFIER.verify_subscription(&token).is_err(), "a token of both kinds");
    }
    if let Ok(claims) = VERIFIER.verify_subscription(&token) {
        assert!(claims.exp <= LATEST, "exp {} not clamped", claims.exp);
    }
});
