//! [`RedisOptions`]: how to reach and log in to Redis beyond its address: TLS material and
//! credentials. None of it is ever printed: `Debug` shows only what is set.

/// A client certificate and its private key, both PEM, for mutual TLS.
#[derive(Clone)]
pub struct ClientCert {
    /// The certificate chain, PEM.
    pub cert: Vec<u8>,
    /// The private key, PEM.
    pub key: Vec<u8>,
}

/// TLS material for `rediss://` connections. The server's name is always verified against
/// its certificate.
#[derive(Clone, Default)]
pub struct Tls {
    /// CA certificates (PEM) that sign the servers' certificates; `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
    /// A client certificate, when Redis asks for one (`tls-auth-clients yes`).
    pub client: Option<ClientCert>,
}

/// Everything about a Redis connection that is not its address.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// CA and client certificate for `rediss://` addresses; `None` with `rediss://`: the
    /// system's roots and no client certificate.
    pub tls: Option<Tls>,
    /// ACL user name (`AUTH user pass`); takes the place of one in the URL.
    pub username: Option<String>,
    /// Password; takes the place of one in the URL.
    pub password: Option<String>,
    /// Redis keeps every acknowledged write across its own restart (`appendonly yes`,
    /// `appendfsync always`): a restarted master (a new replication id that is not a
    /// promotion) keeps the rooms' epochs. Otherwise every room starts a new epoch.
    pub durable_restarts: bool,
    /// Acknowledge a publish only once this many replicas have it (`WAIT`); with at least one,
    /// a promoted replica keeps the rooms' epochs. 0: asynchronous replication, and a failover
    /// starts new epochs.
    pub wait_replicas: u32,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |yes: bool| if yes { "<set>" } else { "<unset>" };
        f.debug_struct("RedisOptions")
            .field("ca", &set(self.tls.as_ref().is_some_and(|t| t.ca.is_some())))
            .field("client_cert", &set(self.tls.as_ref().is_some_and(|t| t.client.is_some())))
            .field("username", &self.username)
            .field("password", &set(self.password.is_some()))
            .field("durable_restarts", &self.durable_restarts)
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("ca", &self.ca.is_some()).field("client", &self.client.is_some()).finish()
    }
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCert(<redacted>)")
    }
}

impl Tls {
    /// The material in the redis crate's form.
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|c| redis::ClientTlsConfig { client_cert: c.cert.clone(), client_key: c.key.clone() }),
            root_cert: self.ca.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let options = RedisOptions {
            tls: Some(Tls {
                ca: Some(b"CA-PEM".to_vec()),
                client: Some(ClientCert { cert: b"CERT-PEM".to_vec(), key: b"KEY-PEM".to_vec() }),
            }),
            username: Some("node".into()),
            password: Some("hunter2".into()),
            ..RedisOptions::default()
        };
        let text = format!("{options:?} {:?}", options.tls);
        for secret in ["hunter2", "KEY-PEM", "CERT-PEM", "CA-PEM"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("node"), "{text}");
    }
}
