//! Connection tokens (JWT) for the simulated users, HS256 or ES256.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::target::Target;

/// Token signing algorithm of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "UPPERCASE")]
pub enum Alg {
    /// Shared secret.
    #[default]
    #[value(name = "HS256")]
    Hs256,
    /// ECDSA P-256.
    #[value(name = "ES256")]
    Es256,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<&'a str>,
    exp: u64,
}

/// Mints tokens for one target.
pub struct Minter {
    header: Header,
    key: EncodingKey,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").field("alg", &self.header.alg).finish()
    }
}

impl Minter {
    /// A minter for `target` with `alg`; ES256 needs the target's `es256_key`.
    pub fn new(target: &Target, alg: Alg) -> anyhow::Result<Self> {
        Ok(match alg {
            Alg::Hs256 => {
                Self { header: Header::new(Algorithm::HS256), key: EncodingKey::from_secret(target.secret.as_bytes()) }
            }
            Alg::Es256 => {
                let path = target.es256_key.as_ref().context("ES256 needs the target's es256_key")?;
                let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let key = EncodingKey::from_ec_pem(&pem)
                    .with_context(|| format!("{} is not an EC private key", path.display()))?;
                Self { header: Header::new(Algorithm::ES256), key }
            }
        })
    }

    /// A token for user `sub` in `org`, valid for two hours.
    pub fn mint(&self, sub: &str, org: Option<&str>) -> String {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 7200;
        jsonwebtoken::encode(&self.header, &Claims { sub, org, exp }, &self.key)
            .expect("signing plain claims cannot fail")
    }
}
