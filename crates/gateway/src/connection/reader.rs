//! [`MessageReader`]: whole client messages out of WebSocket frames, with a size cap.
//!
//! fastwebsockets 0.10 caps single frames only and its fragment collector grows without bound,
//! so fragments are reassembled here: the total is capped at `max_message_size` (over it the
//! connection closes with 4009), text is checked for UTF-8 once complete, and binary messages
//! or broken fragmentation close it with 4400. Auto-pong and auto-close are off: the reader
//! never writes, the connection decides what to answer.
//!
//! `read_frame` is not cancel-safe: a [`MessageReader::next`] future dropped half-way leaves
//! the stream out of step. Callers drop it only when they abandon the connection.

use fastwebsockets::{OpCode, Role, WebSocketError, WebSocketRead};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::close::CloseReason;

/// A message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete text message (valid UTF-8).
    Text(Vec<u8>),
    /// A ping with its payload, to be answered with a pong.
    Ping(Vec<u8>),
    /// A pong (answers a server ping).
    Pong,
    /// A close frame with its code, if it carried one.
    Close(Option<u16>),
}

/// Reads whole messages from the read half of a WebSocket.
pub struct MessageReader<S> {
    ws: WebSocketRead<S>,
    cap: usize,
    partial: Option<Vec<u8>>,
}

impl<S> std::fmt::Debug for MessageReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader").field("cap", &self.cap).finish_non_exhaustive()
    }
}

impl<S: AsyncRead + Unpin> MessageReader<S> {
    /// A reader of messages up to `cap` bytes from `stream`, the server side of a socket.
    pub fn new(stream: S, cap: usize) -> Self {
        // The write half given here is never used: with auto-pong and auto-close off,
        // read_frame has nothing to send.
        let (mut ws, _unused) = fastwebsockets::after_handshake_split(stream, Discard, Role::Server);
        ws.set_auto_close(false);
        ws.set_auto_pong(false);
        // The library refuses a frame when `len >= max`; a message of exactly `cap` is allowed.
        ws.set_max_message_size(cap + 1);
        Self { ws, cap, partial: None }
    }

    /// The next message, or why the connection must close.
    pub async fn next(&mut self) -> Result<Incoming, CloseReason> {
        loop {
            let frame =
                self.ws.read_frame(&mut |_| async { Ok::<(), std::io::Error>(()) }).await.map_err(close_reason)?;
            match frame.opcode {
                OpCode::Text if self.partial.is_some() => {
                    return Err(CloseReason::ProtocolViolation);
                }
                // read_frame has already checked UTF-8 of a final frame.
                OpCode::Text if frame.fin => return Ok(Incoming::Text(frame.payload.to_vec())),
                OpCode::Text => self.partial = Some(frame.payload.to_vec()),
                OpCode::Continuation => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(CloseReason::ProtocolViolation);
                    };
                    if partial.len() + frame.payload.len() > self.cap {
                        return Err(CloseReason::TooLarge);
                    }
                    partial.extend_from_slice(&frame.payload);
                    if frame.fin {
                        let text = self.partial.take().unwrap_or_default();
                        if std::str::from_utf8(&text).is_err() {
                            return Err(CloseReason::ProtocolViolation);
                        }
                        return Ok(Incoming::Text(text));
                    }
                }
                OpCode::Binary => return Err(CloseReason::ProtocolViolation),
                OpCode::Close => {
                    let code =
                        (frame.payload.len() >= 2).then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                    return Ok(Incoming::Close(code));
                }
                OpCode::Ping => return Ok(Incoming::Ping(frame.payload.to_vec())),
                OpCode::Pong => return Ok(Incoming::Pong),
            }
        }
    }
}

fn close_reason(e: WebSocketError) -> CloseReason {
    match e {
        WebSocketError::FrameTooLarge => CloseReason::TooLarge,
        WebSocketError::UnexpectedEOF
        | WebSocketError::ConnectionClosed
        | WebSocketError::IoError(_)
        | WebSocketError::SendError(_) => CloseReason::ConnectionLost,
        _ => CloseReason::ProtocolViolation,
    }
}

/// A write half that accepts and drops everything; the reader's split partner.
#[derive(Debug)]
struct Discard;

impl AsyncWrite for Discard {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
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
