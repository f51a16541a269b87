//! [`BrokerError`]: why a broker operation failed, by what the caller does about it.
//!
//! Callers branch on the kind: the API answers 503 for [`BrokerError::Unavailable`] (the
//! backend retries, with the same message id) and 500 for the others; a subscribe answers
//! `internal` either way. The cause is kept as the error's source and shown by [`causes`].

use std::error::Error as StdError;

/// The cause of a [`BrokerError`].
pub type Cause = Box<dyn StdError + Send + Sync>;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached or is not serving now; the operation may be retried.
    #[error("broker unavailable")]
    Unavailable(#[source] Cause),
    /// The broker refused the operation because of the data or a script (retrying the same
    /// call will not help).
    #[error("refused by the broker")]
    Refused(#[source] Cause),
    /// Something the node did not expect (a reply it cannot read); a bug to report.
    #[error("broker error")]
    Internal(#[source] Cause),
}

impl BrokerError {
    /// The broker is unavailable because of `why`.
    pub fn unavailable(why: impl Into<Cause>) -> Self {
        BrokerError::Unavailable(why.into())
    }
}

impl From<roomcast_publisher::Error> for BrokerError {
    fn from(e: roomcast_publisher::Error) -> Self {
        use roomcast_publisher::Error as E;
        match e {
            E::Unavailable(_) => BrokerError::Unavailable(Box::new(e)),
            E::Refused(_) | E::InvalidRoom(_) | E::InvalidArgument(_) => BrokerError::Refused(Box::new(e)),
            E::Reply(_) => BrokerError::Internal(Box::new(e)),
        }
    }
}

/// `e` and each of its sources, joined with `": "`, for a log line or a start-up error.
pub fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_publisher_error_and_keep_the_cause() {
        let refused = BrokerError::from(roomcast_publisher::Error::InvalidArgument("bad".into()));
        assert!(matches!(refused, BrokerError::Refused(_)));
        assert_eq!(causes(&refused), "refused by the broker: invalid argument: bad");
        let internal = BrokerError::from(roomcast_publisher::Error::Reply("odd".into()));
        assert!(matches!(internal, BrokerError::Internal(_)));
        let down = BrokerError::unavailable("not connected to Redis");
        assert_eq!(causes(&down), "broker unavailable: not connected to Redis");
    }
}
