//! The Lua scripts of presence, online status and the event stream.
//!
//! Online status lives in one hash slot, the one of the event stream (every key carries the
//! stream's name as its hash tag), so that each user's transition and the event that reports
//! it are one atomic step, on one Redis or a Cluster alike: an event is in the stream exactly
//! when its transition happened, and a user's events are in the stream in the order of their
//! transitions. Room presence lives in the room's own slot, beside its channel, so that its
//! `join` and `leave` go out on the channel in the order of the changes.

use crate::scripts::lua_varint;

/// A node's number of connections of a user (0: none left).
///
/// The user is online while any node has a connection. The first connection anywhere makes an
/// offline user online (`user_online`); the last one gone makes them `leaving` and due to
/// settle after the grace period; a connection within the grace makes them online again
/// without an event.
///
/// KEYS: the user's per-node counts, the user's state, the node's users, the pending set, the
/// stream. ARGV: user, node, count, now (ms), grace (ms), `1` to write events, stream length,
/// state ttl (ms). Returns 1 (came online), 2 (leaving), or 0.
pub(crate) const USER: &str = r"
local user, node, count, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if count > 0 then
  redis.call('HSET', KEYS[1], node, count)
  redis.call('SADD', KEYS[3], user)
else
  redis.call('HDEL', KEYS[1], node)
  redis.call('SREM', KEYS[3], user)
end
local state = redis.call('HGET', KEYS[2], 'state')
local out = 0
if redis.call('HLEN', KEYS[1]) > 0 then
  if state == 'leaving' then
    redis.call('HSET', KEYS[2], 'state', 'online')
    redis.call('ZREM', KEYS[4], user)
  elseif state ~= 'online' then
    local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
    redis.call('HSET', KEYS[2], 'state', 'online', 'since', now)
    if ARGV[6] == '1' then
      local event = cjson.encode({type = 'user_online', user = user, seq = seq, at = now, node = node})
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*', 'type', 'user_online', 'event', event)
    end
    out = 1
  end
elseif state == 'online' then
  redis.call('HSET', KEYS[2], 'state', 'leaving', 'last_seen', now)
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), user)
  out = 2
end
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return out
";

/// Settles a user whose grace period is over: one call only, on whichever node runs it first,
/// finds them due and takes them out of the pending set, so there is one `user_offline` per
/// offline transition however many nodes sweep.
///
/// KEYS: the user's per-node counts, the user's state, the pending set, the stream. ARGV:
/// user, now (ms), `1` to write events, stream length, state ttl (ms). Returns 1 when the user
/// went offline.
pub(crate) const SETTLE: &str = r"
local user, now = ARGV[1], tonumber(ARGV[2])
local due = redis.call('ZSCORE', KEYS[3], user)
if not due or tonumber(due) > now then
  return 0
end
redis.call('ZREM', KEYS[3], user)
if redis.call('HLEN', KEYS[1]) > 0 then
  redis.call('HSET', KEYS[2], 'state', 'online')
  return 0
end
if redis.call('HGET', KEYS[2], 'state') ~= 'leaving' then
  return 0
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local last = tonumber(redis.call('HGET', KEYS[2], 'last_seen')) or now
redis.call('HSET', KEYS[2], 'state', 'offline')
if ARGV[3] == '1' then
  local event = cjson.encode({type = 'user_offline', user = user, seq = seq, at = now, last_seen = last})
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'type', 'user_offline', 'event', event)
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
";

/// A node's number of connections of a user in a room (0: none left).
///
/// The user is in the room while any node has a connection of theirs there; the first one
/// publishes the `join` envelope on the room's channel, the last one the `leave` envelope
/// (either may be empty: no frames for the room).
///
/// KEYS: the room's (user, node) counts, the room's per-user node counts. ARGV: user, node,
/// count, publish command, channel, join envelope, leave envelope. Returns 1 (joined), 2
/// (left), or 0.
pub(crate) const ROOM: &str = r"
local field = ARGV[1] .. ' ' .. ARGV[2]
local out = 0
if tonumber(ARGV[3]) > 0 then
  if redis.call('HSET', KEYS[1], field, ARGV[3]) == 1 and redis.call('HINCRBY', KEYS[2], ARGV[1], 1) == 1 then
    out = 1
  end
elseif redis.call('HDEL', KEYS[1], field) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[1])
    out = 2
  end
end
local envelope = ARGV[5 + out]
if out > 0 and envelope and envelope ~= '' then
  redis.call(ARGV[4], ARGV[5], envelope)
end
return out
";

/// Removes every entry of a dead node from a room; for each user it was the last node of,
/// publishes a `leave` envelope (built here from the room's base envelope, as the publish
/// script appends offsets: protobuf takes fields in any order) and returns the user.
///
/// KEYS: as [`ROOM`]. ARGV: node, publish command, channel, the room's base envelope (room and
/// origin) or '' when no frames go out. Returns the users who left.
pub(crate) const ROOM_NODE_GONE: &str = concat!(
    lua_varint!(),
    r"
local suffix = ' ' .. ARGV[1]
local left = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if #field > #suffix and string.sub(field, -#suffix) == suffix then
    redis.call('HDEL', KEYS[1], field)
    local user = string.sub(field, 1, #field - #suffix)
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      left[#left + 1] = user
      if ARGV[4] ~= '' then
        local inner = string.char(10) .. varint(#user) .. user
        redis.call(ARGV[2], ARGV[3], ARGV[4] .. string.char(114) .. varint(#inner) .. inner)
      end
    end
  end
end
return left
"
);

/// A node's heartbeat: its score in the node set and its description. A node being cleaned up
/// after it was taken for dead is not put back until the cleanup ends.
///
/// KEYS: the node set, the claims, the node's description. ARGV: node, now (ms), description
/// ttl (ms), then field/value pairs. Returns 0 (known), 1 (new: its state in Redis must be
/// written again), 2 (being cleaned up).
pub(crate) const HEARTBEAT: &str = r"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 2
end
local new = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if #ARGV > 3 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 4))
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return new
";

/// Claims a node whose heartbeat is older than the ttl, for one claimer: its score is set to
/// now, so that a claimer that dies mid-cleanup lets another claim it one ttl later.
///
/// KEYS: the node set, the claims. ARGV: node, now (ms), ttl (ms), claimer. Returns 1 when
/// claimed.
pub(crate) const CLAIM: &str = r"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) >= tonumber(ARGV[2]) - tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
";

/// Ends the cleanup of a dead node: forgets it.
///
/// KEYS: the node set, the claims, the node's description, users and rooms. ARGV: node.
pub(crate) const FORGET: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
return 1
";
