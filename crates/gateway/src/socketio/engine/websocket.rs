//! The WebSocket transport: a session opened on it, or one upgraded to it from long-polling.
//!
//! Upgrade: the client opens a WebSocket with the session's sid and sends `2probe`; the server
//! answers `3probe` on it, ends the waiting poll with a noop, and switches when `5` comes. From
//! then on the session's outbox is written as frames (one text frame per packet, binary ones as
//! binary frames), and every frame read is handed to the session task. Frames are read with the
//! gateway's own [`MessageReader`], binary messages allowed.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use fastwebsockets::upgrade::IncomingUpgrade;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::packet::Packet;
use super::session::{Transport, Wire};
use super::{EngineServer, EngineSession, Handler, RequestInfo, refuse};
use crate::close::CloseReason;
use crate::connection::reader::{Message, MessageReader};
use crate::wire;

/// How long a probing client may take between the upgrade and its `2probe` or `5`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a closing session gets to write what it owes, close frame included.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Accepts a WebSocket: a new session, or an upgrade of the polling session `sid`.
pub(super) fn accept<H: Handler>(
    server: Arc<EngineServer<H>>,
    sid: Option<String>,
    upgrade: IncomingUpgrade,
    request: RequestInfo,
) -> Response {
    let existing = match sid {
        None => None,
        Some(sid) => match server.session(&sid) {
            // A closing session is not upgraded: what it owes goes out on the polls.
            Some(session) if session.outbox.close_reason().is_none() => Some(session),
            _ => return refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
        },
    };
    let (response, socket) = match upgrade.upgrade() {
        Ok(pair) => pair,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("upgrade failed: {e}\n")).into_response(),
    };
    let tasks = server.tasks.clone();
    tasks.spawn(async move {
        let Ok(ws) = socket.await else { return };
        let (rd, mut wr) = tokio::io::split(ws.into_inner());
        let mut reader = MessageReader::accepting_binary(rd, server.config.max_payload);
        let session = match existing {
            None => server.open(Transport::WebSocket, &request),
            // A second WebSocket for a session already upgraded (or upgrading): closed at once.
            Some(session) if session.transport() != Transport::Polling => {
                let _ = wr.write_all(&wire::close(1002, "session already upgraded")).await;
                return;
            }
            Some(session) => match probe(&session, &mut reader, &mut wr).await {
                Ok(()) => session,
                Err(()) => {
                    let _ = wr.write_all(&wire::close(1002, "upgrade failed")).await;
                    return;
                }
            },
        };
        serve(&session, reader, wr).await;
    });
    response.into_response()
}

/// The upgrade handshake on a new WebSocket of a polling session: `2probe`, `3probe`, `5`.
async fn probe<R, W>(session: &EngineSession, reader: &mut MessageReader<R>, wr: &mut W) -> Result<(), ()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let next = async |reader: &mut MessageReader<R>| match tokio::time::timeout(PROBE_TIMEOUT, reader.read()).await {
        Ok(Ok(Message::Text(text))) => String::from_utf8(text).ok(),
        _ => None,
    };
    let first = next(reader).await;
    tracing::trace!(sid = %session.sid, ?first, "probe");
    if first.as_deref() != Some("2probe") || !session.begin_upgrade() {
        return Err(());
    }
    if wr.write_all(&wire::text(b"3probe")).await.is_err() {
        session.finish_upgrade(false);
        return Err(());
    }
    let second = next(reader).await;
    let upgraded = second.as_deref() == Some("5");
    tracing::trace!(sid = %session.sid, ?second, "upgrade");
    session.finish_upgrade(upgraded);
    if upgraded { Ok(()) } else { Err(()) }
}

/// Runs the session over the socket until it closes: a writer task drains the outbox, this
/// task reads.
async fn serve<R, W>(session: &Arc<EngineSession>, mut reader: MessageReader<R>, wr: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let writer = tokio::spawn(write(Arc::clone(session), wr));
    loop {
        let message = tokio::select! {
            biased;
            () = session.outbox.closing() => break,
            message = reader.read() => message.map_err(CloseReason::from),
        };
        let packet = match message {
            Ok(Message::Text(text)) => {
                match String::from_utf8(text).map_err(|_| ()).and_then(|t| Packet::parse_text(&t).map_err(|_| ())) {
                    Ok(packet) => packet,
                    Err(()) => {
                        session.outbox.close(CloseReason::ProtocolViolation);
                        break;
                    }
                }
            }
            Ok(Message::Binary(data)) => Packet::Binary(data.into()),
            Ok(Message::Ping(payload)) => {
                let _ = session
                    .outbox
                    .push(crate::outbox::Outgoing::Control(wire::pong(&payload)), std::time::Instant::now());
                continue;
            }
            Ok(Message::Pong) => continue,
            Ok(Message::Close(code)) => {
                session.outbox.close(CloseReason::ClientClosed(code.unwrap_or(1000)));
                break;
            }
            Err(reason) => {
                session.outbox.close(reason);
                break;
            }
        };
        if !session.deliver(packet).await {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_DEADLINE + Duration::from_secs(1), writer).await;
}

/// Writes the outbox as frames, one write per batch, then the close frame.
async fn write<W: AsyncWrite + Unpin>(session: Arc<EngineSession>, mut io: W) {
    let mut scratch = Vec::new();
    // Kept across batches: the queue's and the write buffer's allocations are reused.
    let mut spare = std::collections::VecDeque::new();
    let mut buf = BytesMut::new();
    loop {
        // Taken before waiting: a poll may have consumed the wake of what it left queued when
        // the session switched to this transport.
        let mut batch = session.outbox.take(std::mem::take(&mut spare));
        if batch.frames.is_empty() && batch.close.is_none() {
            spare = batch.frames;
            session.outbox.ready().await;
            continue;
        }
        tracing::trace!(sid = %session.sid, items = batch.frames.len(), closing = batch.close.is_some(), "ws write");
        buf.clear();
        let encoding = session.encoding();
        for item in &batch.frames {
            scratch.clear();
            match encoding.wire(item, &mut scratch) {
                Some(Wire::Text(text)) => put_frame(&mut buf, 0x1, text),
                Some(Wire::Binary(data)) => put_frame(&mut buf, 0x2, data),
                Some(Wire::Control(frame)) => buf.put_slice(frame),
                None => {}
            }
        }
        batch.frames.clear();
        spare = batch.frames;
        if let Some(reason) = &batch.close {
            if let Some(farewell) = session.take_farewell(reason) {
                put_frame(&mut buf, 0x1, &farewell);
            }
            if let Some(code) = reason.code() {
                buf.put_slice(&wire::close(code, reason.label()));
            }
            let _ = tokio::time::timeout(CLOSE_DEADLINE, async {
                io.write_all(&buf).await?;
                io.shutdown().await
            })
            .await;
            return;
        }
        if !buf.is_empty() && io.write_all(&buf).await.is_err() {
            session.outbox.close(CloseReason::ConnectionLost);
            return;
        }
    }
}

/// Appends one final, unmasked frame.
fn put_frame(buf: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let len = payload.len();
    buf.reserve(len + 10);
    buf.put_u8(0x80 | opcode);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        buf.put_u8(126);
        buf.put_u16(short);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
    buf.put_slice(payload);
}
