//! [`Lifetime`]: the one guard a connection task holds from the moment it is authenticated.
//!
//! Whatever ends the task (the read loop returning, an early return, a panic) drops it, and
//! dropping it does all of the ending: the registration goes (every room is left, and a room
//! left empty lets its Redis subscription go), the connection is counted as closed, and its one
//! `connection closed` line is logged. A task that panicked also closes its outbox with
//! [`CloseReason::Internal`], so that its writer sends 1011 and stops.

use std::sync::Arc;

use tokio::time::Instant;

use crate::close::CloseReason;
use crate::node::Node;
use crate::rooms::{Member, Registration};

/// An authenticated connection's registration, counted and logged when it ends.
#[derive(Debug)]
pub struct Lifetime {
    node: Arc<Node>,
    member: Arc<Member>,
    opened: Instant,
    _registration: Registration,
}

impl Lifetime {
    /// Registers `member` with the node's registry and counts it as open.
    pub fn begin(node: &Arc<Node>, member: &Arc<Member>) -> Self {
        let registration = node.registry.register(Arc::clone(member));
        node.metrics.connection_opened();
        Self { node: Arc::clone(node), member: Arc::clone(member), opened: Instant::now(), _registration: registration }
    }
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(conn = self.member.id, "connection task panicked; releasing the connection");
            self.member.close(CloseReason::Internal);
        }
        let reason = self.member.outbox.close_reason().unwrap_or(CloseReason::ConnectionLost);
        self.node.metrics.connection_closed(&reason);
        tracing::info!(
            conn = self.member.id,
            user = %self.member.user,
            reason = reason.label(),
            code = reason.code(),
            secs = self.opened.elapsed().as_secs(),
            "connection closed"
        );
        // The registration is dropped after this: the connection leaves every room.
    }
}
