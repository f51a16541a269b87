//! JWT verification of connection and subscription tokens, and minting for `roomcast token`.
//!
//! One algorithm is pinned per node: HS256 with a secret, or the algorithm of a PEM public key
//! (RS256, ES256, EdDSA). A token whose header names any other algorithm, `none` included, is
//! refused. `exp` and `sub` are required; `iss` and `aud` are checked when configured, and then
//! required too, because jsonwebtoken only checks claims that are present.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, JwtConfig, JwtKey};

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
        validation.leeway = config.leeway.as_secs();
        let mut required = vec!["exp", "sub"];
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

    /// Verifies a connection token.
    pub fn verify_connection(&self, token: &str) -> Result<ConnectionClaims, AuthError> {
        self.verify(token)
    }

    /// Verifies a subscription token.
    pub fn verify_subscription(&self, token: &str) -> Result<SubscriptionClaims, AuthError> {
        self.verify(token)
    }

    /// The clock-skew leeway applied to `exp`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    fn verify<T: for<'de> Deserialize<'de>>(&self, token: &str) -> Result<T, AuthError> {
        jsonwebtoken::decode::<T>(token, &self.key, &self.validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            }
        })
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
    fn missing_sub_or_exp_is_invalid() {
        let v = verifier(None, None);
        let no_exp = mint_hs256("k", &serde_json::json!({"sub":"u"}));
        assert!(matches!(v.verify_connection(&no_exp), Err(AuthError::Invalid(_))));
        let no_sub = mint_hs256("k", &serde_json::json!({"exp": unix_now() + 60}));
        assert!(matches!(v.verify_connection(&no_sub), Err(AuthError::Invalid(_))));
    }
}
