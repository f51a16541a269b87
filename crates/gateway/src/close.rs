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
    /// The node could not reach its broker to join the connection's own rooms (1012: the
    /// client reconnects, to another node if this one stays cut off).
    BrokerUnavailable,
    /// The connection's task failed (a bug; 1011). Its rooms and registration are released.
    Internal,
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
    /// A close frame from the client with a malformed body: 1 byte, a code that may not be
    /// sent (999, 1005, ...), a reason that is not UTF-8 (1002, as RFC 6455 §7.4 asks).
    MalformedClose,
    /// Nothing arrived from the client within the idle timeout (1001).
    IdleTimeout,
    /// A backend closed the user's connections through `/api/disconnect`.
    Disconnected(u16),
}

impl CloseReason {
    /// Every [`Self::label`], so that each series of the close metric exists from start-up.
    pub const LABELS: &[&str] = &[
        "client_closed",
        "connection_lost",
        "shutdown",
        "broker_unavailable",
        "internal_error",
        "token_expired",
        "token_invalid",
        "auth_timeout",
        "forbidden",
        "slow_consumer",
        "too_large",
        "too_many_connections",
        "protocol_violation",
        "malformed_close",
        "idle_timeout",
        "disconnected",
    ];

    /// The close code to send, or `None` when the socket is already gone.
    pub fn code(&self) -> Option<u16> {
        Some(match self {
            CloseReason::ClientClosed(code) => *code,
            CloseReason::ConnectionLost => return None,
            CloseReason::Shutdown | CloseReason::BrokerUnavailable => 1012,
            CloseReason::Internal => 1011,
            CloseReason::AuthFailed(AuthError::Expired) | CloseReason::TokenExpired => 4001,
            CloseReason::AuthFailed(AuthError::Invalid(_)) | CloseReason::AuthTimeout | CloseReason::Forbidden => 4003,
            CloseReason::SlowConsumer => 4008,
            CloseReason::TooLarge => 4009,
            CloseReason::TooManyConnections => 4029,
            CloseReason::ProtocolViolation => 4400,
            CloseReason::MalformedClose => 1002,
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
            CloseReason::BrokerUnavailable => "broker_unavailable",
            CloseReason::Internal => "internal_error",
            CloseReason::AuthFailed(AuthError::Expired) => "token_expired",
            CloseReason::AuthFailed(AuthError::Invalid(_)) => "token_invalid",
            CloseReason::AuthTimeout => "auth_timeout",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::Forbidden => "forbidden",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::TooLarge => "too_large",
            CloseReason::TooManyConnections => "too_many_connections",
            CloseReason::ProtocolViolation => "protocol_violation",
            CloseReason::MalformedClose => "malformed_close",
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
        assert_eq!(CloseReason::MalformedClose.code(), Some(1002));
        assert_eq!(CloseReason::ConnectionLost.code(), None);
        assert_eq!(CloseReason::BrokerUnavailable.code(), Some(1012));
        assert_eq!(CloseReason::Internal.code(), Some(1011));
    }

    #[test]
    fn every_label_is_listed() {
        let reasons = [
            CloseReason::ClientClosed(1000),
            CloseReason::ConnectionLost,
            CloseReason::Shutdown,
            CloseReason::BrokerUnavailable,
            CloseReason::Internal,
            CloseReason::AuthFailed(AuthError::Expired),
            CloseReason::AuthFailed(AuthError::Invalid(String::new())),
            CloseReason::AuthTimeout,
            CloseReason::TokenExpired,
            CloseReason::Forbidden,
            CloseReason::SlowConsumer,
            CloseReason::TooLarge,
            CloseReason::TooManyConnections,
            CloseReason::ProtocolViolation,
            CloseReason::MalformedClose,
            CloseReason::IdleTimeout,
            CloseReason::Disconnected(4003),
        ];
        for reason in &reasons {
            assert!(CloseReason::LABELS.contains(&reason.label()), "{reason:?}");
        }
        assert_eq!(CloseReason::LABELS.len(), reasons.len() - 1, "token_expired is two reasons' label");
    }
}
