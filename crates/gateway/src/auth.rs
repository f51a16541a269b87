//! JWT verification of connection and subscription tokens, and minting for `roomcast token`.
//!
//! One algorithm is pinned per node: HS256 with a secret, or the algorithm of a PEM public key
//! (RS256, ES256, EdDSA). A token whose header names any other algorithm, `none` included, is
//! refused. `exp` and `sub` are required; `iss` and `aud` are checked when configured, and then
//! required too, because jsonwebtoken only checks claims that are present.
//!
//! jsonwebtoken checks the signature, the algorithm, `iss` and `aud`; the claims and their times
//! are read and checked here ([`claims`], [`times`]), because its own `exp`/`nbf` check counts in
//! whole seconds and does arithmetic on the token's numbers. A token that carries `room` is a
//! subscription token and nothing else; one without `room` is a connection token.
//!
//! # Layout
//! - `auth.rs`: [`TokenVerifier`], the claims types, minting.
//! - `claims.rs`: a payload's claims, type-checked, times clamped.
//! - `times.rs`: `nbf`/`exp` with the leeway, and a connection's time left.

mod claims;
mod times;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use claims::LATEST;
pub use times::{LONGEST_TIMER, time_left, time_left_at};

use crate::config::{ConfigError, JwtConfig, JwtKey};
use claims::Claims;

/// Why a token was refused; decides the close code (4001 or 4003).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token's `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// The token is malformed, badly signed, for another issuer or audience, or misses a claim.
    #[error("token invalid: {0}")]
    Invalid(String),
}

impl AuthError {
    /// Label for the `auth_failures` metric.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Expired => "expired",
            AuthError::Invalid(_) => "invalid",
        }
    }
}

/// Claims of a connection token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionClaims {
    /// User id.
    pub sub: String,
    /// Organisation id, if the user belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Claims of a subscription token: one user may join one room until `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionClaims {
    /// User id; must equal the connection's.
    pub sub: String,
    /// Room name; must equal the room subscribed.
    pub room: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Verifies tokens with the node's one key and algorithm.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TokenVerifier").field("algorithms", &self.validation.algorithms).finish()
    }
}

impl TokenVerifier {
    /// Builds the verifier; a key that cannot be read or parsed names its setting.
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        let (key, algorithm) = match &config.key {
            JwtKey::Secret(secret) => (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256),
            JwtKey::PublicKey(path) => load_public_key(path, config.algorithm.as_deref())?,
        };
        let mut validation = Validation::new(algorithm);
        // Times are checked by `times`, to the sub-second and without overflow; `exp` is
        // still required, by `Claims::read`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required = vec!["sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without this, a token that carries any `aud` is refused.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self { key, validation, leeway: config.leeway })
    }

    /// Verifies a connection token: valid now, and without a `room` claim.
    pub fn verify_connection(&self, token: &str) -> Result<ConnectionClaims, AuthError> {
        let claims = self.verify(token)?;
        if claims.room.is_some() {
            return Err(AuthError::Invalid(
                "this is a subscription token (it carries room): a connection needs a connection token".into(),
            ));
        }
        Ok(ConnectionClaims { sub: claims.sub, org: claims.org, exp: claims.exp })
    }

    /// Verifies a subscription token: valid now, with a `room` claim.
    pub fn verify_subscription(&self, token: &str) -> Result<SubscriptionClaims, AuthError> {
        let claims = self.verify(token)?;
        let room = match claims.room {
            Some(Value::String(room)) => room,
            None => {
                return Err(AuthError::Invalid(
                    "this is a connection token (it carries no room), not a subscription token".into(),
                ));
            }
            Some(_) => return Err(AuthError::Invalid("room must be a string".into())),
        };
        Ok(SubscriptionClaims { sub: claims.sub, room, exp: claims.exp })
    }

    /// The clock-skew leeway applied to `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Signature, algorithm, `iss`/`aud` (jsonwebtoken), then the claims and their times.
    fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // A Map reads an object only: a payload that is a JSON array is refused.
        let payload = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        let claims = Claims::read(payload).map_err(AuthError::Invalid)?;
        times::check(claims.exp, claims.nbf, self.leeway, times::now())?;
        Ok(claims)
    }
}

fn load_public_key(path: &std::path::Path, algorithm: Option<&str>) -> Result<(DecodingKey, Algorithm), ConfigError> {
    let fail = |setting: &str, message: String| ConfigError { setting: setting.to_owned(), message };
    let pem = std::fs::read(path)
        .map_err(|e| fail("ROOMCAST_JWT_PUBLIC_KEY", format!("cannot read {}: {e}", path.display())))?;
    let parsed = match algorithm {
        Some(name) => {
            let alg: Algorithm =
                name.parse().map_err(|_| fail("ROOMCAST_JWT_ALGORITHM", format!("unknown algorithm {name:?}")))?;
            let key = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => {
                    return Err(fail("ROOMCAST_JWT_ALGORITHM", format!("{name} needs a secret, not a public key")));
                }
            };
            key.map(|k| (k, alg)).ok()
        }
        None => DecodingKey::from_rsa_pem(&pem)
            .map(|k| (k, Algorithm::RS256))
            .or_else(|_| DecodingKey::from_ec_pem(&pem).map(|k| (k, Algorithm::ES256)))
            .or_else(|_| DecodingKey::from_ed_pem(&pem).map(|k| (k, Algorithm::EdDSA)))
            .ok(),
    };
    parsed.ok_or_else(|| {
        fail(
            "ROOMCAST_JWT_PUBLIC_KEY",
            format!("{} is not an RSA, EC or Ed25519 public key in PEM form", path.display()),
        )
    })
}

/// Signs `claims` with HS256, as `roomcast token` and tests do.
pub fn mint_hs256<T: Serialize>(secret: &str, claims: &T) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        // HS256 over serializable claims has no failure mode besides a broken serializer.
        .expect("HS256 signing cannot fail")
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn verifier(issuer: Option<&str>, audience: Option<&str>) -> TokenVerifier {
        let mut c = Config::with_secret("k").jwt;
        c.issuer = issuer.map(str::to_owned);
        c.audience = audience.map(str::to_owned);
        c.leeway = Duration::ZERO;
        TokenVerifier::new(&c).unwrap()
    }

    #[test]
    fn valid_token_passes_and_expired_is_told_apart() {
        let v = verifier(None, None);
        let ok = mint_hs256("k", &ConnectionClaims { sub: "u1".into(), org: None, exp: unix_now() + 60 });
        assert_eq!(v.verify_connection(&ok).unwrap().sub, "u1");
        let old = mint_hs256("k", &ConnectionClaims { sub: "u1".into(), org: None, exp: unix_now() - 10 });
        assert_eq!(v.verify_connection(&old), Err(AuthError::Expired));
        let wrong_key = mint_hs256("other", &ConnectionClaims { sub: "u1".into(), org: None, exp: unix_now() + 60 });
        assert!(matches!(v.verify_connection(&wrong_key), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn issuer_and_audience_are_required_when_configured() {
        let v = verifier(Some("iss1"), Some("aud1"));
        let exp = unix_now() + 60;
        let good = mint_hs256("k", &serde_json::json!({"sub":"u","exp":exp,"iss":"iss1","aud":"aud1"}));
        assert!(v.verify_connection(&good).is_ok());
        for claims in [
            serde_json::json!({"sub":"u","exp":exp,"aud":"aud1"}),
            serde_json::json!({"sub":"u","exp":exp,"iss":"other","aud":"aud1"}),
            serde_json::json!({"sub":"u","exp":exp,"iss":"iss1","aud":"other"}),
            serde_json::json!({"sub":"u","exp":exp,"iss":"iss1"}),
        ] {
            let token = mint_hs256("k", &claims);
            assert!(matches!(v.verify_connection(&token), Err(AuthError::Invalid(_))), "{claims}");
        }
    }

    #[test]
    fn room_tells_subscription_tokens_from_connection_tokens() {
        let v = verifier(None, None);
        let exp = unix_now() + 60;
        let subscription = mint_hs256("k", &SubscriptionClaims { sub: "u".into(), room: "dialog:1".into(), exp });
        let connection = mint_hs256("k", &ConnectionClaims { sub: "u".into(), org: None, exp });
        assert_eq!(v.verify_subscription(&subscription).unwrap().room, "dialog:1");
        assert!(v.verify_connection(&connection).is_ok());
        let err = v.verify_connection(&subscription).unwrap_err();
        assert!(err.to_string().contains("subscription token"), "{err}");
        let err = v.verify_subscription(&connection).unwrap_err();
        assert!(err.to_string().contains("connection token"), "{err}");
        let numbered = mint_hs256("k", &serde_json::json!({"sub": "u", "room": 7, "exp": exp}));
        assert!(matches!(v.verify_subscription(&numbered), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn a_payload_must_be_an_object() {
        let v = verifier(None, None);
        let array = mint_hs256("k", &serde_json::json!(["u", null, unix_now() + 60]));
        assert!(matches!(v.verify_connection(&array), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn missing_sub_or_exp_is_invalid() {
        let v = verifier(None, None);
        let no_exp = mint_hs256("k", &serde_json::json!({"sub":"u"}));
        assert!(matches!(v.verify_connection(&no_exp), Err(AuthError::Invalid(_))));
        let no_sub = mint_hs256("k", &serde_json::json!({"exp": unix_now() + 60}));
        assert!(matches!(v.verify_connection(&no_sub), Err(AuthError::Invalid(_))));
    }
}
