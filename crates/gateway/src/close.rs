//! [`CloseReason`]: every way a connection ends, and what each one means on the wire.
//!
//! One value decides the close code sent to the client, the log line and the `reason` label of
//! `roomcast_connections_closed_total`, so the three never disagree.

use crate::auth::AuthError;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame (its code is echoed).
    ClientClosed(u16),
    /// The socket failed or hit end-of-file without a close frame.
    ConnectionLost,
    /// The node is shutting down or draining (1012).
    Shutdown,
    /// The token was refused at connect (4001 expired, 4003 otherwise).
    AuthFailed(AuthError),
    /// No token and no `auth` frame within the auth timeout (4003).
    AuthTimeout,
    /// The token expired and no `refresh` arrived (4001).
    TokenExpired,
    /// A refresh token for another user or org (4003).
    Forbidden,
    /// The send queue overflowed (4008).
    SlowConsumer,
    /// A client message over the size limit (4009).
    TooLarge,
    /// The node is at its connection limit (4029).
    TooManyConnections,
    /// A frame that breaks the protocol: binary, bad UTF-8, bad fragmentation (4400).
    ProtocolViolation,
    /// Nothing arrived from the client within the idle timeout (1001).
    IdleTimeout,
    /// A backend closed the user's connections through `/api/disconnect`.
    Disconnected(u16),
}

impl CloseReason {
    /// The close code to send, or `None` when the socket is already gone.
    pub fn code(&self) -> Option<u16> {
        Some(match self {
            CloseReason::ClientClosed(code) => *code,
            CloseReason::ConnectionLost => return None,
            CloseReason::Shutdown => 1012,
            CloseReason::AuthFailed(AuthError::Expired) | CloseReason::TokenExpired => 4001,
            CloseReason::AuthFailed(AuthError::Invalid(_)) | CloseReason::AuthTimeout | CloseReason::Forbidden => 4003,
            CloseReason::SlowConsumer => 4008,
            CloseReason::TooLarge => 4009,
            CloseReason::TooManyConnections => 4029,
            CloseReason::ProtocolViolation => 4400,
            CloseReason::IdleTimeout => 1001,
            CloseReason::Disconnected(code) => *code,
        })
    }

    /// Short text sent in the close frame and used as the metric label.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::ClientClosed(_) => "client_closed",
            CloseReason::ConnectionLost => "connection_lost",
            CloseReason::Shutdown => "shutdown",
            CloseReason::AuthFailed(AuthError::Expired) => "token_expired",
            CloseReason::AuthFailed(AuthError::Invalid(_)) => "token_invalid",
            CloseReason::AuthTimeout => "auth_timeout",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::Forbidden => "forbidden",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::TooLarge => "too_large",
            CloseReason::TooManyConnections => "too_many_connections",
            CloseReason::ProtocolViolation => "protocol_violation",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Disconnected(_) => "disconnected",
        }
    }

    /// Whether frames still queued are dropped rather than written before the close frame.
    pub fn drops_queue(&self) -> bool {
        // A slow consumer is closed because its queue is full: writing it first defeats the point.
        matches!(self, CloseReason::SlowConsumer | CloseReason::ConnectionLost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_contract() {
        assert_eq!(CloseReason::Shutdown.code(), Some(1012));
        assert_eq!(CloseReason::AuthFailed(AuthError::Expired).code(), Some(4001));
        assert_eq!(CloseReason::AuthFailed(AuthError::Invalid("x".into())).code(), Some(4003));
        assert_eq!(CloseReason::TokenExpired.code(), Some(4001));
        assert_eq!(CloseReason::AuthTimeout.code(), Some(4003));
        assert_eq!(CloseReason::SlowConsumer.code(), Some(4008));
        assert_eq!(CloseReason::TooLarge.code(), Some(4009));
        assert_eq!(CloseReason::TooManyConnections.code(), Some(4029));
        assert_eq!(CloseReason::ProtocolViolation.code(), Some(4400));
        assert_eq!(CloseReason::ConnectionLost.code(), None);
    }
}
