//! The gateway's WebSocket frame reader on arbitrary client bytes: it never panics, never loops
//! without consuming input, and whatever it returns keeps its promises (text is UTF-8, a
//! message is within the cap, binary only from a reader that accepts it, close codes valid).
//!
//! Input: one byte choosing the reader (bit 0: accept binary) and the cap (bits 1-7, times 16
//! bytes, so small caps and reassembly limits are reached), then the bytes a client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_gateway::connection::reader::{Message, MessageReader, valid_close_code};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else { return };
    let binary = mode & 1 == 1;
    let cap = usize::from(mode >> 1) * 16 + 1;
    let mut reader =
        if binary { MessageReader::accepting_binary(stream, cap) } else { MessageReader::new(stream, cap) };
    // Every message takes at least a 6-byte frame header, so a stream of n bytes ends within
    // n / 6 + 1 reads; more would be a loop that consumes nothing.
    for _ in 0..=stream.len() / 6 + 1 {
        match futures::executor::block_on(reader.read()) {
            Ok(Message::Text(text)) => {
                assert!(text.len() <= cap, "text of {} bytes over the cap {cap}", text.len());
                assert!(std::str::from_utf8(&text).is_ok(), "text that is not UTF-8");
            }
            Ok(Message::Binary(bytes)) => {
                assert!(binary, "binary from a reader that refuses it");
                assert!(bytes.len() <= cap);
            }
            Ok(Message::Ping(payload)) => assert!(payload.len() <= 125),
            Ok(Message::Pong) => {}
            Ok(Message::Close(code)) => assert!(code.is_none_or(valid_close_code), "close code {code:?}"),
            Err(_) => return,
        }
    }
    panic!("more messages than the input can hold");
});
