//! [`Replicated`]: publishes acknowledged only once replicas hold them (`redis_wait_replicas`).
//!
//! The publish script stores the event without publishing it; on the same connection `WAIT`
//! then waits for the replicas (it counts the writes of its own connection), and only then one
//! script raises the room's confirmed offset (the most history reads return) and publishes the
//! event to the nodes. So no client, live or reading history, ever holds an event a promoted
//! replica may lack. `WAIT` blocks its connection in Redis, so these publishes have a
//! connection of their own: joins, presence and health checks never queue behind one.

use std::time::Duration;

use redis::{RedisError, Script, ScriptInvocation};

use crate::{Error, MasterAt, MasterConnection, RedisOptions, scripts};

/// How long `WAIT` waits for the replicas before the publish fails as unavailable.
const WAIT_MILLIS: u64 = 1000;

/// The connection and settings of replicated publishes.
pub(crate) struct Replicated {
    conn: MasterConnection,
    replicas: u32,
    confirm: Script,
}

/// What the publish script answered: offset, epoch, whether a duplicate.
pub(crate) type Stored = (u64, String, u8);

impl Replicated {
    /// Connects the publishes' own connection to `at` (with the era check under `era`).
    pub(crate) async fn connect(at: MasterAt, options: &RedisOptions, era: String) -> Result<Self, Error> {
        let conn = MasterConnection::connect(at, options, Some(era)).await?;
        Ok(Self { conn, replicas: options.wait_replicas, confirm: Script::new(scripts::CONFIRM) })
    }

    /// Runs `invocation` (the publish script, told not to publish), waits for the replicas,
    /// then confirms and publishes the event on `channel` with `command`.
    pub(crate) async fn publish(
        &self,
        invocation: &ScriptInvocation<'_>,
        position_key: &str,
        command: &str,
        channel: &str,
    ) -> Result<Stored, Error> {
        let (generation, mut conn) = self.conn.get().await?;
        let stored = async {
            let (offset, epoch, duplicate, envelope): (u64, String, u8, Vec<u8>) =
                invocation.invoke_async(&mut conn).await?;
            let acked: u32 = redis::cmd("WAIT").arg(self.replicas).arg(WAIT_MILLIS).query_async(&mut conn).await?;
            Ok::<_, RedisError>((offset, epoch, duplicate, envelope, acked))
        };
        let (offset, epoch, duplicate, envelope, acked) =
            match tokio::time::timeout(Duration::from_millis(WAIT_MILLIS * 2), stored).await {
                Ok(Ok(stored)) => stored,
                Ok(Err(e)) => {
                    self.conn.failed(generation, &e);
                    return Err(e.into());
                }
                Err(_) => return Err(unavailable("no answer to the publish and its WAIT in time")),
            };
        if acked < self.replicas {
            // Stored, not confirmed: invisible to history reads until a later publish is
            // confirmed (replication is in order); a retry with the same id confirms it.
            return Err(unavailable("fewer replicas than redis_wait_replicas acknowledged the publish in time"));
        }
        let mut confirm = self.confirm.key(position_key);
        confirm.arg(&epoch).arg(offset).arg(command).arg(channel).arg(envelope);
        if let Err(e) = confirm.invoke_async::<u8>(&mut conn).await {
            self.conn.failed(generation, &e);
            return Err(e.into());
        }
        Ok((offset, epoch, duplicate))
    }
}

fn unavailable(message: &'static str) -> Error {
    Error::Unavailable(RedisError::from((redis::ErrorKind::Io, message)))
}
