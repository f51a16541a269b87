//! [`Face`]: roomcast as a Socket.IO server, another face of the same connections.
//!
//! A Socket.IO session that connects the main namespace becomes a [`Member`] like a `/ws`
//! connection: the same token verification (the token in `auth.token`, `?token=` or
//! `Authorization`), the same `user:`/`org:` rooms joined at connect, the same commands through
//! the same [`Session`] (mapped from its events by the [`EventTable`]), limits, metrics and
//! close accounting. A published event reaches it as `socket.on(event, data)` with its position
//! vector as the last argument; the CONNECT reply carries the session's `pid`, and a client
//! that comes back with `{pid, offset}` (socket.io-client does so by itself) has its rooms
//! restored from the session's record and exactly the events it missed replayed from history,
//! on any node, or gets a new session.
//!
//! # Layout
//! - `mod.rs`: connect, restore, and the App's other calls.
//! - `socket.rs`: one connected session: events to commands, notices, deadlines.
//! - `state.rs`: positions, the record, notices and encoding.

mod socket;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use roomcast_proto::RoomName;
use roomcast_proto::frames::Position;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::app::{App, Ctx, Event, Refused};
use super::events::EventTable;
use super::store::{Kind, SessionStore};
use crate::auth::AuthError;
use crate::broker::{Access, BrokerError, PendingJoin, Started};
use crate::close::CloseReason;
use crate::connection::lifetime::Lifetime;
use crate::connection::session::Session;
use crate::node::Node;
use crate::rooms::Member;
pub use socket::FaceSocket;
use state::{FaceReplies, FaceState, Record, parse_vector};

/// The gateway's Socket.IO application.
#[derive(Debug)]
pub struct Face {
    node: Arc<Node>,
    events: EventTable,
    store: Arc<SessionStore>,
    /// How long a session's record outlives its last save (it is saved again while connected).
    record_ttl: Duration,
}

/// The `auth` of a CONNECT: a token, and socket.io-client's recovery fields.
#[derive(Debug, Default, serde::Deserialize)]
struct Auth {
    token: Option<String>,
    pid: Option<String>,
    offset: Option<String>,
}

fn refused(message: &str, code: &str) -> Refused {
    Refused { message: message.to_owned(), data: Some(serde_json::json!({"code": code})) }
}

impl Face {
    /// The face of `node`, keeping session records in `store`.
    pub fn new(node: Arc<Node>, store: Arc<SessionStore>) -> Self {
        let events = node.config.socketio_events.clone();
        let record_ttl = node.config.retention.history_ttl.max(Duration::from_secs(60));
        Self { node, events, store, record_ttl }
    }

    /// Starts the joins of a restored session (every live room of `record`, from the client's
    /// positions in `offset`); `None` when any of them cannot be recovered exactly.
    async fn restore(
        &self,
        member: &Arc<Member>,
        org: Option<&str>,
        record: &Record,
        offset: Option<&str>,
    ) -> Option<Vec<PendingJoin>> {
        let offsets = offset.and_then(parse_vector).unwrap_or_default();
        let mut joins = Vec::new();
        let mut complete = true;
        for (i, slot) in record.slots.iter().enumerate().filter(|(_, s)| s.live) {
            let Ok(room) = RoomName::parse(&slot.room) else { return None };
            let since = Position { offset: offsets.get(i).copied().unwrap_or(slot.offset), epoch: slot.epoch.clone() };
            let Some(access) = access(&room, &member.user, org) else {
                complete = false;
                break;
            };
            match self.node.broker.start_join(&room, member, access, Some(&since)).await {
                Ok(Started::Pending(join)) if join.recovered == Some(true) => joins.push(join),
                Ok(Started::Pending(join)) => {
                    joins.push(join);
                    complete = false;
                    break;
                }
                Ok(Started::NotMember) | Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            return Some(joins);
        }
        for join in joins {
            self.node.broker.abort_join(join);
        }
        None
    }

    /// Starts the automatic joins of a new session's `rooms`, from their current positions.
    async fn own_rooms(&self, member: &Arc<Member>, rooms: &[RoomName]) -> Result<Vec<PendingJoin>, BrokerError> {
        let mut joins = Vec::new();
        for room in rooms {
            if let Started::Pending(join) = self.node.broker.start_join(room, member, Access::Granted, None).await? {
                joins.push(join);
            }
        }
        Ok(joins)
    }
}

/// How `user` of `org` may join `room` on a restore; `None` for another user's or org's room.
fn access(room: &RoomName, user: &Arc<str>, org: Option<&str>) -> Option<Access> {
    match room.kind() {
        roomcast_proto::RoomKind::User(owner) => (owner == &**user).then_some(Access::Granted),
        roomcast_proto::RoomKind::Org(o) => (Some(o) == org).then_some(Access::Granted),
        roomcast_proto::RoomKind::Members => Some(Access::Member(Arc::clone(user))),
    }
}

impl App for Face {
    type Socket = FaceSocket;

    fn serves(&self, namespace: &str) -> bool {
        namespace == super::packet::MAIN
    }

    fn accepting(&self) -> bool {
        !self.node.is_draining()
    }

    async fn connect(
        &self,
        ctx: &Ctx,
        _: &str,
        auth: Option<&RawValue>,
    ) -> Result<(FaceSocket, Option<String>), Refused> {
        let node = &self.node;
        let auth: Auth = auth.and_then(|a| serde_json::from_str(a.get()).ok()).unwrap_or_default();
        let Some(token) =
            auth.token.clone().or_else(|| ctx.request.token.clone()).or_else(|| ctx.request.bearer.clone())
        else {
            node.metrics.auth_failed("invalid");
            return Err(refused("no token: give it in auth, ?token= or Authorization", "unauthorized"));
        };
        let claims = node.verifier.verify_connection(&token).map_err(|e| {
            node.metrics.auth_failed(e.label());
            let code = if e == AuthError::Expired { "token_expired" } else { "unauthorized" };
            refused(&e.to_string(), code)
        })?;
        let user_room = RoomName::user(&claims.sub).map_err(|e| refused(&format!("token: {e}"), "unauthorized"))?;
        let org_room = claims.org.as_deref().map(RoomName::org).transpose();
        let org_room = org_room.map_err(|e| refused(&format!("token: {e}"), "unauthorized"))?;
        let slot = node.take_slot();
        if slot.over_limit {
            return Err(refused("the node is at its connection limit", "too_many_connections"));
        }
        let state = FaceState::new(&claims.sub, Arc::clone(&ctx.wake));
        let member = Arc::new(Member::with_face(
            node.next_conn_id(),
            Arc::from(claims.sub.as_str()),
            Arc::clone(&ctx.session.outbox),
            Arc::clone(&node.metrics),
            state.clone(),
        ));
        ctx.session.set_encoder(state.clone());
        let lifetime = Lifetime::begin(node, &member);
        let replies = Arc::new(FaceReplies { state: Arc::clone(&state) });
        let session = Session::new(Arc::clone(node), Arc::clone(&member), replies, claims.org.clone(), claims.exp);

        let record = match &auth.pid {
            Some(pid) => {
                self.store.load(Kind::Session, pid).await.and_then(|r| serde_json::from_slice::<Record>(&r).ok())
            }
            None => None,
        };
        let restored = match (&auth.pid, record.filter(|r| r.user == claims.sub)) {
            (Some(pid), Some(record)) => self
                .restore(&member, claims.org.as_deref(), &record, auth.offset.as_deref())
                .await
                .map(|j| (pid.clone(), j)),
            _ => None,
        };
        let (pid, joins) = match restored {
            Some(restored) => restored,
            None => {
                let rooms: Vec<RoomName> = [Some(user_room), org_room].into_iter().flatten().collect();
                let joins = self.own_rooms(&member, &rooms).await.map_err(|e| {
                    tracing::warn!(conn = member.id, error = %crate::broker::causes(&e), "auto-join failed");
                    member.close(CloseReason::BrokerUnavailable);
                    refused("the node cannot reach its broker; retry", "unavailable")
                })?;
                (new_pid(), joins)
            }
        };
        let socket = FaceSocket::new(session, state, lifetime, slot, pid.clone(), joins, self.node.verifier.leeway());
        Ok((socket, Some(pid)))
    }

    fn after_connect(&self, ctx: &Ctx, _: &str, socket: &mut FaceSocket) {
        socket.finish_joins(&self.node);
        ctx.wake.notify_one();
    }

    async fn event(&self, ctx: &Ctx, _: &str, socket: &mut FaceSocket, event: Event) -> Result<(), CloseReason> {
        socket.event(&self.events, event).await?;
        socket.save(&self.store, self.record_ttl).await;
        let _ = ctx;
        Ok(())
    }

    fn deadline(&self, socket: &FaceSocket) -> Option<Instant> {
        Some(socket.deadline())
    }

    fn deadline_passed(&self, ctx: &Ctx, socket: &mut FaceSocket) -> Result<(), CloseReason> {
        socket.deadline_passed(self.record_ttl)?;
        ctx.wake.notify_one();
        Ok(())
    }

    async fn woken(&self, _: &Ctx, socket: &mut FaceSocket) -> Result<(), CloseReason> {
        socket.handle_notices().await?;
        socket.save(&self.store, self.record_ttl).await;
        Ok(())
    }
}

/// A new session's private id.
fn new_pid() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}
