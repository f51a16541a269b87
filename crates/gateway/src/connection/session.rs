//! [`Session`]: an authenticated connection's state, and its answer to every client command.
//!
//! Every command that carries an `id` gets exactly one reply with that id; an `emit` without
//! an id gets a reply only when it fails. A command's failure is an `error` frame; only a
//! `refresh` for another user or org ends the connection (4003).

use std::sync::Arc;
use std::time::Instant;

use roomcast_proto::frames::{ClientFrame, ErrorCode, FrameHead, OkReply, Position, ServerFrame};
use roomcast_proto::{RoomKind, RoomName};
use serde_json::value::RawValue;

use super::handle::ConnectionHandle;
use crate::auth::AuthError;
use crate::broker::{Access, JoinOutcome, Since};
use crate::close::CloseReason;
use crate::node::Node;
use crate::ratelimit::TokenBucket;
use crate::wire;

/// An `error` reply, before it is sent.
struct Refusal {
    code: ErrorCode,
    message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

type Reply = Result<Option<OkReply>, Refusal>;

/// State of one authenticated connection, owned by its task.
#[derive(Debug)]
pub struct Session {
    node: Arc<Node>,
    conn: Arc<ConnectionHandle>,
    org: Option<String>,
    expires_at: u64,
    emits: TokenBucket,
}

impl Session {
    /// A session for `conn`, authenticated as its user with `org`, until `expires_at`.
    pub fn new(node: Arc<Node>, conn: Arc<ConnectionHandle>, org: Option<String>, expires_at: u64) -> Self {
        let emits = TokenBucket::new(node.config.emit_rate, node.config.emit_burst);
        Self { node, conn, org, expires_at, emits }
    }

    /// The token's expiry, Unix seconds; moves when a `refresh` succeeds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Answers one text message. `Err` ends the connection.
    pub async fn handle(&mut self, text: &[u8]) -> Result<(), CloseReason> {
        let frame = match serde_json::from_slice::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => {
                crate::metrics::command("invalid");
                let id = FrameHead::peek(text).id;
                self.send(&ServerFrame::Error { id, code: ErrorCode::BadRequest, message: e.to_string() });
                return Ok(());
            }
        };
        let (id, name) = command_id(&frame);
        crate::metrics::command(name);
        let reply = match frame {
            ClientFrame::Auth { .. } => {
                // `auth` has no id field of its own; a client that sent one still gets it back.
                let id = FrameHead::peek(text).id;
                self.send(&ServerFrame::Error {
                    id,
                    code: ErrorCode::BadRequest,
                    message: "already authenticated".into(),
                });
                return Ok(());
            }
            ClientFrame::Subscribe { room, token, since, .. } => self.subscribe(id, &room, token, since).await,
            ClientFrame::Unsubscribe { room, .. } => self.unsubscribe(&room),
            ClientFrame::Emit { room, event, data, .. } => self.emit(id, &room, &event, data).await,
            ClientFrame::Refresh { token, .. } => self.refresh(id, &token)?,
            ClientFrame::Ping { .. } => {
                self.send(&ServerFrame::Pong { id });
                return Ok(());
            }
        };
        match reply {
            Ok(Some(ok)) => self.send(&ServerFrame::Ok(OkReply { id, ..ok })),
            // Sent already (subscribe replies under the room's lock), or nothing to acknowledge.
            Ok(None) => {}
            Err(Refusal { code, message }) => self.send(&ServerFrame::Error { id, code, message }),
        }
        Ok(())
    }

    async fn subscribe(
        &mut self,
        id: Option<u64>,
        room: &str,
        token: Option<String>,
        since: Option<Position>,
    ) -> Reply {
        let room = RoomName::parse(room).map_err(|e| refuse(ErrorCode::BadRequest, e.to_string()))?;
        let already = self.conn.is_in(&room);
        if !already && self.conn.room_count() >= self.node.config.max_rooms_per_connection {
            let limit = self.node.config.max_rooms_per_connection;
            return Err(refuse(ErrorCode::TooLarge, format!("a connection may be in at most {limit} rooms")));
        }
        let user = &self.conn.user;
        let access = match room.kind() {
            _ if already => Access::Granted,
            RoomKind::User(owner) if owner == &**user => Access::Granted,
            RoomKind::Org(org) if self.org.as_deref() == Some(org) => Access::Granted,
            RoomKind::User(_) => {
                return Err(refuse(ErrorCode::Forbidden, format!("{room} is another user's room")));
            }
            RoomKind::Org(_) => {
                return Err(refuse(ErrorCode::Forbidden, format!("{room} is another org's room")));
            }
            RoomKind::Members => match token {
                Some(token) => {
                    let claims = self.node.verifier.verify_subscription(&token).map_err(|e| {
                        crate::metrics::auth_failed(e.label());
                        refuse(ErrorCode::Unauthorized, format!("subscription token: {e}"))
                    })?;
                    if claims.sub != **user || claims.room != room.as_str() {
                        return Err(refuse(
                            ErrorCode::Forbidden,
                            format!("subscription token is for {} in {}", claims.sub, claims.room),
                        ));
                    }
                    Access::Granted
                }
                None => Access::Member(Arc::clone(user)),
            },
        };
        let conn = Arc::clone(&self.conn);
        let since = match &since {
            Some(position) => Since::After(position),
            None => Since::Now,
        };
        let joined = self.node.broker.join(&room, &self.conn, access, since, |reply| {
            let ok = OkReply {
                id,
                room: Some(room.to_string()),
                offset: Some(reply.position.offset),
                epoch: Some(reply.position.epoch.clone()),
                recovered: reply.recovered,
                expires_at: None,
            };
            conn.send(wire::text(&ServerFrame::Ok(ok).to_json()), Instant::now());
        });
        match joined.await {
            Ok(JoinOutcome::Joined) => Ok(None),
            Ok(JoinOutcome::NotMember) => Err(refuse(
                ErrorCode::Forbidden,
                format!("{user} is not a member of {room} and gave no subscription token"),
            )),
            Ok(JoinOutcome::Left) => {
                Err(refuse(ErrorCode::Forbidden, format!("{user} was removed from {room} while subscribing")))
            }
            Err(e) => Err(refuse(ErrorCode::Internal, e.to_string())),
        }
    }

    fn unsubscribe(&mut self, room: &str) -> Reply {
        let room = RoomName::parse(room).map_err(|e| refuse(ErrorCode::BadRequest, e.to_string()))?;
        if matches!(room.kind(), RoomKind::User(_) | RoomKind::Org(_)) && self.conn.is_in(&room) {
            // The user: room is how disconnects and per-user events find every connection.
            return Err(refuse(ErrorCode::Forbidden, format!("{room} is joined for the whole connection")));
        }
        if !self.conn.leave(&room) {
            return Err(refuse(ErrorCode::NotFound, format!("not subscribed to {room}")));
        }
        Ok(Some(OkReply { room: Some(room.to_string()), ..OkReply::default() }))
    }

    async fn emit(&mut self, id: Option<u64>, room: &str, event: &str, data: Option<Box<RawValue>>) -> Reply {
        if !self.node.config.emit_events.iter().any(|e| e == event) {
            return Err(refuse(ErrorCode::Forbidden, format!("event {event:?} may not be emitted by clients")));
        }
        let room = RoomName::parse(room).map_err(|e| refuse(ErrorCode::BadRequest, e.to_string()))?;
        if !self.conn.is_in(&room) {
            return Err(refuse(ErrorCode::Forbidden, format!("not subscribed to {room}")));
        }
        if !self.emits.try_take(Instant::now()) {
            return Err(refuse(ErrorCode::RateLimited, "emit rate limit reached; slow down"));
        }
        let data: &RawValue = data.as_deref().unwrap_or(RawValue::NULL);
        self.node
            .broker
            .emit(&room, event, data, &self.conn.user)
            .await
            .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))?;
        // Only an emit with an id is acknowledged.
        Ok(id.map(|_| OkReply::default()))
    }

    /// A refused token is an `error`; a valid one for another user or org ends the connection.
    fn refresh(&mut self, id: Option<u64>, token: &str) -> Result<Reply, CloseReason> {
        let claims = match self.node.verifier.verify_connection(token) {
            Ok(claims) => claims,
            Err(e) => {
                crate::metrics::auth_failed(e.label());
                let code = match e {
                    AuthError::Expired | AuthError::Invalid(_) => ErrorCode::Unauthorized,
                };
                return Ok(Err(refuse(code, format!("refresh: {e}"))));
            }
        };
        if claims.sub != *self.conn.user || claims.org != self.org {
            crate::metrics::auth_failed("refresh_other_identity");
            let message = "refresh token is for another user or org".to_owned();
            self.send(&ServerFrame::Error { id, code: ErrorCode::Forbidden, message });
            return Err(CloseReason::Forbidden);
        }
        self.expires_at = claims.exp;
        Ok(Ok(Some(OkReply { expires_at: Some(claims.exp), ..OkReply::default() })))
    }

    fn send(&self, frame: &ServerFrame) {
        self.conn.send(wire::text(&frame.to_json()), Instant::now());
    }
}

/// The command's id and its metric label.
fn command_id(frame: &ClientFrame) -> (Option<u64>, &'static str) {
    match frame {
        ClientFrame::Auth { .. } => (None, "auth"),
        ClientFrame::Subscribe { id, .. } => (*id, "subscribe"),
        ClientFrame::Unsubscribe { id, .. } => (*id, "unsubscribe"),
        ClientFrame::Emit { id, .. } => (*id, "emit"),
        ClientFrame::Refresh { id, .. } => (*id, "refresh"),
        ClientFrame::Ping { id } => (*id, "ping"),
    }
}
