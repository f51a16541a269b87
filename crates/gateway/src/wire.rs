//! Server-to-client WebSocket frames, built whole (header and payload) once.
//!
//! Server frames are never masked (RFC 6455 §5.1), so a frame's bytes are the same for every
//! recipient: an event is framed once per node and every member's outbox gets the same
//! [`Bytes`], shared by reference count.

use bytes::{BufMut, Bytes, BytesMut};

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(0x80 | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
    out.freeze()
}

/// The payload of a frame built here (past its header: server frames are never masked).
pub fn payload(frame: &[u8]) -> &[u8] {
    let head = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.get(head..).unwrap_or_default()
}

/// A final text frame carrying `payload` (JSON).
pub fn text(payload: &[u8]) -> Bytes {
    frame(OP_TEXT, payload)
}

/// A final binary frame (the gateway never sends one; its Autobahn echo example does).
pub fn binary(payload: &[u8]) -> Bytes {
    frame(OP_BINARY, payload)
}

/// A ping frame.
pub fn ping(payload: &[u8]) -> Bytes {
    frame(OP_PING, &payload[..payload.len().min(125)])
}

/// A pong frame answering a ping with `payload`.
pub fn pong(payload: &[u8]) -> Bytes {
    frame(OP_PONG, &payload[..payload.len().min(125)])
}

/// A close frame with `code` and a short `reason`.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    // Control frames carry at most 125 bytes; our reasons are short labels.
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    frame(OP_CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(&text(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let medium = text(&[b'a'; 200]);
        assert_eq!(&medium[..4], &[0x81, 126, 0, 200]);
        assert_eq!(medium.len(), 204);
        let large = text(&vec![b'a'; 70_000]);
        assert_eq!(&large[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(large[2..10].try_into().unwrap()), 70_000);
        for frame in [text(b"hi"), medium, large] {
            assert!(payload(&frame).iter().all(|&b| b == b'a') || payload(&frame) == b"hi");
        }
    }

    #[test]
    fn close_carries_code_and_reason() {
        assert_eq!(&close(4008, "slow")[..], &[0x88, 6, 0x0f, 0xa8, b's', b'l', b'o', b'w']);
    }
}
