//! [`MessageReader`]: whole client messages out of WebSocket frames, with a size cap.
//!
//! Frames are parsed here rather than by fastwebsockets' read half, for memory: its read buffer
//! is 8 KiB per connection, allocated up front and held for the connection's life, which was
//! most of what an idle connection cost. This reader waits for data with a small buffer on the
//! stack and holds a heap buffer only while a frame is incomplete or more bytes are pending, so
//! an idle connection holds none.
//!
//! Checks: client frames must be masked, reserved bits clear, control frames final and at most
//! 125 bytes, opcodes known. Fragments are reassembled with the total capped at
//! `max_message_size` (over it the connection closes with 4009); text is checked for UTF-8 once
//! complete; binary messages or broken fragmentation close it with 4400. The reader never writes:
//! the connection decides what to answer to pings and closes.
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

/// A message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete text message (valid UTF-8).
    Text(Vec<u8>),
    /// A complete binary message (only from a reader made with [`MessageReader::with_binary`]).
    Binary(Vec<u8>),
    /// A ping with its payload, to be answered with a pong.
    Ping(Vec<u8>),
    /// A pong (answers a server ping).
    Pong,
    /// A close frame with its code, if it carried one.
    Close(Option<u16>),
}

/// Reads whole messages from the read half of a WebSocket.
#[derive(Debug)]
pub struct MessageReader<S> {
    stream: S,
    cap: usize,
    /// Bytes read and not yet consumed; empty (no allocation) between messages.
    buf: Vec<u8>,
    /// A fragmented message being reassembled, and whether it is binary.
    partial: Option<(bool, Vec<u8>)>,
    /// Whether binary messages are accepted (Socket.IO attachments) or break the protocol.
    binary: bool,
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
    /// A reader of messages up to `cap` bytes from `stream`, the server side of a socket.
    pub fn new(stream: S, cap: usize) -> Self {
        Self { stream, cap, buf: Vec::new(), partial: None, binary: false }
    }

    /// Like [`Self::new`], but binary messages are returned rather than refused.
    pub fn with_binary(stream: S, cap: usize) -> Self {
        Self { binary: true, ..Self::new(stream, cap) }
    }

    /// Reads until at least `need` bytes are buffered.
    async fn fill(&mut self, need: usize) -> Result<(), CloseReason> {
        while self.buf.len() < need {
            let n = if self.buf.is_empty() {
                let mut first = [0u8; IDLE_READ];
                let n = self.stream.read(&mut first).await.map_err(|_| CloseReason::ConnectionLost)?;
                self.buf.extend_from_slice(&first[..n]);
                n
            } else {
                self.buf.reserve(need - self.buf.len());
                self.stream.read_buf(&mut self.buf).await.map_err(|_| CloseReason::ConnectionLost)?
            };
            if n == 0 {
                return Err(CloseReason::ConnectionLost);
            }
        }
        Ok(())
    }

    async fn header(&mut self) -> Result<Header, CloseReason> {
        self.fill(2).await?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
            // Reserved bits without an extension, or an unmasked client frame.
            return Err(CloseReason::ProtocolViolation);
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
            return Err(CloseReason::ProtocolViolation);
        }
        if !matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
            return Err(CloseReason::ProtocolViolation);
        }
        let len = usize::try_from(len).ok().filter(|&l| l <= self.cap).ok_or(CloseReason::TooLarge)?;
        let at = 2 + extended;
        let mask = [self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]];
        Ok(Header { fin, opcode, mask, len: (at + 4, len) })
    }

    /// The next whole frame: its header and unmasked payload.
    async fn frame(&mut self) -> Result<(Header, Vec<u8>), CloseReason> {
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

    /// The next message, or why the connection must close.
    pub async fn next(&mut self) -> Result<Incoming, CloseReason> {
        loop {
            let (frame, payload) = self.frame().await?;
            match frame.opcode {
                OP_TEXT | OP_BINARY if self.partial.is_some() => return Err(CloseReason::ProtocolViolation),
                OP_BINARY if !self.binary => return Err(CloseReason::ProtocolViolation),
                OP_TEXT | OP_BINARY if frame.fin => return self.whole(frame.opcode == OP_BINARY, payload),
                OP_TEXT | OP_BINARY => self.partial = Some((frame.opcode == OP_BINARY, payload)),
                OP_CONTINUATION => {
                    let Some((_, partial)) = self.partial.as_mut() else {
                        return Err(CloseReason::ProtocolViolation);
                    };
                    if partial.len() + payload.len() > self.cap {
                        return Err(CloseReason::TooLarge);
                    }
                    partial.extend_from_slice(&payload);
                    if frame.fin {
                        let (binary, message) = self.partial.take().unwrap_or_default();
                        return self.whole(binary, message);
                    }
                }
                OP_CLOSE => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Incoming::Close(code));
                }
                OP_PING => return Ok(Incoming::Ping(payload)),
                OP_PONG => return Ok(Incoming::Pong),
                _ => return Err(CloseReason::ProtocolViolation),
            }
        }
    }

    /// A complete message; text must be UTF-8.
    fn whole(&self, binary: bool, message: Vec<u8>) -> Result<Incoming, CloseReason> {
        if binary {
            return Ok(Incoming::Binary(message));
        }
        if std::str::from_utf8(&message).is_err() {
            return Err(CloseReason::ProtocolViolation);
        }
        Ok(Incoming::Text(message))
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
    async fn a_binary_reader_reassembles_binary_and_still_checks_text() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let bytes =
            [client_frame(false, 0x2, &[1, 2]), client_frame(true, 0x0, &[3]), client_frame(true, 0x1, &[0xff])]
                .concat();
        client.write_all(&bytes).await.unwrap();
        let mut reader = MessageReader::with_binary(server, 1024);
        assert_eq!(reader.next().await, Ok(Incoming::Binary(vec![1, 2, 3])));
        assert_eq!(reader.next().await, Err(CloseReason::ProtocolViolation));
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
