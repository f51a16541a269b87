//! [`Error`]: why a publisher call failed, split by what the caller should do about it.

use roomcast_proto::RoomNameError;

/// A failed publisher call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or did not answer in time. Nothing may have happened, or the
    /// write may have landed: retry with the same message id.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error (a script failure, a misconfigured server).
    #[error("redis error: {0}")]
    Redis(String),
    /// The room name is not valid; retrying will not help.
    #[error("invalid room: {0}")]
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
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            Error::Unavailable(e.to_string())
        } else {
            Error::Redis(e.to_string())
        }
    }
}
