//! The Lua scripts a publisher runs. Each touches the keys of one room only, so each runs on
//! that room's slot in a cluster, and publishes on the room's channel, which hashes to the same
//! slot as the keys' hash tag.

/// The Lua function `varint(n)`, the protobuf varint of `n`, for scripts that build envelope
/// bytes; a macro so that each script can `concat!` it in front of its own text. Offsets below
/// 2^21 take one `string.char` and no table: Lua interns every string it makes.
macro_rules! lua_varint {
    () => {
        r"local function varint(n)
  if n < 128 then
    return string.char(n)
  elseif n < 16384 then
    return string.char(n % 128 + 128, math.floor(n / 128))
  elseif n < 2097152 then
    return string.char(n % 128 + 128, math.floor(n / 128) % 128 + 128, math.floor(n / 16384))
  end
  local out = {}
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end
"
    };
}
pub(crate) use lua_varint;

/// Publishes one event, atomically with everything that makes it recoverable: when the id was
/// published within the dedup window it returns that first offset and does nothing else;
/// otherwise it assigns the next offset (creating the epoch on the room's first event, or after
/// its keys were lost, and then dropping any stale history), appends the envelope with `offset`
/// (field 3) and `epoch` (field 4) to the trimmed history stream, remembers the id, and
/// publishes the same bytes. History order is therefore channel order, whoever publishes.
///
/// A room whose epoch began in an older era (see `era.rs`) starts a new epoch like a room
/// whose keys were lost. With an empty publish command nothing is published: the script
/// returns the envelope (for a duplicate, the one kept in history, or '') for the caller to
/// publish once `WAIT` saw the write on the replicas, so that no subscriber ever holds an
/// event a promoted replica may lack.
///
/// What it saves Redis (issue 16; every command a script calls costs about a microsecond of
/// its own besides its work): the offset is written with the position read at the start
/// rather than `HINCRBY`; expiries are refreshed when an eighth of `history_ttl` has passed
/// since the last refresh (Redis' own clock, `TIME`, read before anything is written), to
/// their ttl plus that eighth, so that every key still lives at least its ttl after the room's
/// last event and at most an eighth of `history_ttl` longer; and the stream is trimmed with
/// `MAXLEN ~`, which drops whole listpack nodes rather than one entry per add: it keeps at least
/// `history_size` entries, and history reads still return only the last `history_size`, so
/// what recovers is the same. The id is still checked first and remembered last.
///
/// KEYS: position hash, history stream, message id key, the era hash (one Redis only). ARGV: publish command, channel,
/// encoded envelope, epoch for a new room, `1` to deduplicate by id, history size, history
/// ttl (ms), dedup window (ms), position ttl (ms). Returns `{offset, epoch, duplicate}`, and
/// the envelope fourth when the publish command is empty.
pub(crate) const PUBLISH: &str = concat!(
    lua_varint!(),
    r"
local dedup = ARGV[5] == '1'
if dedup then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local at = string.find(seen, ' ', 1, true)
    local first, first_epoch = tonumber(string.sub(seen, 1, at - 1)), string.sub(seen, at + 1)
    if ARGV[1] ~= '' then
      return {first, first_epoch, 1}
    end
    -- Published by the caller after WAIT: the first attempt may not have got that far.
    local kept = ''
    if redis.call('HGET', KEYS[1], 'epoch') == first_epoch then
      local entry = redis.call('XRANGE', KEYS[2], first .. '-0', first .. '-0')
      if entry[1] then
        kept = entry[1][2][2]
      end
    end
    return {first, first_epoch, 1, kept}
  end
end
local era = ''
if KEYS[4] then
  era = redis.call('HGET', KEYS[4], 'id') or ''
end
-- Read before anything is written: a script that fails half-way is not rolled back, and the
-- only command older ACL lines may lack is this one.
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local pos = redis.call('HMGET', KEYS[1], 'epoch', 'era', 'offset', 'refreshed', 'size')
local epoch = pos[1]
local fresh = not epoch or (pos[2] or '') ~= era
local offset = 1
if fresh then
  epoch = ARGV[4]
else
  offset = (tonumber(pos[3]) or 0) + 1
end
local history_ttl = tonumber(ARGV[7])
local every = math.floor(history_ttl / 8)
local refreshed = tonumber(pos[4])
-- A history size that changed may mean a stream the last refresh did not see.
local refresh = fresh or not refreshed or now_ms - refreshed >= every or now_ms < refreshed or pos[5] ~= ARGV[6]
if fresh then
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 1, 'era', era, 'confirmed', 0, 'refreshed', now_ms, 'size', ARGV[6])
  redis.call('DEL', KEYS[2])
elseif refresh then
  redis.call('HSET', KEYS[1], 'offset', offset, 'refreshed', now_ms, 'size', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'offset', offset)
end
if refresh then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[9]) + every)
end
local envelope = ARGV[3] .. '\24' .. varint(offset) .. '\34' .. varint(#epoch) .. epoch
local size = tonumber(ARGV[6])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, offset .. '-0', 'e', envelope)
  if refresh then
    redis.call('PEXPIRE', KEYS[2], history_ttl + every)
  end
end
-- The id last, once the event is stored: an id is never remembered for an event that is not.
if dedup then
  redis.call('SET', KEYS[3], offset .. ' ' .. epoch, 'PX', ARGV[8])
end
if ARGV[1] == '' then
  return {offset, epoch, 0, envelope}
end
redis.call(ARGV[1], ARGV[2], envelope)
return {offset, epoch, 0}
"
);

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

/// Reads a room's position (creating its epoch at offset 0 when it has none, and then dropping
/// any stale history) and, when `since` is in the current epoch and behind, the history after
/// it, in one atomic step: the entries returned end exactly at the returned offset. With a
/// user, it first checks that the user is in the room's member set, in the same step, so a
/// removal is either seen here or published after it.
///
/// KEYS: position hash, history stream, members set, the era hash (one Redis only; a room
/// of an older era gets a new epoch). ARGV: epoch for a new room, since offset
/// or '', since epoch, position ttl (ms), most entries to return (the history size: only the
/// last that many count as kept), user to check or '', `1` to read only up to the offset
/// replicas confirmed (`redis_wait_replicas`).
/// Returns `{offset, epoch, member, envelope...}` (`member` is 1 when no user was given).
pub(crate) const HISTORY: &str = r"
local member = 1
if ARGV[6] ~= '' then
  member = redis.call('SISMEMBER', KEYS[3], ARGV[6])
  if member == 0 then
    return {0, '', 0}
  end
end
local era = ''
if KEYS[4] then
  era = redis.call('HGET', KEYS[4], 'id') or ''
end
local known = redis.call('HMGET', KEYS[1], 'epoch', 'era')
if not known[1] or (known[2] or '') ~= era then
  -- `refreshed` 0: the stream dropped here gets its expiry at the next publish.
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', 0, 'era', era, 'confirmed', 0, 'refreshed', 0)
  redis.call('DEL', KEYS[2])
end
-- An eighth over the ttl, as the publish script's refreshes, which may skip the next publish.
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + math.floor(tonumber(ARGV[4]) / 8))
local pos = redis.call('HMGET', KEYS[1], 'offset', 'epoch', 'confirmed')
local offset = tonumber(pos[1]) or 0
-- The stream is trimmed with MAXLEN ~ and may hold more: only the last `history_size` count.
local floor = offset - tonumber(ARGV[5])
if ARGV[7] == '1' then
  offset = math.min(offset, tonumber(pos[3]) or 0)
end
local out = {offset, pos[2], member}
if ARGV[2] ~= '' and ARGV[3] == pos[2] and tonumber(ARGV[2]) < offset then
  local from = math.max(tonumber(ARGV[2]), floor)
  local entries = redis.call('XRANGE', KEYS[2], '(' .. from .. '-0', offset .. '-0', 'COUNT', ARGV[5])
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry[2][2]
  end
end
return out
";

/// Reads a page of a room's history without writing anything (the API's `/api/history`): the
/// position and, without `since`, the last `limit` events kept, or with it (when in the
/// current epoch and behind) the first `limit` events after it.
///
/// KEYS: position hash, history stream, the era hash (one Redis only; a room of an older
/// era reads as one without an epoch). ARGV: since offset or '', since epoch, most entries, `1`
/// to read only up to the offset replicas confirmed, history size (only the last that many
/// count as kept).
/// Returns `{offset, epoch, 1, envelope...}` (the HISTORY reply's shape; epoch '' for a room
/// without one).
pub(crate) const HISTORY_PAGE: &str = r"
local pos = redis.call('HMGET', KEYS[1], 'offset', 'epoch', 'era', 'confirmed')
local era = ''
if KEYS[3] then
  era = redis.call('HGET', KEYS[3], 'id') or ''
end
if not pos[2] or (pos[3] or '') ~= era then
  return {0, '', 1}
end
local offset = tonumber(pos[1]) or 0
-- The stream is trimmed with MAXLEN ~ and may hold more: only the last `history_size` count.
local floor = math.max(offset - tonumber(ARGV[5]), 0)
if ARGV[4] == '1' then
  offset = math.min(offset, tonumber(pos[4]) or 0)
end
local out = {offset, pos[2], 1}
if ARGV[1] == '' then
  local entries = redis.call('XREVRANGE', KEYS[2], offset .. '-0', (floor + 1) .. '-0', 'COUNT', ARGV[3])
  for i = #entries, 1, -1 do
    out[#out + 1] = entries[i][2][2]
  end
elseif ARGV[2] == pos[2] and tonumber(ARGV[1]) < offset then
  local from = math.max(tonumber(ARGV[1]), floor)
  local entries = redis.call('XRANGE', KEYS[2], '(' .. from .. '-0', offset .. '-0', 'COUNT', ARGV[3])
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry[2][2]
  end
end
return out
";

/// Gives a room a new epoch when Redis holds less of it than a node delivered: only if the
/// room is still in that epoch below that offset (compare-and-set), in the current era.
///
/// KEYS: position hash, history stream, the era hash (one Redis only). ARGV: the epoch, the
/// offset delivered, the new epoch. Returns 1 when it restarted the room, 0 otherwise.
pub(crate) const RESTART_EPOCH: &str = r"
local pos = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
if pos[1] ~= ARGV[1] or (tonumber(pos[2]) or 0) >= tonumber(ARGV[2]) then
  return 0
end
local era = ''
if KEYS[3] then
  era = redis.call('HGET', KEYS[3], 'id') or ''
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'offset', 0, 'era', era, 'confirmed', 0, 'refreshed', 0)
redis.call('DEL', KEYS[2])
return 1
";

/// After `WAIT` saw a publish on the replicas: raises the room's confirmed offset (what history
/// reads may return, with `redis_wait_replicas`) to it, unless the room moved to another epoch,
/// and publishes the envelope to the nodes.
///
/// KEYS: position hash. ARGV: the epoch, the offset, publish command, channel, envelope or ''.
pub(crate) const CONFIRM: &str = r"
local pos = redis.call('HMGET', KEYS[1], 'epoch', 'confirmed')
if pos[1] == ARGV[1] and (tonumber(pos[2]) or 0) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'confirmed', ARGV[2])
end
if ARGV[5] ~= '' then
  redis.call(ARGV[3], ARGV[4], ARGV[5])
end
return 1
";
