//! A minimal WebSocket client (RFC 6455) for many cheap connections.
//!
//! A load generator must cost less than the server it measures, so this client does only what
//! the scenarios need: the upgrade, unmasked server frames parsed in place from one read buffer
//! (every frame that arrived with one `read`), masked client frames, pong replies. A general
//! client library allocates per message; here a burst of frames costs one syscall and no copy.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Frame opcodes the client handles.
pub mod op {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xA;
}

/// Largest message the client accepts; bigger means a broken server or a wrong scenario.
const MAX_MESSAGE: usize = 16 << 20;

/// One open WebSocket.
#[derive(Debug)]
pub struct WsConn {
    io: TcpStream,
    buf: Vec<u8>,
    /// Start of unparsed bytes in `buf`.
    start: usize,
    /// Payload of a fragmented message being reassembled, with its opcode.
    partial: Option<(u8, Vec<u8>)>,
    mask_seed: u32,
}

/// Opens a TCP connection to `addr` (from `source` when given) and upgrades it on `path`.
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<WsConn> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let io = socket.connect(addr).await?;
    io.set_nodelay(true)?;
    let mut conn = WsConn { io, buf: Vec::with_capacity(4096), start: 0, partial: None, mask_seed: rand::random() };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    conn.io.write_all(request.as_bytes()).await?;
    loop {
        if let Some(end) = find(&conn.buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&conn.buf[..end]).into_owned();
            let status = head.lines().next().unwrap_or_default();
            if !status.starts_with("HTTP/1.1 101") {
                return Err(io::Error::other(format!("upgrade refused: {status}")));
            }
            conn.start = end + 4;
            return Ok(conn);
        }
        if conn.read_more().await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

impl WsConn {
    async fn read_more(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.capacity() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 2048 {
            self.buf.reserve(self.buf.capacity().max(4096));
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads once from the socket (unless whole frames are already buffered) and hands every
    /// complete message to `on_message` (opcode, payload). Answers pings. Returns `Ok(false)`
    /// when the server closed the connection.
    pub async fn read_batch(&mut self, mut on_message: impl FnMut(u8, &[u8])) -> io::Result<bool> {
        if !self.has_frame() && self.read_more().await? == 0 {
            return Ok(false);
        }
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        let mut closed = false;
        while let Some((opcode, fin, range)) = parse_header(&self.buf[self.start..])? {
            let payload_at = self.start + range.start;
            let payload = &self.buf[payload_at..self.start + range.end];
            match opcode {
                op::PING => pongs.push(payload.to_vec()),
                op::CLOSE => closed = true,
                op::PONG => {}
                op::CONTINUATION => {
                    let Some((first, mut message)) = self.partial.take() else {
                        return Err(io::Error::other("continuation without a first frame"));
                    };
                    message.extend_from_slice(payload);
                    if message.len() > MAX_MESSAGE {
                        return Err(io::Error::other("message too large"));
                    }
                    if fin {
                        on_message(first, &message);
                    } else {
                        self.partial = Some((first, message));
                    }
                }
                _ if !fin => self.partial = Some((opcode, payload.to_vec())),
                _ => on_message(opcode, payload),
            }
            self.start += range.end;
        }
        for payload in pongs {
            self.send(op::PONG, &payload).await?;
        }
        Ok(!closed)
    }

    fn has_frame(&self) -> bool {
        matches!(parse_header(&self.buf[self.start..]), Ok(Some(_)))
    }

    /// Waits for the next text message and returns it; answers pings meanwhile.
    pub async fn next_text(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let mut first = None;
            let open = self
                .read_one(|opcode, payload| {
                    if opcode == op::TEXT {
                        first = Some(payload.to_vec());
                    }
                })
                .await?;
            if let Some(text) = first {
                return Ok(text);
            }
            if !open {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
        }
    }

    /// Like [`read_batch`](Self::read_batch) but stops after the first text message, leaving
    /// later frames buffered.
    async fn read_one(&mut self, mut on_message: impl FnMut(u8, &[u8])) -> io::Result<bool> {
        if !self.has_frame() && self.read_more().await? == 0 {
            return Ok(false);
        }
        while let Some((opcode, fin, range)) = parse_header(&self.buf[self.start..])? {
            let payload = self.buf[self.start + range.start..self.start + range.end].to_vec();
            self.start += range.end;
            match opcode {
                op::PING => self.send(op::PONG, &payload).await?,
                op::CLOSE => return Ok(false),
                op::TEXT if fin => {
                    on_message(opcode, &payload);
                    return Ok(true);
                }
                _ => {}
            }
        }
        Ok(true)
    }

    /// Sends one masked frame.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.mask_seed = self.mask_seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let frame = encode_client_frame(opcode, payload, self.mask_seed.to_be_bytes());
        self.io.write_all(&frame).await
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        self.send(op::TEXT, text).await
    }
}

/// Parses the frame header at the start of `buf`: opcode, FIN and the payload's byte range,
/// or `None` when the whole frame has not arrived yet.
pub fn parse_header(buf: &[u8]) -> io::Result<Option<(u8, bool, std::ops::Range<usize>)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0f;
    if buf[1] & 0x80 != 0 {
        return Err(io::Error::other("server frame is masked"));
    }
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            (usize::try_from(len).unwrap_or(usize::MAX), 10)
        }
        126 | 127 => return Ok(None),
        short => (short as usize, 2),
    };
    if len > MAX_MESSAGE {
        return Err(io::Error::other("frame too large"));
    }
    if buf.len() < header + len {
        return Ok(None);
    }
    Ok(Some((opcode, fin, header..header + len)))
}

/// A whole masked client frame.
pub fn encode_client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_medium_and_partial_frames() {
        assert_eq!(parse_header(&[0x81, 2, b'h', b'i']).unwrap(), Some((op::TEXT, true, 2..4)));
        let mut medium = vec![0x81, 126, 0, 200];
        medium.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(parse_header(&medium).unwrap(), Some((op::TEXT, true, 4..204)));
        assert_eq!(parse_header(&medium[..100]).unwrap(), None);
        assert_eq!(parse_header(&[0x01, 1, b'x']).unwrap(), Some((op::TEXT, false, 2..3)));
        assert!(parse_header(&[0x81, 0x81, 0, 0, 0, 0, 0]).is_err(), "masked server frame");
    }

    #[test]
    fn client_frames_are_masked_and_unmask_back() {
        let mask = [1, 2, 3, 4];
        let frame = encode_client_frame(op::TEXT, b"hello", mask);
        assert_eq!(&frame[..2], &[0x81, 0x85]);
        assert_eq!(&frame[2..6], &mask);
        let unmasked: Vec<u8> = frame[6..].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        assert_eq!(unmasked, b"hello");
        assert_eq!(&encode_client_frame(op::TEXT, &[0; 300], mask)[..4], &[0x81, 0x80 | 126, 1, 44]);
    }
}
