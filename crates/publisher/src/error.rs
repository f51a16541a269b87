//! [`Error`]: why a publisher call failed, split by what the caller should do about it.
//!
//! The Redis error behind a failure is kept as the [source](std::error::Error::source), not
//! repeated in the message: print the chain (`anyhow`'s `{:#}` does) to see both.

use redis::{ErrorKind, RetryMethod};
use roomcast_proto::RoomNameError;

/// A failed publisher call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached, did not answer in time, or is not serving now (loading,
    /// failing over). Nothing may have happened, or the write may have landed: retry with the
    /// same message id.
    #[error("redis unavailable")]
    Unavailable(#[source] redis::RedisError),
    /// Redis answered with an error that a retry will not change (a script failure, a key of
    /// the wrong type, a missing permission).
    #[error("redis refused the command")]
    Refused(#[source] redis::RedisError),
    /// Redis answered something this crate does not understand (a bug, or keys written by
    /// something else).
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The room name is not valid; retrying will not help.
    #[error("invalid room")]
    InvalidRoom(#[from] RoomNameError),
    /// An argument is not acceptable (empty event name, data that is not JSON, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            // LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, READONLY...: the server will serve again.
            || (matches!(e.kind(), ErrorKind::Server(_)) && !matches!(e.retry_method(), RetryMethod::NoRetry));
        if transient { Error::Unavailable(e) } else { Error::Refused(e) }
    }
}
