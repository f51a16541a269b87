//! [`MessageReader`]: whole client messages out of WebSocket frames, with a size cap.
//!
//! Frames are parsed here rather than by fastwebsockets' read half, for memory: its read buffer
//! is 8 KiB per connection, allocated up front and held for the connection's life, which was
//! most of what an idle connection cost. This reader waits for data with a small buffer on the
//! stack and holds a heap buffer only while a frame is incomplete or more bytes are pending, so
//! an idle connection holds none.
//!
//! Checks (RFC 6455 §5): client frames must be masked, reserved bits clear, control frames final
//! and at most 125 bytes, opcodes known. Fragments are reassembled with the total capped at
//! `max_message_size`; text is checked for UTF-8 once complete. A close frame must have no body
//! or a valid code (1000-1003, 1007-1011, 3000-4999) and a UTF-8 reason (§7.4): anything else is
//! answered 1002. The reader never writes: the connection decides what to answer to pings and
//! closes. Each failure is a [`FrameError`]; the gateway maps them to its close codes (4400,
//! 4009, 1002) and the Autobahn echo example to RFC 6455's (1002, 1007, 1009).
//!
//! Binary messages are a protocol violation for the gateway (4400, at their first frame); a
//! reader made with [`MessageReader::accepting_binary`] returns them instead, for the echo
//! example that runs the Autobahn conformance suite against this reader.
//!
//! [`MessageReader::next`] consumes bytes only once a whole frame is buffered, so a `next`
//! future dropped half-way (in a `select!`) loses nothing.
//!
//! # Layout
//! - `reader.rs`: [`MessageReader`], frame headers and messages.
//! - `partial.rs`: a fragmented message, its text checked fragment by fragment (invalid UTF-8
//!   fails at the fragment that breaks it).
//! - `frame_error.rs`: [`FrameError`] and its close codes; what a well-formed close frame is.

mod frame_error;
mod partial;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::close::CloseReason;
use frame_error::close_code;
pub use frame_error::{FrameError, valid_close_code};
use partial::Partial;

/// Bytes read at once while the connection is idle, into a buffer on the task's stack.
const IDLE_READ: usize = 512;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A message or control frame from the client, as the gateway takes them (no binary).
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete text message (valid UTF-8).
    Text(Vec<u8>),
    /// A ping with its payload, to be answered with a pong.
    Ping(Vec<u8>),
    /// A pong (answers a server ping).
    Pong,
    /// A well-formed close frame with its code, if it carried one.
    Close(Option<u16>),
}

/// Any message or control frame, binary included ([`MessageReader::read`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A complete text message (valid UTF-8).
    Text(Vec<u8>),
    /// A complete binary message (only from a reader that accepts them).
    Binary(Vec<u8>),
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A well-formed close frame with its code, if it carried one.
    Close(Option<u16>),
}

/// Reads whole messages from the read half of a WebSocket.
#[derive(Debug)]
pub struct MessageReader<S> {
    stream: S,
    cap: usize,
    binary: bool,
    /// Bytes read and not yet consumed; empty (no allocation) between messages.
    buf: Vec<u8>,
    /// A fragmented message so far.
    partial: Option<Partial>,
}

/// One parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header length, payload length.
    len: (usize, usize),
}

impl<S: AsyncRead + Unpin> MessageReader<S> {
    /// A reader of text messages up to `cap` bytes from `stream`, the server side of a socket.
    pub fn new(stream: S, cap: usize) -> Self {
        Self { stream, cap, binary: false, buf: Vec::new(), partial: None }
    }

    /// A reader that also returns binary messages (from [`Self::read`]).
    pub fn accepting_binary(stream: S, cap: usize) -> Self {
        Self { binary: true, ..Self::new(stream, cap) }
    }

    /// The stream back, once no more messages are wanted (bytes buffered are dropped).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Reads until at least `need` bytes are buffered.
    async fn fill(&mut self, need: usize) -> Result<(), FrameError> {
        while self.buf.len() < need {
            let n = if self.buf.is_empty() {
                let mut first = [0u8; IDLE_READ];
                let n = self.stream.read(&mut first).await.map_err(|_| FrameError::Lost)?;
                self.buf.extend_from_slice(&first[..n]);
                n
            } else {
                self.buf.reserve(need - self.buf.len());
                self.stream.read_buf(&mut self.buf).await.map_err(|_| FrameError::Lost)?
            };
            if n == 0 {
                return Err(FrameError::Lost);
            }
        }
        Ok(())
    }

    async fn header(&mut self) -> Result<Header, FrameError> {
        self.fill(2).await?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
            // Reserved bits without an extension, or an unmasked client frame.
            return Err(FrameError::Protocol);
        }
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        let extended = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        self.fill(2 + extended + 4).await?;
        let len = match extended {
            2 => u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
            8 => u64::from_be_bytes(self.buf[2..10].try_into().expect("8 bytes")),
            _ => u64::from(b1 & 0x7f),
        };
        if opcode >= OP_CLOSE && (!fin || len > 125) {
            return Err(FrameError::Protocol);
        }
        if !matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
            return Err(FrameError::Protocol);
        }
        if opcode == OP_BINARY && !self.binary {
            return Err(FrameError::Binary);
        }
        let len = usize::try_from(len).ok().filter(|&l| l <= self.cap).ok_or(FrameError::TooLarge)?;
        let at = 2 + extended;
        let mask = [self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]];
        Ok(Header { fin, opcode, mask, len: (at + 4, len) })
    }

    /// The next whole frame: its header and unmasked payload.
    async fn frame(&mut self) -> Result<(Header, Vec<u8>), FrameError> {
        let header = self.header().await?;
        let (head, len) = header.len;
        self.fill(head + len).await?;
        let payload: Vec<u8> =
            self.buf[head..head + len].iter().enumerate().map(|(i, b)| b ^ header.mask[i % 4]).collect();
        if self.buf.len() == head + len {
            // Give the buffer back: an idle connection holds no read buffer.
            self.buf = Vec::new();
        } else {
            self.buf.drain(..head + len);
        }
        Ok((header, payload))
    }

    /// The next message for the gateway, or why the connection must close.
    pub async fn next(&mut self) -> Result<Incoming, CloseReason> {
        Ok(match self.read().await? {
            Message::Text(text) => Incoming::Text(text),
            // Only a reader made to accept binary returns it.
            Message::Binary(_) => return Err(CloseReason::ProtocolViolation),
            Message::Ping(payload) => Incoming::Ping(payload),
            Message::Pong => Incoming::Pong,
            Message::Close(code) => Incoming::Close(code),
        })
    }

    /// The next message or control frame, binary included when the reader accepts it.
    pub async fn read(&mut self) -> Result<Message, FrameError> {
        loop {
            let (frame, payload) = self.frame().await?;
            match frame.opcode {
                OP_TEXT | OP_BINARY if self.partial.is_some() => return Err(FrameError::Protocol),
                OP_TEXT | OP_BINARY => {
                    let partial = Partial::new(frame.opcode == OP_BINARY, payload)?;
                    if frame.fin {
                        return partial.finish();
                    }
                    self.partial = Some(partial);
                }
                OP_CONTINUATION => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(FrameError::Protocol);
                    };
                    if partial.bytes.len() + payload.len() > self.cap {
                        return Err(FrameError::TooLarge);
                    }
                    partial.push(&payload)?;
                    if frame.fin {
                        return self.partial.take().map_or(Err(FrameError::Protocol), Partial::finish);
                    }
                }
                OP_CLOSE => return close_code(&payload).map(Message::Close),
                OP_PING => return Ok(Message::Ping(payload)),
                OP_PONG => return Ok(Message::Pong),
                _ => return Err(FrameError::Protocol),
            }
        }
    }
}

#[cfg(test)]
mod tests;
