//! [`FaceSocket`]: one Socket.IO session connected to the main namespace: its events as
//! commands, the notices the registry leaves for it, and its deadlines (the token's expiry,
//! retries of rooms it must subscribe again, the refresh of its record).

use std::sync::Arc;
use std::time::Duration;

use roomcast_proto::RoomName;
use roomcast_proto::frames::{ClientFrame, ErrorCode, LeftReason, Position, ServerFrame};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::state::FaceState;
use crate::auth::unix_now;
use crate::broker::PendingJoin;
use crate::close::CloseReason;
use crate::connection::lifetime::Lifetime;
use crate::connection::session::Session;
use crate::node::{Node, SocketSlot};
use crate::socketio::app::Event;
use crate::socketio::events::{Command, EventTable};
use crate::socketio::store::{Kind, SessionStore};

/// A room the server subscribes again gives up after this many failed tries.
const REJOIN_TRIES: u32 = 5;
/// The first pause before a failed rejoin is tried again; it doubles.
const REJOIN_PAUSE: Duration = Duration::from_millis(500);

/// A connected Socket.IO session.
#[derive(Debug)]
pub struct FaceSocket {
    session: Session,
    state: Arc<FaceState>,
    pid: String,
    pending: Vec<PendingJoin>,
    leeway: Duration,
    /// Rooms to subscribe again, when, and how many tries are left.
    retries: Vec<(Instant, RoomName, u32)>,
    /// Retries whose time came, for the task to run.
    retries_due: Vec<(RoomName, u32)>,
    /// When the record is saved again (so it outlives a long-lived session).
    save_by: Instant,
    /// The refresh of the record came due; the task saves it.
    save_due: bool,
    _lifetime: Lifetime,
    _slot: SocketSlot,
}

/// The argument of `roomcast:subscribe`.
#[derive(Debug, Deserialize)]
struct SubscribeArgs {
    room: String,
    token: Option<String>,
    since: Option<Position>,
}

/// The argument of `roomcast:emit`.
#[derive(Debug, Deserialize)]
struct EmitArgs {
    room: String,
    event: String,
    data: Option<Box<RawValue>>,
}

impl FaceSocket {
    pub(super) fn new(
        session: Session,
        state: Arc<FaceState>,
        lifetime: Lifetime,
        slot: SocketSlot,
        pid: String,
        pending: Vec<PendingJoin>,
        leeway: Duration,
    ) -> Self {
        let save_by = Instant::now() + Duration::from_secs(30);
        Self {
            session,
            state,
            pid,
            pending,
            leeway,
            retries: Vec::new(),
            retries_due: Vec::new(),
            save_by,
            save_due: true,
            _lifetime: lifetime,
            _slot: slot,
        }
    }

    /// Finishes the joins started at connect, now that the CONNECT reply is queued: the slots
    /// take their positions first, so the events that follow are numbered from them.
    pub(super) fn finish_joins(&mut self, node: &Node) {
        for join in std::mem::take(&mut self.pending) {
            let at = join.start();
            self.state.position(join.room.as_str(), &at.epoch, at.offset);
            node.broker.finish_join(join);
        }
    }

    /// Carries out a client event: a mapped one, a `roomcast:*` one, or (with an ack) an error.
    pub(super) async fn event(&mut self, table: &EventTable, event: Event) -> Result<(), CloseReason> {
        let arg: Option<Value> = event.args.first().and_then(|a| serde_json::from_str(a.get()).ok());
        let id = event.ack;
        let frame = match (event.name.as_str(), table.get(&event.name)) {
            (_, Some(mapping)) => {
                let Some(room) = mapping.room(arg.as_ref()) else {
                    return self
                        .refuse(id, &format!("{}: the argument lacks a field of the room template", event.name));
                };
                match mapping.command {
                    Command::Subscribe => {
                        ClientFrame::Subscribe { id, room, token: None, since: None, presence: false }
                    }
                    Command::Unsubscribe => ClientFrame::Unsubscribe { id, room },
                    Command::Emit => {
                        ClientFrame::Emit { id, room, event: event.name.clone(), data: event.args.into_iter().next() }
                    }
                }
            }
            ("roomcast:subscribe", None) => match arg.map(serde_json::from_value::<SubscribeArgs>) {
                Some(Ok(a)) => {
                    ClientFrame::Subscribe { id, room: a.room, token: a.token, since: a.since, presence: false }
                }
                _ => return self.refuse(id, "roomcast:subscribe needs {room, token?, since?}"),
            },
            ("roomcast:unsubscribe", None) => match arg.as_ref().and_then(|a| a.get("room")?.as_str()) {
                Some(room) => ClientFrame::Unsubscribe { id, room: room.to_owned() },
                None => return self.refuse(id, "roomcast:unsubscribe needs {room}"),
            },
            ("roomcast:emit", None) => match event.args.first().map(|a| serde_json::from_str::<EmitArgs>(a.get())) {
                Some(Ok(a)) => ClientFrame::Emit { id, room: a.room, event: a.event, data: a.data },
                _ => return self.refuse(id, "roomcast:emit needs {room, event, data}"),
            },
            ("roomcast:refresh", None) => match arg.as_ref().and_then(|a| a.get("token")?.as_str()) {
                Some(token) => ClientFrame::Refresh { id, token: token.to_owned() },
                None => return self.refuse(id, "roomcast:refresh needs {token}"),
            },
            (name, None) => return self.refuse(id, &format!("{name:?} is not an event this server takes")),
        };
        let room = match &frame {
            ClientFrame::Subscribe { room, .. } | ClientFrame::Unsubscribe { room, .. } => Some(room.clone()),
            _ => None,
        };
        self.session.execute(frame).await?;
        if let Some(room) = room.and_then(|r| RoomName::parse(&r).ok())
            && !self.session.node().registry.is_in(self.session.member().id, &room)
        {
            self.state.gone(room.as_str());
        }
        Ok(())
    }

    /// Answers a bad event: an error ack when one was asked for, else `roomcast:error`.
    fn refuse(&self, id: Option<u64>, message: &str) -> Result<(), CloseReason> {
        let frame = ServerFrame::Error { id, code: ErrorCode::BadRequest, message: message.to_owned() };
        let json = String::from_utf8(frame.to_json()).unwrap_or_default();
        let text = match id {
            Some(id) => format!("43{id}[{json}]"),
            None => format!(r#"42["roomcast:error",{json}]"#),
        };
        self.session.member().send(text.into(), std::time::Instant::now());
        Ok(())
    }

    /// Handles what the registry left: a removal is told to the app; a room that lost its
    /// continuity is subscribed again from the client's position (the app is told to reload
    /// only when history cannot cover the gap).
    pub(super) async fn handle_notices(&mut self) -> Result<(), CloseReason> {
        for (room, tries) in std::mem::take(&mut self.retries_due) {
            if let Some(slot) = self.state.slot(room.as_str()) {
                self.rejoin(room, slot.offset, slot.epoch, tries).await?;
            }
        }
        for (room, reason) in self.state.take_notices() {
            let Some(slot) = self.state.slot(room.as_str()) else { continue };
            match reason {
                LeftReason::Removed => {
                    self.state.gone(room.as_str());
                    let body = serde_json::json!({"room": room.as_str(), "reason": "removed"});
                    self.session
                        .member()
                        .send(format!(r#"42["roomcast:left",{body}]"#).into(), std::time::Instant::now());
                }
                LeftReason::Resubscribe => self.rejoin(room, slot.offset, slot.epoch, REJOIN_TRIES).await?,
            }
        }
        Ok(())
    }

    async fn rejoin(&mut self, room: RoomName, offset: u64, epoch: String, tries: u32) -> Result<(), CloseReason> {
        self.state.rejoining(&room);
        let since = Some(Position { offset, epoch });
        self.session
            .execute(ClientFrame::Subscribe { id: None, room: room.to_string(), token: None, since, presence: false })
            .await?;
        if !self.session.node().registry.is_in(self.session.member().id, &room) {
            if tries > 1 {
                let pause = REJOIN_PAUSE * 2u32.pow(REJOIN_TRIES - tries);
                self.retries.push((Instant::now() + pause, room, tries - 1));
            } else {
                self.state.gone(room.as_str());
                let body = serde_json::json!({"room": room.as_str(), "reason": "resubscribe"});
                self.session.member().send(format!(r#"42["roomcast:left",{body}]"#).into(), std::time::Instant::now());
            }
        }
        Ok(())
    }

    /// When the session next needs its task: the token's expiry, a retry, the record's refresh.
    pub(super) fn deadline(&self) -> Instant {
        let expiry = self.expiry();
        let retry = self.retries.iter().map(|(at, ..)| *at).min();
        [Some(expiry), retry, Some(self.save_by)].into_iter().flatten().min().unwrap_or(expiry)
    }

    fn expiry(&self) -> Instant {
        let left = Duration::from_secs(self.session.expires_at().saturating_sub(unix_now()));
        Instant::now() + left.min(Duration::from_secs(10 * 365 * 86_400)) + self.leeway
    }

    /// A deadline passed: an expired token ends the session; due retries and the record's
    /// refresh are left for the task (it was woken). Every deadline that passed moves, so the
    /// task does not come back at once.
    pub(super) fn deadline_passed(&mut self, ttl: Duration) -> Result<(), CloseReason> {
        let now = Instant::now();
        if self.session.expires_at().saturating_add(self.leeway.as_secs()) < unix_now() {
            return Err(CloseReason::TokenExpired);
        }
        if self.save_by <= now {
            self.save_due = true;
            self.save_by = now + ttl / 2;
        }
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.retries).into_iter().partition(|(at, ..)| *at <= now);
        self.retries = later;
        self.retries_due.extend(due.into_iter().map(|(_, room, tries)| (room, tries)));
        Ok(())
    }

    /// Saves the record when it changed, or when it is time to refresh its expiry.
    pub(super) async fn save(&mut self, store: &SessionStore, ttl: Duration) {
        let record = match self.state.take_dirty() {
            Some(record) => record,
            None if std::mem::take(&mut self.save_due) => self.state.record(),
            None => return,
        };
        self.save_due = false;
        self.save_by = Instant::now() + ttl / 2;
        if let Ok(bytes) = serde_json::to_vec(&record) {
            store.save(Kind::Session, &self.pid, bytes, ttl).await;
        }
    }
}
