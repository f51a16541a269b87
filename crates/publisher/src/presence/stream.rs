//! Reading the event stream `<prefix>roomcast:events` with a consumer group: what a backend
//! does to see every event once or more, also those written while it was down, and what a
//! gateway node does to relay them to a webhook.

use redis::{Script, Value};

use super::PresenceKeys;
use crate::{Error, Publisher};

/// One event read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The stream entry id (`<ms>-<n>`), unique and increasing: use it to drop duplicates.
    pub id: String,
    /// The event, a JSON object with a `type`.
    pub json: String,
}

/// Renews `KEYS[1]` for `ARGV[1]` if it holds it, or takes it if nobody does.
const LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
";

impl Publisher {
    fn event_keys(&self) -> PresenceKeys {
        PresenceKeys::new(self.prefix())
    }

    /// Creates consumer group `group` on the event stream, starting at `start` (`$`: events
    /// from now on, `0`: every event kept); a group that exists is left as it is.
    pub async fn create_event_group(&self, group: &str, start: &str) -> Result<(), Error> {
        let keys = self.event_keys();
        let cmd = redis::cmd("XGROUP").arg("CREATE").arg(keys.stream()).arg(group).arg(start).arg("MKSTREAM").clone();
        match self.query::<()>(&cmd).await {
            Err(Error::Refused(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Reads up to `count` events for `consumer` of `group`: with `pending`, those it read
    /// before and did not acknowledge (read them first after a restart), else new ones. Never
    /// blocks.
    pub async fn read_event_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        pending: bool,
    ) -> Result<Vec<StreamEvent>, Error> {
        let keys = self.event_keys();
        let cmd = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("STREAMS")
            .arg(keys.stream())
            .arg(if pending { "0" } else { ">" })
            .clone();
        let reply: Value = self.query(&cmd).await?;
        parse_read(reply)
    }

    /// Acknowledges events of `group`; returns how many were pending.
    pub async fn ack_events(&self, group: &str, ids: &[String]) -> Result<u64, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = self.event_keys();
        self.query(redis::cmd("XACK").arg(keys.stream()).arg(group).arg(ids)).await
    }

    /// Events of the stream `group` has not read yet, when Redis can tell.
    pub async fn event_group_lag(&self, group: &str) -> Result<Option<u64>, Error> {
        let keys = self.event_keys();
        let groups: Value = self.query(redis::cmd("XINFO").arg("GROUPS").arg(keys.stream())).await?;
        for info in items(groups) {
            let fields = pairs(info);
            if fields.iter().any(|(k, v)| k == "name" && text(v).as_deref() == Some(group)) {
                return Ok(fields.iter().find(|(k, _)| k == "lag").and_then(|(_, v)| number(v)));
            }
        }
        Ok(None)
    }

    /// Takes or renews the lease `key` for `holder` for `ttl`; `false` when another holds it.
    pub async fn hold_lease(&self, key: &str, holder: &str, ttl: std::time::Duration) -> Result<bool, Error> {
        let script = Script::new(LEASE);
        let mut call = script.key(key);
        call.arg(holder).arg(crate::Retention::millis(ttl));
        Ok(self.invoke::<u8>(&call).await? == 1)
    }
}

/// The entries of an `XREADGROUP` reply (RESP2 arrays or RESP3 maps).
fn parse_read(reply: Value) -> Result<Vec<StreamEvent>, Error> {
    let mut out = Vec::new();
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(out),
        Value::Map(entries) => entries.into_iter().map(|(_, v)| v).collect(),
        Value::Array(streams) => streams.into_iter().filter_map(|s| items(s).into_iter().nth(1)).collect(),
        other => return Err(Error::Reply(format!("XREADGROUP answered {other:?}"))),
    };
    for entries in streams {
        for entry in items(entries) {
            let mut parts = items(entry).into_iter();
            let (Some(id), Some(fields)) = (parts.next().and_then(|v| text(&v)), parts.next()) else { continue };
            let json = pairs(fields).into_iter().find(|(k, _)| k == "event").and_then(|(_, v)| text(&v));
            // An entry acknowledged-but-deleted comes back with no fields: nothing to relay.
            if let Some(json) = json {
                out.push(StreamEvent { id, json });
            }
        }
    }
    Ok(out)
}

fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

fn pairs(value: Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut flat = items(value).into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        if let Some(k) = text(&k) {
            out.push((k, v));
        }
    }
    out
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}
