//! Client command parsing (`ClientFrame::parse`, the nesting check, `FrameHead::peek` for the
//! error reply's id): no input panics, and only JSON objects within the depth limit are
//! commands.
//!
//! Input: one byte for the depth limit (2 to 65), then the message text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_proto::frames::{ClientFrame, FrameHead};
use roomcast_proto::json::check_depth;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, text)) = data.split_first() else { return };
    let limit = usize::from(limit % 64) + 2;
    let head = FrameHead::peek(text);
    if let Ok(frame) = ClientFrame::parse(text, limit) {
        let first = text.iter().find(|b| !b.is_ascii_whitespace());
        assert_eq!(first, Some(&b'{'), "a command that is not a JSON object");
        assert!(check_depth(text, limit).is_ok(), "a command nested deeper than {limit}");
        // The id the error path would read is the one the command has.
        let id = match &frame {
            ClientFrame::Auth { .. } => None,
            ClientFrame::Subscribe { id, .. }
            | ClientFrame::Unsubscribe { id, .. }
            | ClientFrame::Emit { id, .. }
            | ClientFrame::Refresh { id, .. }
            | ClientFrame::Presence { id, .. }
            | ClientFrame::PresenceStats { id, .. }
            | ClientFrame::Ack { id, .. }
            | ClientFrame::Ping { id } => *id,
        };
        if id.is_some() {
            assert_eq!(head.id, id);
        }
        // What the gateway sends back must serialize.
        let _ = serde_json::to_vec(&frame).expect("a parsed frame serializes");
    }
});
