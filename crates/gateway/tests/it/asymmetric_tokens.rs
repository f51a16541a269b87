//! A node configured with an RS256, ES256 or EdDSA public key accepts tokens signed by the
//! matching private key, found from the key alone, and refuses a token signed by another key,
//! and an HS256 token that uses the public key as its secret (the algorithm-confusion attack).
//! The keys under `tests/keys/` were made for these tests with openssl and protect nothing.

use std::path::PathBuf;

use crate::common::TestGateway;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use roomcast_gateway::auth::unix_now;
use roomcast_gateway::config::JwtKey;
use serde_json::json;

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

fn sign(alg: Algorithm, private_pem: &str) -> String {
    let pem = std::fs::read(key_path(private_pem)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        other => panic!("no test key for {other:?}"),
    }
    .unwrap();
    let claims = json!({"sub": "u1", "exp": unix_now() + 60});
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
}

async fn gateway(public_pem: &str) -> TestGateway {
    let path = key_path(public_pem);
    TestGateway::start_with(move |c| c.jwt.key = JwtKey::PublicKey(path)).await
}

/// The close code a token gets, or 0 when the node answered `connected`.
async fn outcome(gw: &TestGateway, token: &str) -> u16 {
    let mut client = gw.connect_url(&format!("{}?token={token}", gw.ws_url())).await;
    let first = client.recv().await;
    if first["type"] == "connected" {
        assert_eq!(first["user"], "u1", "{first}");
        return 0;
    }
    assert_eq!((first["type"].as_str(), first["code"].as_str()), (Some("error"), Some("unauthorized")), "{first}");
    client.recv_close().await.0
}

#[tokio::test]
async fn each_public_key_algorithm_accepts_its_own_tokens_only() {
    let cases = [
        (Algorithm::RS256, "rs256-public.pem", "rs256-private.pem"),
        (Algorithm::ES256, "es256-public.pem", "es256-private.pem"),
        (Algorithm::EdDSA, "eddsa-public.pem", "eddsa-private.pem"),
    ];
    for (alg, public, private) in cases {
        let gw = gateway(public).await;
        assert_eq!(outcome(&gw, &sign(alg, private)).await, 0, "{alg:?} token on its own key");
        for (other_alg, _, other_private) in cases.iter().filter(|c| c.0 != alg) {
            assert_eq!(
                outcome(&gw, &sign(*other_alg, other_private)).await,
                4003,
                "{other_alg:?} token on a {alg:?} node"
            );
        }
        // HS256 keyed with the public key's own bytes (the algorithm-confusion attack). The
        // node pins the key's algorithm; jsonwebtoken would also refuse an HMAC check with an
        // asymmetric key, so this guards against a regression rather than proving the pin,
        // which `bad_tokens.rs` (`alg: none`) does.
        let public_pem = std::fs::read_to_string(key_path(public)).unwrap();
        let confused = roomcast_gateway::auth::mint_hs256(&public_pem, &json!({"sub": "u1", "exp": unix_now() + 60}));
        assert_eq!(outcome(&gw, &confused).await, 4003, "HS256 keyed with the {alg:?} public key");
    }
}
