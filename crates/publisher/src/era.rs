//! The era: what lets a room's epoch follow a change of Redis master.
//!
//! Offsets are assigned by the master. A replica promoted by an asynchronous failover, or a
//! master restarted from a snapshot, may lack the last writes it acknowledged, and would hand
//! their offsets out again in the same epoch: a client that saw the lost event would skip the
//! new one as a duplicate. So one hash per deployment (the era key, under the channel prefix)
//! remembers the replication id of the master it was last seen on and an era id; every room
//! remembers the era its epoch began in. A connection that reaches a master with another
//! replication id starts a new era before any of its commands run (unless the new master
//! provably holds every acknowledged write), and the scripts give a room of an older era a new
//! epoch at its next publish or read: its subscribers are told, never served a reused offset.
//!
//! Only one Redis (and Sentinel) has an era: in a Cluster a script cannot reach a key outside
//! its room's slot.

use redis::Script;
use redis::aio::MultiplexedConnection;

use crate::RedisOptions;
use crate::ids::new_epoch;

/// Starts a new era when the master changed and cannot be trusted with every acknowledged
/// write.
///
/// KEYS[1] the era hash. ARGV: the master's replication id, its previous one (`master_replid2`:
/// the old master's id on a promoted replica, and on a master restarted from a snapshot of its
/// own), `1` to trust a promoted replica, `1` to trust a restarted master, a new era id, the
/// master's address as the sentinels name it ('' for a fixed URL). A promotion is a previous id
/// that matches at another address; anything else is a restart. Returns 0 (same master, or the
/// first seen), 1 (a new master, trusted) or 2 (a new era began).
const CHECK: &str = r"
local known = redis.call('HMGET', KEYS[1], 'replid', 'addr')
if known[1] == ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'replid', ARGV[1], 'addr', ARGV[6])
if not known[1] then
  return 0
end
local promoted = known[1] == ARGV[2] and ARGV[6] ~= '' and known[2] and known[2] ~= ARGV[6]
if (promoted and ARGV[3] == '1') or (not promoted and ARGV[4] == '1') then
  return 1
end
redis.call('HSET', KEYS[1], 'id', ARGV[5])
return 2
";

/// What `INFO replication` says of a server.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replication {
    /// `master` or `slave`.
    pub role: String,
    /// `master_replid`.
    pub replid: String,
    /// `master_replid2`: the id this server replicated before it was promoted, or zeros.
    pub replid2: String,
}

impl Replication {
    /// Reads the fields out of `INFO replication`'s text.
    pub(crate) fn parse(info: &str) -> Self {
        let mut out = Self::default();
        for line in info.lines() {
            let Some((name, value)) = line.trim_end().split_once(':') else { continue };
            match name {
                "role" => out.role = value.to_owned(),
                "master_replid" => out.replid = value.to_owned(),
                "master_replid2" => out.replid2 = value.to_owned(),
                _ => {}
            }
        }
        out
    }
}

/// Runs the era check on a new connection to a master, before anything else is sent on it.
pub(crate) async fn check(
    conn: &mut MultiplexedConnection,
    key: &str,
    master: &Replication,
    address: &str,
    options: &RedisOptions,
) -> redis::RedisResult<()> {
    let outcome: u8 = Script::new(CHECK)
        .key(key)
        .arg(&master.replid)
        .arg(&master.replid2)
        .arg(if options.wait_replicas > 0 { "1" } else { "0" })
        .arg(if options.durable_restarts { "1" } else { "0" })
        .arg(new_epoch())
        .arg(address)
        .invoke_async(conn)
        .await?;
    match outcome {
        1 => tracing::info!("the Redis master changed; trusted to hold every acknowledged write, epochs go on"),
        2 => tracing::warn!(
            "the Redis master changed and may lack acknowledged writes; every room starts a new epoch at its next use"
        ),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Replication;

    #[test]
    fn reads_the_role_and_both_replication_ids() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:abc\r\nmaster_replid2:0000\r\n";
        let r = Replication::parse(info);
        assert_eq!(r, Replication { role: "master".into(), replid: "abc".into(), replid2: "0000".into() });
    }
}
