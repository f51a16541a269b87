//! [`TestPki`]: a throw-away CA and the certificates a TLS test needs, made with rcgen.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA, a server certificate for `127.0.0.1`, one for another host name, a client
/// certificate, and an unrelated CA, as PEM files in a temporary directory removed on drop.
///
/// Files: `ca.crt`, `server.crt`/`server.key` (SAN `127.0.0.1`, `localhost`),
/// `elsewhere.crt`/`elsewhere.key` (SAN `redis.elsewhere.test` only), `client.crt`/`client.key`,
/// `other-ca.crt` (a CA that signed none of them).
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    /// Makes every file.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("roomcast-pki-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = ca("roomcast test CA");
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.join("other-ca.crt"), self::ca("some other CA").pem()).unwrap();
        let leaf = |name: &str, sans: &[&str]| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        };
        leaf("server", &["127.0.0.1", "localhost"]);
        leaf("elsewhere", &["redis.elsewhere.test"]);
        leaf("client", &["roomcast-node"]);
        Self { dir }
    }

    /// The path of one of the files.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The directory holding them.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
