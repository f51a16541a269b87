//! A keep-alive HTTP/1.1 client for publish and member calls: one request at a time per
//! connection, no allocation beyond the request and the response body.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ws::find;

/// One keep-alive connection to a node.
#[derive(Debug)]
pub struct HttpConn {
    addr: SocketAddr,
    io: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpConn {
    /// A connection to `addr`, opened at the first request.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, io: None, buf: Vec::with_capacity(1024) }
    }

    /// POSTs a JSON `body` to `path`; returns the status and the response body. Retries once on
    /// a fresh connection when a kept-alive one turns out closed.
    pub async fn post(&mut self, path: &str, bearer: Option<&str>, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        if let Some(key) = bearer {
            request.extend_from_slice(format!("Authorization: Bearer {key}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        let reused = self.io.is_some();
        match self.exchange(&request).await {
            Err(_) if reused => {
                self.io = None;
                self.exchange(&request).await
            }
            other => other,
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        if self.io.is_none() {
            let io = TcpStream::connect(self.addr).await?;
            io.set_nodelay(true)?;
            self.io = Some(io);
            self.buf.clear();
        }
        let io = self.io.as_mut().expect("connected above");
        io.write_all(request).await?;
        let result = read_response(io, &mut self.buf).await;
        if result.is_err() {
            self.io = None;
        }
        result
    }
}

async fn read_response(io: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, Vec<u8>)> {
    let head_end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        if io.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(io::Error::other)?.to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other("bad status line"))?;
    let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()));
    let body_start = head_end + 4;
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        // Small bodies only: read until the terminating chunk, then strip the chunk framing.
        while find(&buf[body_start..], b"0\r\n\r\n").is_none() {
            if io.read_buf(buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let end = body_start + find(&buf[body_start..], b"0\r\n\r\n").expect("found above") + 5;
        let body = dechunk(&buf[body_start..end]);
        buf.drain(..end);
        return Ok((status, body));
    }
    let len = header("content-length:").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    while buf.len() < body_start + len {
        if io.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(raw, b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size.filter(|&s| s > 0) else { break };
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_a_small_body() {
        assert_eq!(dechunk(b"2\r\n{}\r\n3\r\nabc\r\n0\r\n\r\n"), b"{}abc");
    }
}
