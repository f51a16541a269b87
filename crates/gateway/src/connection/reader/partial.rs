//! [`Partial`]: a fragmented message being reassembled, its text checked as it arrives.

use super::{FrameError, Message};

/// A fragmented message being reassembled.
#[derive(Debug)]
pub(super) struct Partial {
    binary: bool,
    pub(super) bytes: Vec<u8>,
    /// How much of a text message is known to be valid UTF-8 so far: invalid text fails at the
    /// fragment that breaks it, not only once the message is complete.
    checked: usize,
}

impl Partial {
    pub(super) fn new(binary: bool, bytes: Vec<u8>) -> Result<Self, FrameError> {
        let mut partial = Self { binary, bytes, checked: 0 };
        partial.check()?;
        Ok(partial)
    }

    pub(super) fn push(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        self.bytes.extend_from_slice(payload);
        self.check()
    }

    /// Checks the text added since the last check; a character cut at the end may still be
    /// completed by the next fragment.
    fn check(&mut self) -> Result<(), FrameError> {
        if self.binary {
            return Ok(());
        }
        match std::str::from_utf8(&self.bytes[self.checked..]) {
            Ok(_) => self.checked = self.bytes.len(),
            Err(e) if e.error_len().is_some() => return Err(FrameError::InvalidUtf8),
            Err(e) => self.checked += e.valid_up_to(),
        }
        Ok(())
    }

    /// The whole message, once its last fragment is in.
    pub(super) fn finish(self) -> Result<Message, FrameError> {
        if self.binary {
            return Ok(Message::Binary(self.bytes));
        }
        if std::str::from_utf8(&self.bytes[self.checked..]).is_err() {
            return Err(FrameError::InvalidUtf8);
        }
        Ok(Message::Text(self.bytes))
    }
}
