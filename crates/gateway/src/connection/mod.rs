//! One WebSocket connection, from upgrade to close.
//!
//! The socket is split: this task keeps the read half and runs the [`MessageReader`] and the
//! [`Session`]; a [`writer`] task owns the write half and drains the [`Outbox`](crate::outbox::Outbox).
//! Whatever ends the connection (the client, a timeout, fan-out finding it too slow, the API,
//! shutdown) is one [`CloseReason`] set on the outbox; the writer sends its close frame, and
//! the task's [`Lifetime`] guard, dropped however the task ends, leaves every room, counts the
//! close and logs it. Only the read loop is awaited inline; the rest is boxed so that the task
//! an idle connection keeps is small.
//!
//! # Layout
//! - `mod.rs`: the task: upgrade, authenticate, join the own rooms, serve, close.
//! - `reader.rs`: client frames; `session.rs`: client commands, with `hear.rs` (the read-only ones:
//!   presence, receipts) and `refusal.rs` (a command's error reply); `writer.rs`: the socket's writes.
//! - `lifetime.rs`: the guard that ends a connection.

mod hear;
pub mod lifetime;
pub mod reader;
mod refusal;
pub mod session;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::upgrade::UpgradeFut;
use roomcast_proto::RoomName;
use roomcast_proto::frames::{ClientFrame, ErrorCode, ServerFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::auth::{AuthError, ConnectionClaims};
use crate::broker::{Access, Started};
use crate::close::CloseReason;
use crate::node::{Node, SocketSlot};
use crate::rooms::Member;
use crate::wire;
use lifetime::Lifetime;
use reader::{Incoming, MessageReader};
use session::Session;

/// How long a closed connection keeps reading (and discarding) what the client still sends,
/// so that the kernel sends FIN rather than RST and the client reads the close frame.
const LINGER: Duration = Duration::from_secs(2);

/// Runs a connection whose upgrade response was sent; `token` came with the upgrade request.
pub async fn run(node: Arc<Node>, upgrade: UpgradeFut, token: Option<String>, slot: SocketSlot) {
    // Every future awaited here but the read loop is boxed. A task is allocated at the size of
    // its largest state, so an inline upgrade, auth, broker or linger future (the last with its
    // 4 KiB scratch buffer) would be paid by every idle connection for its whole life: boxing
    // took this task from 5.6 KB to 1.7 KB.
    // Bounded like the token that follows: no accepted socket waits anywhere without a deadline.
    let ws = match tokio::time::timeout(node.config.auth_timeout, Box::pin(upgrade)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
        Err(_) => {
            tracing::debug!("websocket upgrade did not complete within auth_timeout");
            return;
        }
    };
    let (mut rd, mut wr) = tokio::io::split(ws.into_inner());
    if slot.over_limit {
        let message = "the node is at its connection limit".to_owned();
        Box::pin(reject(&node, &mut rd, &mut wr, ErrorCode::Forbidden, message, CloseReason::TooManyConnections)).await;
        return;
    }
    let mut reader = MessageReader::new(&mut rd, node.config.max_message_size);
    let claims = match Box::pin(authenticate(&node, &mut reader, token)).await {
        Ok(claims) => claims,
        Err((reason, message)) => {
            drop(reader);
            Box::pin(reject(&node, &mut rd, &mut wr, ErrorCode::Unauthorized, message, reason)).await;
            return;
        }
    };
    let rooms = match (RoomName::user(&claims.sub), claims.org.as_deref().map(RoomName::org).transpose()) {
        (Ok(user), Ok(org)) => [Some(user), org],
        (Err(e), _) | (_, Err(e)) => {
            drop(reader);
            let reason = CloseReason::AuthFailed(AuthError::Invalid(e.to_string()));
            Box::pin(reject(&node, &mut rd, &mut wr, ErrorCode::Unauthorized, format!("token: {e}"), reason)).await;
            return;
        }
    };

    let member = Arc::new(Member::new(
        node.next_conn_id(),
        Arc::from(claims.sub.as_str()),
        node.config.send_queue_size,
        Arc::clone(&node.metrics),
    ));
    // From here every way out of this task, a panic included, goes through the guard's drop.
    let lifetime = Lifetime::begin(&node, &member);
    let writer =
        tokio::spawn(writer::run(wr, Arc::clone(&member), Arc::clone(&node.metrics), node.config.ping_interval));
    // The rooms hold their events for the connection before `connected` is queued, and
    // release them after: `connected` precedes every event of its rooms, and no event
    // published once the client has seen it can be missed.
    let mut joins = Vec::new();
    for room in rooms.iter().flatten() {
        match Box::pin(node.broker.start_join(room, &member, Access::Granted, None)).await {
            Ok(Started::Pending(join)) => joins.push(join),
            // Own rooms need no member set.
            Ok(Started::NotMember) => member.close(CloseReason::BrokerUnavailable),
            Err(e) => {
                tracing::warn!(conn = member.id, %room, error = %crate::broker::causes(&e), "auto-join failed");
                member.close(CloseReason::BrokerUnavailable);
            }
        }
    }
    member.send(
        wire::text(
            &ServerFrame::Connected {
                conn: member.id.to_string(),
                node: node.config.node_id.clone(),
                user: claims.sub.clone(),
                org: claims.org.clone(),
                rooms: rooms.iter().flatten().map(ToString::to_string).collect(),
                positions: joins.iter().map(|j| (j.room.to_string(), j.position.clone())).collect(),
                expires_at: claims.exp,
                ping_interval_ms: node.config.ping_interval.as_millis() as u64,
            }
            .to_json(),
        ),
        std::time::Instant::now(),
    );
    for join in joins {
        node.broker.finish_join(join);
    }

    let replies = Arc::new(session::JsonReplies);
    let mut session = Session::new(Arc::clone(&node), Arc::clone(&member), replies, claims.org, claims.exp);
    read_loop(&node, &member, &mut reader, &mut session).await;
    drop(reader);

    // The writer bounds itself by its close deadline; this bound only guards against a bug.
    let _ = tokio::time::timeout(writer::CLOSE_DEADLINE + Duration::from_secs(1), writer).await;
    if member.outbox.close_reason().and_then(|r| r.code()).is_some() {
        Box::pin(linger(&mut rd)).await;
    }
    drop(lifetime);
}

/// Reads and answers client messages until the connection starts closing.
///
/// Every arm besides the read one ends the loop, so the read future is only ever dropped
/// half-way when the connection is abandoned (`read_frame` is not cancel-safe).
async fn read_loop<S: AsyncRead + Unpin>(
    node: &Node,
    conn: &Member,
    reader: &mut MessageReader<S>,
    session: &mut Session,
) {
    let leeway = node.verifier.leeway();
    let idle_timeout = node.config.idle_timeout;
    let expiry = tokio::time::sleep_until(expiry_instant(session.expires_at(), leeway));
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(expiry, idle);
    loop {
        tokio::select! {
            biased;
            () = conn.outbox.closing() => return,
            () = &mut expiry => conn.close(CloseReason::TokenExpired),
            () = &mut idle => conn.close(CloseReason::IdleTimeout),
            message = reader.next() => {
                idle.as_mut().reset(Instant::now() + idle_timeout);
                match message {
                    Ok(Incoming::Text(text)) => {
                        let before = session.expires_at();
                        // Boxed: commands are rare, and the broker's futures are large.
                        if let Err(reason) = Box::pin(session.handle(&text)).await {
                            conn.close(reason);
                        } else if session.expires_at() != before {
                            expiry.as_mut().reset(expiry_instant(session.expires_at(), leeway));
                        }
                    }
                    Ok(Incoming::Ping(payload)) => conn.send(wire::pong(&payload), std::time::Instant::now()),
                    Ok(Incoming::Pong) => {}
                    Ok(Incoming::Close(code)) => conn.close(CloseReason::ClientClosed(echo_code(code))),
                    Err(reason) => conn.close(reason),
                }
            }
        }
    }
}

/// When a token expiring at `exp` (Unix seconds) stops being honoured: `exp` + leeway, to the
/// sub-second, clamped (see [`crate::auth::time_left`]).
fn expiry_instant(exp: u64, leeway: Duration) -> Instant {
    Instant::now() + crate::auth::time_left(exp, leeway)
}

/// The code to answer a client's close with: its own when it may be sent, else 1000.
fn echo_code(code: Option<u16>) -> u16 {
    code.filter(|c| matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999)).unwrap_or(1000)
}

/// The connection's claims, from the upgrade's token or a first `auth` frame.
async fn authenticate<S: AsyncRead + Unpin>(
    node: &Node,
    reader: &mut MessageReader<S>,
    token: Option<String>,
) -> Result<ConnectionClaims, (CloseReason, String)> {
    let token = match token {
        Some(token) => token,
        None => match tokio::time::timeout(node.config.auth_timeout, auth_frame(reader)).await {
            Ok(result) => result?,
            Err(_) => {
                let secs = node.config.auth_timeout.as_secs_f64();
                return Err((CloseReason::AuthTimeout, format!("no token and no auth frame within {secs}s")));
            }
        },
    };
    node.verifier.verify_connection(&token).map_err(|e| {
        node.metrics.auth_failed(e.label());
        let message = e.to_string();
        (CloseReason::AuthFailed(e), message)
    })
}

/// Waits for the first message, which must be `auth`. The caller bounds the wait; dropping
/// this future abandons the connection.
async fn auth_frame<S: AsyncRead + Unpin>(reader: &mut MessageReader<S>) -> Result<String, (CloseReason, String)> {
    loop {
        match reader.next().await {
            Ok(Incoming::Text(text)) => {
                return match serde_json::from_slice::<ClientFrame>(&text) {
                    Ok(ClientFrame::Auth { token }) => Ok(token),
                    _ => Err((
                        CloseReason::AuthFailed(AuthError::Invalid("no token".into())),
                        "the first frame must be {\"type\":\"auth\",\"token\":\"...\"}".to_owned(),
                    )),
                };
            }
            Ok(Incoming::Ping(_) | Incoming::Pong) => {}
            Ok(Incoming::Close(code)) => {
                return Err((CloseReason::ClientClosed(echo_code(code)), "closed before auth".to_owned()));
            }
            Err(reason) => return Err((reason, "socket failed before auth".to_owned())),
        }
    }
}

/// Ends a connection that never became a session: an `error` frame, the close, then linger.
async fn reject<R, W>(node: &Node, rd: &mut R, wr: &mut W, code: ErrorCode, message: String, reason: CloseReason)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if let Some(close_code) = reason.code() {
        let mut buf = Vec::new();
        if !matches!(reason, CloseReason::ClientClosed(_)) {
            buf.extend_from_slice(&wire::text(&ServerFrame::Error { id: None, code, message }.to_json()));
        }
        buf.extend_from_slice(&wire::close(close_code, reason.label()));
        let written = tokio::time::timeout(writer::CLOSE_DEADLINE, async {
            wr.write_all(&buf).await?;
            wr.shutdown().await
        })
        .await;
        if matches!(written, Ok(Ok(()))) {
            linger(rd).await;
        }
    }
    node.metrics.connection_refused(&reason);
    tracing::info!(reason = reason.label(), code = reason.code(), "connection refused");
}

/// Reads and discards until the client closes its side or [`LINGER`] passes.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut scratch = [0u8; 4096];
        while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
}
