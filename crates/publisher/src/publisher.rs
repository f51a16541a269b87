//! [`Publisher`]: a cheap-to-clone handle on the shared Redis, for publishing and for the
//! member registry.
//!
//! One Redis, or the master of a Sentinel group, goes through a [`MasterConnection`] (one
//! multiplexed connection that reconnects to whichever server is master, checking the era
//! first); a cluster through a [`ClusterConnection`] (one multiplexed connection per
//! master). Both pipeline concurrent calls from every clone, so no pool is needed: a pool only
//! pays off for commands that block a connection. The one such command, `WAIT` (with
//! `redis_wait_replicas`), goes on a second connection of its own ([`Replicated`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, Script};
use roomcast_proto::RoomName;
use roomcast_proto::envelope::{self, Envelope, envelope::Body};
use tokio::sync::watch;

use crate::ids::{new_epoch, new_message_id};
use crate::replicated::{Replicated, Stored};
use crate::target::Target;
use crate::{
    Error, Event, History, MasterAt, MasterConnection, Published, RedisOptions, Retention, Sentinels, clients, layout,
    scripts,
};

/// The event's name and data, checked: what every publish of it needs first.
pub(crate) fn checked_data<'e>(event: &'e Event<'_>) -> Result<&'e [u8], Error> {
    if event.event.is_empty() {
        return Err(Error::InvalidArgument("event name is empty".into()));
    }
    event.data.as_deref().map_err(|e| Error::InvalidArgument(e.clone()))
}

/// How long one Redis call may take before it fails as [`Error::Unavailable`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
enum Conn {
    Single(MasterConnection),
    Cluster(ClusterConnection),
}

/// Publishes events and manages member sets; clone it freely, clones share connections.
#[derive(Clone)]
pub struct Publisher {
    conn: Conn,
    prefix: Arc<str>,
    origin: Arc<str>,
    publish_command: &'static str,
    /// The era hash, on one Redis (see `era.rs`); `None` on a cluster.
    era: Option<Arc<str>>,
    /// Publishes acknowledged after `WAIT` (`redis_wait_replicas`), on one Redis.
    replicated: Option<Arc<Replicated>>,
    retention: Retention,
    publish_script: Arc<Script>,
    members_script: Arc<Script>,
    history_script: Arc<Script>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("prefix", &self.prefix).field("command", &self.publish_command).finish()
    }
}

impl Publisher {
    /// Connects to `target` with no channel prefix.
    pub async fn connect(target: Target) -> Result<Self, Error> {
        Self::connect_with(target, "", "").await
    }

    /// Connects to `target`; channels are `prefix` + room, and envelopes carry `origin`
    /// (a gateway's node id; empty for backends).
    pub async fn connect_with(target: Target, prefix: &str, origin: &str) -> Result<Self, Error> {
        Self::connect_with_options(target, &RedisOptions::default(), prefix, origin).await
    }

    /// Like [`Self::connect_with`], with TLS material and credentials from `options`.
    pub async fn connect_with_options(
        target: Target,
        options: &RedisOptions,
        prefix: &str,
        origin: &str,
    ) -> Result<Self, Error> {
        layout::check_prefix(prefix).map_err(Error::InvalidArgument)?;
        let era = layout::era_key(prefix);
        let single = |at: MasterAt| async {
            let conn = MasterConnection::connect(at.clone(), options, Some(era.clone())).await?;
            let replicated = match options.wait_replicas {
                0 => None,
                _ => Some(Arc::new(Replicated::connect(at, options, era.clone()).await?)),
            };
            Ok::<_, Error>((Conn::Single(conn), replicated))
        };
        let ((conn, replicated), publish_command) = match target {
            Target::Redis(url) => (single(MasterAt::Url(url)).await?, "PUBLISH"),
            Target::Sentinel { sentinels, master } => {
                (single(MasterAt::Sentinel(Sentinels::new(&sentinels, &master, options)?)).await?, "PUBLISH")
            }
            Target::Cluster(seeds) => {
                let client = clients::cluster_builder(&seeds, options)?
                    .connection_timeout(DEFAULT_TIMEOUT)
                    .response_timeout(DEFAULT_TIMEOUT)
                    .retries(2)
                    .build()?;
                ((Conn::Cluster(client.get_async_connection().await?), None), "SPUBLISH")
            }
        };
        let single = matches!(conn, Conn::Single(_));
        Ok(Self {
            conn,
            prefix: Arc::from(prefix),
            origin: Arc::from(origin),
            publish_command,
            era: single.then(|| Arc::from(layout::era_key(prefix))),
            replicated,
            retention: Retention::default(),
            publish_script: Arc::new(Script::new(scripts::PUBLISH)),
            members_script: Arc::new(Script::new(scripts::MEMBERS)),
            history_script: Arc::new(Script::new(scripts::HISTORY)),
        })
    }

    /// Uses `retention` instead of the defaults; it must match the gateway nodes' settings.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The retention in use.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether history reads stop at the offset replicas confirmed (`redis_wait_replicas`).
    pub(crate) fn confirms(&self) -> bool {
        self.replicated.is_some()
    }

    /// The era hash the scripts check, on one Redis.
    pub(crate) fn era_key(&self) -> Option<&str> {
        self.era.as_deref()
    }

    /// Counts up each time the sentinels move the master (`None` without Sentinel): a node's
    /// subscriber connection follows it.
    pub fn master_switches(&self) -> Option<watch::Receiver<u64>> {
        match &self.conn {
            Conn::Single(c) => c.master_switches(),
            Conn::Cluster(_) => None,
        }
    }

    /// The publish command in use: `PUBLISH`, or `SPUBLISH` on a cluster.
    pub fn publish_command(&self) -> &'static str {
        self.publish_command
    }

    /// Publishes `event` to every member of its room on every node, in offset order, and keeps
    /// it in the room's history. An event whose id was published to the room within the dedup
    /// window is not published again: the result names the first offset, with `duplicate` set.
    pub async fn publish(&self, event: Event<'_>) -> Result<Published, Error> {
        let room = RoomName::parse(event.room)?;
        let data = checked_data(&event)?;
        // Only a caller's id is remembered: a made-up one can never come again.
        let dedup = event.id.is_some();
        let id = event.id.map_or_else(new_message_id, str::to_owned);
        self.publish_checked(&room, &event, data, &id, dedup).await
    }

    /// Publishes `event` (its name and `data` already checked) into `room` with the message id
    /// `id`, remembered for the dedup window when `dedup`.
    pub(crate) async fn publish_checked(
        &self,
        room: &RoomName,
        event: &Event<'_>,
        data: &[u8],
        id: &str,
        dedup: bool,
    ) -> Result<Published, Error> {
        let channel = layout::channel(&self.prefix, room.as_str());
        let envelope = self.envelope(
            room,
            Body::Event(envelope::Event {
                event: event.event.to_owned(),
                data: data.to_vec().into(),
                id: id.to_owned(),
                exclude_user: event.exclude_user.unwrap_or_default().to_owned(),
                published_at_us: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64),
            }),
        );
        let r = &self.retention;
        let mut invocation = self.publish_script.key(layout::position_key(&channel));
        invocation.key(layout::history_key(&channel)).key(layout::message_id_key(&channel, id));
        if let Some(era) = self.era_key() {
            invocation.key(era);
        }
        // With WAIT the script does not publish: the event goes out once replicas have it.
        let deferred = self.replicated.is_some();
        invocation
            .arg(if deferred { "" } else { self.publish_command })
            .arg(&channel)
            .arg(envelope)
            .arg(new_epoch())
            .arg(if dedup { "1" } else { "0" })
            .arg(r.history_size)
            .arg(Retention::millis(r.history_ttl))
            .arg(Retention::millis(r.dedup_window))
            .arg(Retention::millis(r.position_ttl()));
        let (offset, epoch, duplicate): Stored = match &self.replicated {
            Some(replicated) => {
                let position = layout::position_key(&channel);
                replicated.publish(&invocation, &position, self.publish_command, &channel).await?
            }
            None => self.invoke(&invocation).await?,
        };
        Ok(Published { offset, epoch, id: id.to_owned(), duplicate: duplicate == 1 })
    }

    /// Adds and removes users of `room`'s member set; removed users' live subscriptions end on
    /// every node. Returns how many were really added and removed.
    pub async fn update_members<S: AsRef<str>>(
        &self,
        room: &str,
        add: &[S],
        remove: &[S],
    ) -> Result<(u64, u64), Error> {
        let room = RoomName::parse(room)?;
        if add.iter().chain(remove).any(|u| u.as_ref().is_empty()) {
            return Err(Error::InvalidArgument("a user id is empty".into()));
        }
        let channel = layout::channel(&self.prefix, room.as_str());
        let removal = if remove.is_empty() {
            Vec::new()
        } else {
            let users = remove.iter().map(|u| u.as_ref().to_owned()).collect();
            self.envelope(&room, Body::MembersRemoved(envelope::MembersRemoved { users }))
        };
        let mut invocation = self.members_script.key(layout::members_key(&channel));
        invocation.arg(self.publish_command).arg(&channel).arg(removal).arg(add.len());
        for user in add.iter().chain(remove) {
            invocation.arg(user.as_ref());
        }
        self.invoke(&invocation).await
    }

    /// Whether `user` is in `room`'s member set.
    pub async fn is_member(&self, room: &RoomName, user: &str) -> Result<bool, Error> {
        let key = layout::members_key(&layout::channel(&self.prefix, room.as_str()));
        self.query(redis::cmd("SISMEMBER").arg(key).arg(user)).await
    }

    /// The room's last offset (0 before its first event) and its epoch, which is created here
    /// if the room has none yet, so that a subscriber's position names the epoch to come.
    pub async fn position(&self, room: &RoomName) -> Result<(u64, String), Error> {
        let history = self.history(room, None).await?;
        Ok((history.offset, history.epoch))
    }

    /// The room's position and, when `since` (offset, epoch) is in the room's epoch and behind
    /// it, the kept events after it, read atomically (the events end at the position).
    pub async fn history(&self, room: &RoomName, since: Option<(u64, &str)>) -> Result<History, Error> {
        let history = self.read_history(room, since, None).await?;
        history.ok_or_else(|| Error::Reply("the history script refused a read without a user".into()))
    }

    /// Like [`Self::history`], but only when `user` is in the room's member set (checked in
    /// the same atomic step); `None` when not.
    pub async fn history_if_member(
        &self,
        room: &RoomName,
        since: Option<(u64, &str)>,
        user: &str,
    ) -> Result<Option<History>, Error> {
        if user.is_empty() {
            return Err(Error::InvalidArgument("a user id is empty".into()));
        }
        self.read_history(room, since, Some(user)).await
    }

    async fn read_history(
        &self,
        room: &RoomName,
        since: Option<(u64, &str)>,
        user: Option<&str>,
    ) -> Result<Option<History>, Error> {
        let channel = layout::channel(&self.prefix, room.as_str());
        let mut invocation = self.history_script.key(layout::position_key(&channel));
        invocation.key(layout::history_key(&channel)).key(layout::members_key(&channel));
        if let Some(era) = self.era_key() {
            invocation.key(era);
        }
        let (since_offset, since_epoch) = since.map_or((String::new(), ""), |(o, e)| (o.to_string(), e));
        invocation
            .arg(new_epoch())
            .arg(since_offset)
            .arg(since_epoch)
            .arg(Retention::millis(self.retention.position_ttl()))
            .arg(self.retention.history_size.max(1))
            .arg(user.unwrap_or_default())
            .arg(if self.confirms() { "1" } else { "0" });
        History::from_reply(self.invoke(&invocation).await?)
    }

    /// Relays an ephemeral event from `from_user` to the other members of `room` (no offset,
    /// no history).
    pub async fn emit(&self, room: &RoomName, event: &str, data: &[u8], from_user: &str) -> Result<(), Error> {
        let body = Body::Emit(envelope::Emit {
            event: event.to_owned(),
            data: data.to_vec().into(),
            from_user: from_user.to_owned(),
        });
        self.send(room, body).await.map(drop)
    }

    /// Closes every connection of `user` on every node with `code`. Returns how many nodes
    /// hold a connection of the user (Redis's count of receivers).
    pub async fn disconnect_user(&self, user: &str, code: u16) -> Result<u64, Error> {
        let room = RoomName::user(user)?;
        let body = Body::Disconnect(envelope::Disconnect { user: user.to_owned(), code: u32::from(code) });
        self.send(&room, body).await
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }

    async fn send(&self, room: &RoomName, body: Body) -> Result<u64, Error> {
        let channel = layout::channel(&self.prefix, room.as_str());
        let envelope = self.envelope(room, body);
        self.query(redis::cmd(self.publish_command).arg(channel).arg(envelope)).await
    }

    pub(crate) fn envelope(&self, room: &RoomName, body: Body) -> Vec<u8> {
        Envelope {
            room: room.to_string(),
            origin: self.origin.to_string(),
            offset: 0,
            epoch: String::new(),
            body: Some(body),
        }
        .encode_to_vec()
    }

    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let once = || async {
            match &self.conn {
                Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
                Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            }
        };
        Ok(retry_once_if_dropped(once).await?)
    }

    pub(crate) async fn invoke<T: FromRedisValue>(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<T, Error> {
        let once = || async {
            match &self.conn {
                Conn::Single(c) => invocation.invoke_async(&mut c.clone()).await,
                Conn::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
            }
        };
        Ok(retry_once_if_dropped(once).await?)
    }

    /// Runs `pipe` (whose keys share one slot in a cluster) in one round trip.
    pub(crate) async fn pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, Error> {
        let once = || async {
            match &self.conn {
                Conn::Single(c) => pipe.query_async(&mut c.clone()).await,
                Conn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
            }
        };
        Ok(retry_once_if_dropped(once).await?)
    }
}

/// Runs `call` again once when it failed on a connection that had died before it was sent (the
/// first call after a Redis restart): the connection is only replaced after such a failure. A call that reached Redis and lost its reply is not retried here; the caller
/// retries it, with the same message id for a publish.
async fn retry_once_if_dropped<T, F, Fut>(call: F) -> redis::RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match call().await {
        Err(e) if e.is_connection_dropped() => {
            tracing::debug!(error = %e, "redis connection was dropped; retrying once on a new one");
            call().await
        }
        result => result,
    }
}
