//! The Lua scripts a publisher runs. Each touches the keys of one room only, so each runs on
//! that room's slot in a cluster, and publishes on the room's channel, which hashes to the same
//! slot as the keys' hash tag.

/// Assigns the next offset (creating the epoch on the room's first event, or after its keys
/// were lost), then publishes the envelope with `offset` (field 3) and `epoch` (field 4)
/// appended in protobuf encoding.
///
/// KEYS[1] position hash. ARGV: publish command, channel, encoded envelope, epoch for a new room.
/// Returns `{offset, epoch}`.
pub(crate) const PUBLISH: &str = r"
local function varint(n)
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local envelope = ARGV[3] .. string.char(24) .. varint(offset) .. string.char(34) .. varint(#epoch) .. epoch
redis.call(ARGV[1], ARGV[2], envelope)
return {offset, epoch}
";

/// Adds and removes members, then (when anyone was listed for removal) publishes the
/// removal so that every node ends those users' subscriptions.
///
/// KEYS[1] members set. ARGV: publish command, channel, removal envelope or '', number of
/// users to add, the users to add, the users to remove. Returns `{added, removed}`.
pub(crate) const MEMBERS: &str = r"
local adds = tonumber(ARGV[4])
local added, removed = 0, 0
for i = 5, 4 + adds do
  added = added + redis.call('SADD', KEYS[1], ARGV[i])
end
for i = 5 + adds, #ARGV do
  removed = removed + redis.call('SREM', KEYS[1], ARGV[i])
end
if ARGV[3] ~= '' then
  redis.call(ARGV[1], ARGV[2], ARGV[3])
end
return {added, removed}
";

/// Reads a room's position, creating its epoch (at offset 0) when it has none.
///
/// KEYS[1] position hash. ARGV: epoch for a new room. Returns `{offset, epoch}`.
pub(crate) const POSITION: &str = r"
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'offset', 0)
end
local pos = redis.call('HMGET', KEYS[1], 'offset', 'epoch')
return {tonumber(pos[1]) or 0, pos[2]}
";
