//! [`Target`]: the server under test, its nodes and how to reach, authenticate and publish to it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The wire protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// roomcast's v1 JSON protocol on `/ws`, publishing through `POST /api/publish`.
    Roomcast,
    /// Socket.IO v4 on `/socket.io/`, publishing through the peers' `POST /publish`.
    Socketio,
    /// roomcast's own Socket.IO face on `/socket.io/` (rooms joined at connect, `roomcast:subscribe`
    /// for others), publishing through `POST /api/publish`.
    #[serde(rename = "roomcast-socketio")]
    #[value(name = "roomcast-socketio")]
    RoomcastSocketio,
}

impl Protocol {
    /// Whether the server is roomcast (its publish and member APIs).
    pub fn is_roomcast(self) -> bool {
        matches!(self, Protocol::Roomcast | Protocol::RoomcastSocketio)
    }

    /// Whether the wire is Socket.IO.
    pub fn is_socketio(self) -> bool {
        matches!(self, Protocol::Socketio | Protocol::RoomcastSocketio)
    }
}

/// One server process: where it listens and its pid (for CPU and RSS from `/proc`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Listening address (WebSocket and HTTP).
    pub addr: SocketAddr,
    /// Process id, when the load tester may read its `/proc` entry.
    #[serde(default)]
    pub pid: Option<u32>,
}

impl std::str::FromStr for Node {
    type Err = String;

    /// `ADDR` or `ADDR=PID`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, pid) = match s.split_once('=') {
            Some((addr, pid)) => (addr, Some(pid.parse::<u32>().map_err(|e| format!("pid {pid:?}: {e}"))?)),
            None => (s, None),
        };
        Ok(Self { addr: addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?, pid })
    }
}

/// A server under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// Name in reports: `roomcast`, `socket.io`, `socketioxide`.
    pub name: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// HS256 secret the nodes verify tokens with.
    pub secret: String,
    /// Bearer key of roomcast's publish API.
    #[serde(default)]
    pub api_key: Option<String>,
    /// PEM (PKCS#8) EC P-256 private key to mint ES256 tokens with.
    #[serde(default)]
    pub es256_key: Option<PathBuf>,
    /// The node for single-node scenarios.
    pub single: Node,
    /// Nodes sharing one Redis, for the cross-node scenario.
    #[serde(default)]
    pub cluster: Vec<Node>,
    /// A node verifying ES256 tokens (roomcast pins one algorithm per node); `single` when unset.
    #[serde(default)]
    pub es256: Option<Node>,
    /// The Redis process of `cluster`, for its CPU.
    #[serde(default)]
    pub redis_pid: Option<u32>,
    /// Where that Redis listens, for its own command counters (`INFO commandstats`).
    #[serde(default)]
    pub redis_addr: Option<SocketAddr>,
}

impl Target {
    /// Path of the publish endpoint.
    pub fn publish_path(&self) -> &'static str {
        match self.protocol {
            Protocol::Roomcast | Protocol::RoomcastSocketio => "/api/publish",
            Protocol::Socketio => "/publish",
        }
    }
}

/// Source address for the `i`th connection to `dest`: spread over 127.0.0.1-16 on loopback so that
/// no (source, destination) pair runs out of its ~28k ephemeral ports between runs.
pub fn source_for(dest: SocketAddr, i: usize) -> Option<IpAddr> {
    match dest.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 16) as u8))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_parses_with_and_without_pid() {
        let n: Node = "127.0.0.1:8080=42".parse().unwrap();
        assert_eq!((n.addr.port(), n.pid), (8080, Some(42)));
        assert_eq!("127.0.0.1:1".parse::<Node>().unwrap().pid, None);
        assert!("nope".parse::<Node>().is_err());
    }
}
