//! Long-polling: a GET takes what is queued for the client (waiting until something is), a
//! POST brings the client's packets.
//!
//! One GET may wait at a time: a second one breaks the protocol, and the session is closed (the
//! waiting one gets `1`). A GET while a WebSocket probe is in flight waits for the upgrade to
//! settle; after the switch a GET is refused. The pending GET of a session the client closed
//! (a POSTed `1`), or of one that upgraded, ends with a noop `6`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::packet::{self, Packet};
use super::session::{Transport, Wire};
use super::{EngineServer, EngineSession, Handler, refuse};
use crate::close::CloseReason;

/// How long a GET that comes during a probe waits for the client's switch before it ends with a
/// noop.
const UPGRADE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

fn payload_response(payload: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], payload).into_response()
}

/// A GET: waits until something is queued (or the session ends or upgrades), then answers it
/// all as one payload.
pub(super) async fn poll<H: Handler>(_: &EngineServer<H>, session: &Arc<EngineSession>) -> Response {
    if session.end_told() {
        return refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
    }
    if session.pong_overdue() {
        session.outbox.close(CloseReason::IdleTimeout);
        return refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
    }
    let closing = session.outbox.close_reason().is_some();
    // A GET during a probe: the client either switches in a moment (the GET is refused after
    // the switch) or is pausing polling and waits for this GET to end (it ends with a noop).
    // A closing session skips that: its last packets go out on whichever GET comes.
    let settled = if closing { session.transport() } else { session.upgrade_settled(UPGRADE_GRACE).await };
    if settled == Transport::Upgrading && !closing {
        return payload_response(b"6".to_vec());
    }
    if settled == Transport::WebSocket || !session.begin_poll(closing) {
        if session.transport() != Transport::WebSocket {
            // A second concurrent GET: the client is broken; end the session.
            session.outbox.close(CloseReason::ProtocolViolation);
        }
        return refuse(StatusCode::BAD_REQUEST, 3, "Bad request");
    }
    tracing::trace!(sid = %session.sid, "poll begins");
    let (payload, ended) = loop {
        let ready = session.outbox.ready();
        let changed = session.transport_changed();
        tokio::pin!(changed);
        // Registered before the transport is read, so a change in between is not missed.
        changed.as_mut().enable();
        let closing = session.outbox.close_reason().is_some();
        if session.transport() != Transport::Polling && !closing {
            break (b"6".to_vec(), false);
        }
        let batch = session.outbox.take(Default::default());
        if !batch.frames.is_empty() || batch.close.is_some() {
            break encode(session, batch);
        }
        tokio::select! {
            () = ready => {}
            () = changed => {}
            () = session.outbox.closing() => {}
        }
    };
    session.end_poll(ended);
    tracing::trace!(sid = %session.sid, bytes = payload.len(), ended, "poll answered");
    payload_response(payload)
}

/// The payload of one batch, and whether it tells the session's end.
///
/// When the server ends the session, the packets still owed (the face's last one included) go
/// in one payload and the close packet (`1`) in the next: socket.io-client acts on an
/// Engine.IO close at once but on a Socket.IO packet of the same payload a tick later, so a
/// `41` beside the `1` would be read as a lost transport (and the client would come back).
/// Engine.IO's own server does the same. A session the client ended gets its packets, or a
/// noop (`6`) when there are none.
fn encode(session: &EngineSession, batch: crate::outbox::Batch) -> (Vec<u8>, bool) {
    let mut payload = Vec::new();
    let mut scratch = Vec::new();
    let encoding = session.encoding();
    for item in &batch.frames {
        scratch.clear();
        match encoding.wire(item, &mut scratch) {
            Some(Wire::Text(text)) => packet::append_to_payload(&mut payload, Some(text), None),
            Some(Wire::Binary(data)) => packet::append_to_payload(&mut payload, None, Some(data)),
            Some(Wire::Control(_)) | None => {}
        }
    }
    if let Some(farewell) = batch.close.as_ref().and_then(|reason| session.take_farewell(reason)) {
        packet::append_to_payload(&mut payload, Some(&farewell), None);
    }
    match &batch.close {
        None => (payload, false),
        Some(CloseReason::ClientClosed(_)) if payload.is_empty() => (b"6".to_vec(), true),
        Some(CloseReason::ClientClosed(_)) => (payload, true),
        Some(_) if payload.is_empty() => (b"1".to_vec(), true),
        Some(_) => (payload, false),
    }
}

/// A POST: the client's packets, handed to the session in order.
pub(super) async fn push<H: Handler>(server: &EngineServer<H>, session: &EngineSession, body: Body) -> Response {
    if session.transport() == Transport::WebSocket {
        return refuse(StatusCode::BAD_REQUEST, 3, "Bad request");
    }
    if session.pong_overdue() {
        session.outbox.close(CloseReason::IdleTimeout);
        return refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
    }
    let limit = server.config.max_payload;
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            session.outbox.close(CloseReason::TooLarge);
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large");
        }
        Err(_) => return refuse(StatusCode::BAD_REQUEST, 3, "Bad request"),
    };
    let packets = match Packet::parse_payload(&bytes) {
        Ok(packets) => packets,
        Err(e) => {
            tracing::debug!(sid = %session.sid, error = %e, "closing an engine.io session");
            session.outbox.close(CloseReason::ProtocolViolation);
            return refuse(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
    };
    for packet in packets {
        if !session.deliver(packet).await {
            return refuse(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}
