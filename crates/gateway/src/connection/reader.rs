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

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::close::CloseReason;

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

/// Reads whole messages from the read half of a WebSocket.
#[derive(Debug)]
pub struct MessageReader<S> {
    stream: S,
    cap: usize,
    binary: bool,
    /// Bytes read and not yet consumed; empty (no allocation) between messages.
    buf: Vec<u8>,
    /// A fragmented message so far: whether it is binary, and its bytes.
    partial: Option<(bool, Vec<u8>)>,
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
                OP_TEXT | OP_BINARY if frame.fin => return whole(frame.opcode == OP_BINARY, payload),
                OP_TEXT | OP_BINARY => self.partial = Some((frame.opcode == OP_BINARY, payload)),
                OP_CONTINUATION => {
                    let Some((_, partial)) = self.partial.as_mut() else {
                        return Err(FrameError::Protocol);
                    };
                    if partial.len() + payload.len() > self.cap {
                        return Err(FrameError::TooLarge);
                    }
                    partial.extend_from_slice(&payload);
                    if frame.fin {
                        let (binary, message) = self.partial.take().unwrap_or_default();
                        return whole(binary, message);
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

/// A reassembled message; text must be UTF-8.
fn whole(binary: bool, payload: Vec<u8>) -> Result<Message, FrameError> {
    if binary {
        Ok(Message::Binary(payload))
    } else if std::str::from_utf8(&payload).is_err() {
        Err(FrameError::InvalidUtf8)
    } else {
        Ok(Message::Text(payload))
    }
}

/// The code of a close frame's body (none when empty); a malformed body is [`FrameError::BadClose`].
fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    async fn read_all(bytes: Vec<u8>, cap: usize) -> Vec<Result<Incoming, CloseReason>> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&bytes).await.unwrap();
        drop(client);
        let mut reader = MessageReader::new(server, cap);
        let mut out = Vec::new();
        loop {
            let next = reader.next().await;
            let stop = next.is_err();
            out.push(next);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn fragments_are_joined_and_capped_in_total() {
        let mut bytes = client_frame(false, 0x1, b"{\"type\":");
        bytes.extend(client_frame(true, 0x0, b"\"ping\"}"));
        let got = read_all(bytes, 1024).await;
        assert_eq!(got[0], Ok(Incoming::Text(b"{\"type\":\"ping\"}".to_vec())));
        assert_eq!(got[1], Err(CloseReason::ConnectionLost));

        // Two 600-byte fragments, each under the 1 KiB cap, together over it.
        let mut bytes = client_frame(false, 0x1, &[b'a'; 600]);
        bytes.extend(client_frame(true, 0x0, &[b'a'; 600]));
        assert_eq!(read_all(bytes, 1024).await[0], Err(CloseReason::TooLarge));
    }

    #[tokio::test]
    async fn a_message_of_exactly_the_cap_passes_and_one_more_byte_does_not() {
        let got = read_all(client_frame(true, 0x1, &[b'a'; 1024]), 1024).await;
        assert!(matches!(&got[0], Ok(Incoming::Text(t)) if t.len() == 1024));
        let got = read_all(client_frame(true, 0x1, &[b'a'; 1025]), 1024).await;
        assert_eq!(got[0], Err(CloseReason::TooLarge));
    }

    #[tokio::test]
    async fn binary_bad_utf8_and_stray_continuations_are_protocol_violations() {
        for bytes in [
            client_frame(true, 0x2, b"bin"),
            client_frame(true, 0x1, &[0xff, 0xfe]),
            client_frame(true, 0x0, b"x"),
            [client_frame(false, 0x1, b"a"), client_frame(false, 0x1, b"b")].concat(),
            [client_frame(false, 0x1, b"a"), client_frame(true, 0x0, &[0xff])].concat(),
        ] {
            assert_eq!(read_all(bytes, 1024).await[0], Err(CloseReason::ProtocolViolation));
        }
    }

    #[tokio::test]
    async fn malformed_close_frames_are_their_own_error() {
        let close = |payload: &[u8]| client_frame(true, 0x8, payload);
        for payload in [&[0x03][..], &[0x03, 0xe7], &[0x03, 0xed], &[0x03, 0xee], &[0x03, 0xf7], &[0x0b, 0xb7]] {
            // 1 byte; 999; 1005; 1006; 1015; 2999.
            assert_eq!(read_all(close(payload), 1024).await[0], Err(CloseReason::MalformedClose), "{payload:?}");
        }
        let bad_reason = close(&[0x03, 0xe8, 0xff]);
        assert_eq!(read_all(bad_reason, 1024).await[0], Err(CloseReason::MalformedClose));
        for (payload, code) in [(&[][..], None), (&[0x03, 0xe8, b'o', b'k'], Some(1000)), (&[0x0f, 0xa0], Some(4000))] {
            assert_eq!(read_all(close(payload), 1024).await[0], Ok(Incoming::Close(code)), "{payload:?}");
        }
        assert!((0..=u16::MAX).filter(|c| valid_close_code(*c)).count() == 4 + 5 + 2000);
    }

    #[tokio::test]
    async fn a_reader_accepting_binary_returns_it_whole_and_maps_errors_to_rfc_codes() {
        let mut bytes = client_frame(false, 0x2, &[0, 1]);
        bytes.extend(client_frame(true, 0x9, b"mid"));
        bytes.extend(client_frame(true, 0x0, &[0xff]));
        bytes.extend(client_frame(true, 0x1, &[0xc3]));
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&bytes).await.unwrap();
        let mut reader = MessageReader::accepting_binary(server, 1024);
        assert_eq!(reader.read().await, Ok(Message::Ping(b"mid".to_vec())), "control frames between fragments");
        assert_eq!(reader.read().await, Ok(Message::Binary(vec![0, 1, 0xff])));
        assert_eq!(reader.read().await, Err(FrameError::InvalidUtf8));
        assert_eq!(FrameError::InvalidUtf8.rfc_code(), Some(1007));
        assert_eq!(FrameError::BadClose.rfc_code(), Some(1002));
        assert_eq!(FrameError::TooLarge.rfc_code(), Some(1009));
        assert_eq!(FrameError::Lost.rfc_code(), None);
    }

    #[tokio::test]
    async fn control_frames_come_through() {
        let bytes =
            [client_frame(true, 0x9, b"p"), client_frame(true, 0xA, b""), client_frame(true, 0x8, &[0x03, 0xe8])]
                .concat();
        let got = read_all(bytes, 1024).await;
        assert_eq!(got[0], Ok(Incoming::Ping(b"p".to_vec())));
        assert_eq!(got[1], Ok(Incoming::Pong));
        assert_eq!(got[2], Ok(Incoming::Close(Some(1000))));
    }
}
