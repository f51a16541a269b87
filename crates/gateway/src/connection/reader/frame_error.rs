//! [`FrameError`]: why a client's frames cannot be read any further, and what each reason is
//! answered with; and what a well-formed close frame is (RFC 6455 §7.4).

use crate::close::CloseReason;

/// Why no more messages can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The socket failed, or ended without a close frame.
    #[error("the connection was lost")]
    Lost,
    /// A frame that breaks RFC 6455: reserved bits, unmasked, a long or fragmented control
    /// frame, an unknown opcode, broken fragmentation.
    #[error("a frame that breaks the WebSocket protocol")]
    Protocol,
    /// A close frame with a 1-byte body, a code that may not be sent, or a reason that is not
    /// UTF-8.
    #[error("a malformed close frame")]
    BadClose,
    /// A text message that is not UTF-8.
    #[error("text that is not UTF-8")]
    InvalidUtf8,
    /// A binary frame, to a reader that does not accept them.
    #[error("a binary frame")]
    Binary,
    /// A message over the size cap.
    #[error("a message over the size limit")]
    TooLarge,
}

impl FrameError {
    /// The RFC 6455 close code this failure is answered with, for a plain WebSocket endpoint;
    /// `None` when the socket is gone.
    pub fn rfc_code(self) -> Option<u16> {
        match self {
            FrameError::Lost => None,
            FrameError::Protocol | FrameError::BadClose => Some(1002),
            FrameError::Binary => Some(1003),
            FrameError::InvalidUtf8 => Some(1007),
            FrameError::TooLarge => Some(1009),
        }
    }
}

impl From<FrameError> for CloseReason {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Lost => CloseReason::ConnectionLost,
            FrameError::Protocol | FrameError::InvalidUtf8 | FrameError::Binary => CloseReason::ProtocolViolation,
            FrameError::BadClose => CloseReason::MalformedClose,
            FrameError::TooLarge => CloseReason::TooLarge,
        }
    }
}

/// Whether a client may send `code` in a close frame (RFC 6455 §7.4: 1004-1006 and 1015 are
/// reserved, 1012-2999 unassigned for this use).
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// The code of a close frame's body (none when empty); a malformed body is [`FrameError::BadClose`].
pub(super) fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::BadClose),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) || std::str::from_utf8(reason).is_err() {
                return Err(FrameError::BadClose);
            }
            Ok(Some(code))
        }
    }
}
