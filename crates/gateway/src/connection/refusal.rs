//! [`Refusal`]: a command's `error` reply before it is sent, and [`Reply`], what a command
//! handler returns (the session and the read-only commands of `hear.rs` share them).

use roomcast_proto::frames::{ErrorCode, OkReply};

use crate::broker::BrokerError;

/// An `error` reply to a command, before it is sent.
pub(super) struct Refusal {
    pub(super) code: ErrorCode,
    pub(super) message: String,
}

impl Refusal {
    pub(super) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// A broker failure, as the client sees it: `internal`, without the node's internals.
    pub(super) fn broker(e: &BrokerError) -> Self {
        let message = match e {
            BrokerError::Unavailable(_) => "the node cannot reach its broker; retry after a backoff",
            BrokerError::Refused(_) | BrokerError::Internal(_) => "the node's broker failed; retry after a backoff",
        };
        Self::new(ErrorCode::Internal, message)
    }
}

pub(super) type Reply = Result<Option<OkReply>, Refusal>;
