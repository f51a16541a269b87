//! The writer task: drains a connection's outbox to its socket, one write per batch.
//!
//! Every frame waiting in the outbox is copied into one buffer and written with one `write_all`,
//! so a burst of events costs one syscall, not one per frame; a lone frame is written from its
//! shared bytes without a copy. The buffer lives only for one batch: an idle connection holds
//! no write buffer at all, which is most of what a connection costs in memory. Pings go out on the
//! node's interval. When the connection closes, frames still queued (unless the reason drops
//! them) and then the close frame are written; all of that must finish within
//! [`CLOSE_DEADLINE`] of the close request, or the socket is dropped unfinished.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::close::CloseReason;
use crate::metrics::Metrics;
use crate::outbox::Outgoing;
use crate::rooms::Member;
use crate::wire;

/// Time a closing connection gets to write what it still owes, close frame included.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Writes the outbox of `conn` to `io` until the connection closes or the socket fails.
pub async fn run<W: AsyncWrite + Unpin>(mut io: W, conn: Arc<Member>, metrics: Arc<Metrics>, ping_interval: Duration) {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut spare = VecDeque::new();
    let mut close_deadline = None;
    loop {
        let mut send_ping = false;
        // Not biased: under a steady stream of events pings must still go out, or a client
        // that only listens would look idle to its own keep-alive.
        tokio::select! {
            () = conn.outbox.ready() => {}
            _ = ping.tick() => send_ping = true,
        }
        let mut batch = conn.outbox.take(spare);
        let frames = batch.frames.len();
        let queued_bytes: usize = batch.frames.iter().map(|f| f.len()).sum();
        let ping_frame = send_ping.then(|| wire::ping(b""));
        let close = match &batch.close {
            Some(reason) => {
                let Some(code) = reason.code() else { return };
                close_deadline.get_or_insert_with(|| Instant::now() + CLOSE_DEADLINE);
                Some(wire::close(code, reason.label()))
            }
            None => None,
        };
        let extra = ping_frame.iter().chain(close.iter());
        let lone = match (frames, extra.clone().count()) {
            (1, 0) => batch.frames.pop_front().map(|item| ws_frame(&item).clone()),
            (0, 1) => extra.clone().next().cloned(),
            _ => None,
        };
        // Allocated per batch (malloc is cheap next to the syscall), so nothing stays behind.
        let buf: bytes::Bytes = match lone {
            Some(frame) => frame,
            None => {
                let mut buf = Vec::with_capacity(queued_bytes + extra.clone().map(|f| f.len()).sum::<usize>());
                for item in &batch.frames {
                    buf.extend_from_slice(ws_frame(item));
                }
                for frame in extra {
                    buf.extend_from_slice(frame);
                }
                buf.into()
            }
        };
        batch.frames.clear();
        spare = batch.frames;
        if buf.is_empty() {
            continue;
        }
        let written = write(&mut io, &buf, &conn, &mut close_deadline).await;
        metrics.batch_written(frames, queued_bytes, batch.oldest.map(|t| t.elapsed()));
        if !written {
            conn.close(CloseReason::ConnectionLost);
            return;
        }
        if batch.close.is_some() {
            // FIN after the close frame; the connection task drains what the client still sends.
            let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
            return;
        }
    }
}

/// The `/ws` frame of a queued item: events and emits carry theirs, built once per node.
fn ws_frame(item: &Outgoing) -> &Bytes {
    match item {
        Outgoing::Ready(frame) | Outgoing::Binary(frame) | Outgoing::Control(frame) => frame,
        Outgoing::Event(e) => &e.frame,
        Outgoing::Emit(e) => &e.frame,
    }
}

/// Writes `buf`; once the connection is closing, only until the close deadline.
async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    buf: &[u8],
    conn: &Member,
    close_deadline: &mut Option<Instant>,
) -> bool {
    let write = io.write_all(buf);
    tokio::pin!(write);
    if close_deadline.is_none() {
        tokio::select! {
            result = &mut write => return result.is_ok(),
            () = conn.outbox.closing() => {}
        }
    }
    // Closing: the in-flight write may finish (a frame cut half-way would corrupt the stream
    // for the close frame), but no later than the deadline set by the close request.
    let deadline = *close_deadline.get_or_insert_with(|| Instant::now() + CLOSE_DEADLINE);
    matches!(tokio::time::timeout_at(deadline, write).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ping_goes_out_once_per_interval_and_frames_queued_together_go_out_together() {
        let metrics = Arc::new(Metrics::new("test"));
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let member = Arc::new(Member::new(1, Arc::from("u1"), 1 << 16, Arc::clone(&metrics)));
        let writer = tokio::spawn(run(server, Arc::clone(&member), metrics, Duration::from_secs(1)));

        tokio::time::sleep(Duration::from_millis(5500)).await;
        let mut pings = [0u8; 10];
        client.read_exact(&mut pings).await.unwrap();
        assert_eq!(pings, [0x89, 0x00].repeat(5)[..], "five empty pings in 5.5 s");
        assert!(client.read(&mut [0u8; 1]).now_or_never().is_none(), "and nothing else");

        let now = std::time::Instant::now();
        member.send(wire::text(b"a"), now);
        member.send(wire::text(b"b"), now);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut frames = [0u8; 6];
        client.read_exact(&mut frames).await.unwrap();
        assert_eq!(&frames, b"\x81\x01a\x81\x01b");

        member.close(CloseReason::Shutdown);
        writer.await.unwrap();
        let mut close = Vec::new();
        client.read_to_end(&mut close).await.unwrap();
        assert_eq!(close, wire::close(1012, "shutdown"));
    }
}
