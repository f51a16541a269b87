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

use crate::auth::AuthError;
use crate::broker::{Access, JoinOutcome, JoinReply, Since};
use crate::close::CloseReason;
use crate::node::Node;
use crate::ratelimit::TokenBucket;
use crate::rooms::Member;
use crate::wire;

use super::hear;
use super::refusal::{Refusal, Reply};

/// How a face answers commands: `/ws` queues JSON frames; Socket.IO acks the event that asked.
pub trait Replies: Send + Sync + std::fmt::Debug {
    /// Queues `frame`, the answer (`ok`, `error` or `pong`) to a command.
    fn reply(&self, member: &Member, frame: &ServerFrame);

    /// A subscribe is answered (called under the room's lock, before the answer is queued and
    /// before any event after it): where the member now stands in `room`.
    fn joined(&self, member: &Member, room: &RoomName, reply: &JoinReply, since: Option<&Position>) {
        let _ = (member, room, reply, since);
    }
}

/// The `/ws` face's answers: JSON text frames.
#[derive(Debug)]
pub struct JsonReplies;

impl Replies for JsonReplies {
    fn reply(&self, member: &Member, frame: &ServerFrame) {
        member.send(wire::text(&frame.to_json()), Instant::now());
    }
}

/// State of one authenticated connection, owned by its task.
#[derive(Debug)]
pub struct Session {
    node: Arc<Node>,
    member: Arc<Member>,
    replies: Arc<dyn Replies>,
    org: Option<String>,
    expires_at: u64,
    emits: TokenBucket,
}

impl Session {
    /// A session for `member`, authenticated as its user with `org`, until `expires_at`,
    /// answering through `replies`.
    pub fn new(
        node: Arc<Node>,
        member: Arc<Member>,
        replies: Arc<dyn Replies>,
        org: Option<String>,
        expires_at: u64,
    ) -> Self {
        let emits = TokenBucket::new(node.config.emit_rate, node.config.emit_burst);
        Self { node, member, replies, org, expires_at, emits }
    }

    /// The member this session commands for.
    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The user's org.
    pub fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// The token's expiry, Unix seconds; moves when a `refresh` succeeds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Answers one text message. `Err` ends the connection.
    pub async fn handle(&mut self, text: &[u8]) -> Result<(), CloseReason> {
        #[cfg(feature = "test-hooks")]
        self.panic_if_asked(text).await;
        let frame = match ClientFrame::parse(text, self.node.config.max_json_depth) {
            Ok(frame) => frame,
            Err(e) => {
                self.node.metrics.command("invalid");
                let id = FrameHead::peek(text).id;
                self.send(&ServerFrame::Error { id, code: ErrorCode::BadRequest, message: e.to_string() });
                return Ok(());
            }
        };
        if let ClientFrame::Auth { .. } = frame {
            self.node.metrics.command("auth");
            // `auth` has no id field of its own; a client that sent one still gets it back.
            let id = FrameHead::peek(text).id;
            let message = "already authenticated".into();
            self.send(&ServerFrame::Error { id, code: ErrorCode::BadRequest, message });
            return Ok(());
        }
        self.execute(frame).await
    }

    /// Carries out one command (whichever face it came from) and answers it. `Err` ends the
    /// connection.
    pub async fn execute(&mut self, frame: ClientFrame) -> Result<(), CloseReason> {
        let (id, name) = command_id(&frame);
        self.node.metrics.command(name);
        let reply = match frame {
            ClientFrame::Auth { .. } => {
                let message = "already authenticated".into();
                self.send(&ServerFrame::Error { id, code: ErrorCode::BadRequest, message });
                return Ok(());
            }
            ClientFrame::Subscribe { room, token, since, presence, .. } => {
                self.subscribe(id, &room, token, since, presence).await
            }
            ClientFrame::Unsubscribe { room, .. } => self.unsubscribe(&room),
            ClientFrame::Emit { room, event, data, .. } => self.emit(id, &room, &event, data).await,
            ClientFrame::Refresh { token, .. } => self.refresh(id, &token)?,
            ClientFrame::Ping { .. } => {
                self.send(&ServerFrame::Pong { id });
                return Ok(());
            }
            ClientFrame::Presence { room, .. } => hear::presence(&self.node, &self.member, &room, false).await,
            ClientFrame::PresenceStats { room, .. } => hear::presence(&self.node, &self.member, &room, true).await,
            ClientFrame::Ack { room, offset, epoch, .. } => {
                // Only an ack with an id is acknowledged.
                hear::ack(&self.node, &self.member, &room, offset, epoch.as_deref())
                    .map(|()| id.map(|_| OkReply::default()))
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
        presence: bool,
    ) -> Reply {
        let room = RoomName::parse(room).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
        if presence && !self.node.presence.keeps(&room) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("presence is not kept for {room} (see presence_rooms)"),
            ));
        }
        let registry = &self.node.registry;
        let already = registry.is_in(self.member.id, &room);
        if !already && registry.rooms_joined(self.member.id) >= self.node.config.max_rooms_per_connection {
            let limit = self.node.config.max_rooms_per_connection;
            return Err(Refusal::new(ErrorCode::TooLarge, format!("a connection may be in at most {limit} rooms")));
        }
        let user = &self.member.user;
        let access = match room.kind() {
            _ if already => Access::Granted,
            RoomKind::User(owner) if owner == &**user => Access::Granted,
            RoomKind::Org(org) if self.org.as_deref() == Some(org) => Access::Granted,
            RoomKind::User(_) => {
                return Err(Refusal::new(ErrorCode::Forbidden, format!("{room} is another user's room")));
            }
            RoomKind::Org(_) => {
                return Err(Refusal::new(ErrorCode::Forbidden, format!("{room} is another org's room")));
            }
            RoomKind::Members => match token {
                Some(token) => {
                    let claims = self.node.verifier.verify_subscription(&token).map_err(|e| {
                        self.node.metrics.auth_failed(e.label());
                        Refusal::new(ErrorCode::Unauthorized, format!("subscription token: {e}"))
                    })?;
                    if claims.sub != **user || claims.room != room.as_str() {
                        return Err(Refusal::new(
                            ErrorCode::Forbidden,
                            format!("subscription token is for {} in {}", claims.sub, claims.room),
                        ));
                    }
                    Access::Granted
                }
                None => Access::Member(Arc::clone(user)),
            },
        };
        let (member, replies) = (Arc::clone(&self.member), Arc::clone(&self.replies));
        let from = since.as_ref();
        let since = match from {
            Some(position) => Since::After(position),
            None => Since::Now,
        };
        // In place before the join finishes: the first frame after the `ok` can be a `join`.
        let watched = self.member.watch_presence(&room, presence);
        let joined = self.node.broker.join(&room, &self.member, access, since, |reply| {
            replies.joined(&member, &room, reply, from);
            let ok = OkReply {
                id,
                room: Some(room.to_string()),
                offset: Some(reply.position.offset),
                epoch: Some(reply.position.epoch.clone()),
                recovered: reply.recovered,
                ..OkReply::default()
            };
            replies.reply(&member, &ServerFrame::Ok(ok));
        });
        let outcome = joined.await;
        if !matches!(outcome, Ok(JoinOutcome::Joined)) {
            self.member.watch_presence(&room, watched);
        }
        match outcome {
            Ok(JoinOutcome::Joined) => Ok(None),
            Ok(JoinOutcome::NotMember) => Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("{user} is not a member of {room} and gave no subscription token"),
            )),
            Ok(JoinOutcome::Left) => {
                Err(Refusal::new(ErrorCode::Forbidden, format!("{user} was removed from {room} while subscribing")))
            }
            Err(e) => {
                tracing::warn!(conn = self.member.id, %room, error = %crate::broker::causes(&e), "subscribe failed");
                Err(Refusal::broker(&e))
            }
        }
    }

    fn unsubscribe(&mut self, room: &str) -> Reply {
        let room = RoomName::parse(room).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
        let registry = &self.node.registry;
        if matches!(room.kind(), RoomKind::User(_) | RoomKind::Org(_)) && registry.is_in(self.member.id, &room) {
            // The user: room is how disconnects and per-user events find every connection.
            return Err(Refusal::new(ErrorCode::Forbidden, format!("{room} is joined for the whole connection")));
        }
        if !registry.leave(&room, self.member.id) {
            return Err(Refusal::new(ErrorCode::NotFound, format!("not subscribed to {room}")));
        }
        self.member.watch_presence(&room, false);
        Ok(Some(OkReply { room: Some(room.to_string()), ..OkReply::default() }))
    }

    async fn emit(&mut self, id: Option<u64>, room: &str, event: &str, data: Option<Box<RawValue>>) -> Reply {
        let relayed = self.node.config.emit_events.iter().any(|e| e == event);
        let reported = crate::events::reports_emit(&self.node.config.events, event);
        if !relayed && !reported {
            return Err(Refusal::new(ErrorCode::Forbidden, format!("event {event:?} may not be emitted by clients")));
        }
        let room = RoomName::parse(room).map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
        if !self.node.registry.is_in(self.member.id, &room) {
            return Err(Refusal::new(ErrorCode::Forbidden, format!("not subscribed to {room}")));
        }
        if !self.emits.try_take(Instant::now()) {
            return Err(Refusal::new(ErrorCode::RateLimited, "emit rate limit reached; slow down"));
        }
        let data: &RawValue = data.as_deref().unwrap_or(RawValue::NULL);
        if reported {
            let report = crate::events::BackendEvent::emit(room.as_str(), &self.member.user, event, data);
            self.node.events.send(report);
        }
        if relayed {
            self.node.broker.emit(&room, event, data, &self.member.user).await.map_err(|e| Refusal::broker(&e))?;
        }
        // Only an emit with an id is acknowledged.
        Ok(id.map(|_| OkReply::default()))
    }

    /// A refused token is an `error`; a valid one for another user or org ends the connection.
    fn refresh(&mut self, id: Option<u64>, token: &str) -> Result<Reply, CloseReason> {
        let claims = match self.node.verifier.verify_connection(token) {
            Ok(claims) => claims,
            Err(e) => {
                self.node.metrics.auth_failed(e.label());
                let code = match e {
                    AuthError::Expired | AuthError::Invalid(_) => ErrorCode::Unauthorized,
                };
                return Ok(Err(Refusal::new(code, format!("refresh: {e}"))));
            }
        };
        if claims.sub != *self.member.user || claims.org != self.org {
            self.node.metrics.auth_failed("refresh_other_identity");
            let message = "refresh token is for another user or org".to_owned();
            self.send(&ServerFrame::Error { id, code: ErrorCode::Forbidden, message });
            return Err(CloseReason::Forbidden);
        }
        self.expires_at = claims.exp;
        Ok(Ok(Some(OkReply { expires_at: Some(claims.exp), ..OkReply::default() })))
    }

    fn send(&self, frame: &ServerFrame) {
        self.replies.reply(&self.member, frame);
    }

    /// Test builds only: `{"type":"test:panic"}` makes this task panic, and with `"room"` it
    /// does so in the middle of joining that room (holding the join's lease), so that tests can
    /// show that a panicking connection releases everything it held.
    #[cfg(feature = "test-hooks")]
    async fn panic_if_asked(&self, text: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Ask {
            #[serde(rename = "type")]
            kind: String,
            room: Option<String>,
        }
        let Ok(ask) = serde_json::from_slice::<Ask>(text) else { return };
        if ask.kind != "test:panic" {
            return;
        }
        let pending = match ask.room.as_deref().map(RoomName::parse) {
            Some(Ok(room)) => self.node.broker.start_join(&room, &self.member, Access::Granted, None).await.ok(),
            _ => None,
        };
        panic!("a test asked connection {} to panic (mid-join: {})", self.member.id, pending.is_some());
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
        ClientFrame::Presence { id, .. } => (*id, "presence"),
        ClientFrame::PresenceStats { id, .. } => (*id, "presence_stats"),
        ClientFrame::Ack { id, .. } => (*id, "ack"),
    }
}
