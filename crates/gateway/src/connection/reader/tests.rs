//! Unit tests of the frame reader, on in-memory streams.

use super::*;
use crate::close::CloseReason;
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
async fn invalid_text_fails_at_the_fragment_that_breaks_it() {
    // "κόσμε" cut inside a character across fragments is fine; a bad byte fails at once,
    // before the message's last fragment arrives.
    let text = "κόσμε".as_bytes();
    let mut bytes = client_frame(false, 0x1, &text[..3]);
    bytes.extend(client_frame(true, 0x0, &text[3..]));
    bytes.extend(client_frame(false, 0x1, b"ok"));
    bytes.extend(client_frame(false, 0x0, &[0xed, 0xa0, 0x80]));
    let (mut client, server) = tokio::io::duplex(1 << 16);
    client.write_all(&bytes).await.unwrap();
    // No final fragment follows: a reader that waited for one would get end-of-file.
    drop(client);
    let mut reader = MessageReader::new(server, 1024);
    assert_eq!(reader.read().await, Ok(Message::Text(text.to_vec())));
    assert_eq!(reader.read().await, Err(FrameError::InvalidUtf8), "without waiting for the final fragment");
}

#[tokio::test]
async fn control_frames_come_through() {
    let bytes =
        [client_frame(true, 0x9, b"p"), client_frame(true, 0xA, b""), client_frame(true, 0x8, &[0x03, 0xe8])].concat();
    let got = read_all(bytes, 1024).await;
    assert_eq!(got[0], Ok(Incoming::Ping(b"p".to_vec())));
    assert_eq!(got[1], Ok(Incoming::Pong));
    assert_eq!(got[2], Ok(Incoming::Close(Some(1000))));
}
