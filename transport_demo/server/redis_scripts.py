"""The Lua scripts of the Redis hub: each operation on a connection is one script, so it is atomic.

Redis runs a script to the end before any other command (no other client sees half of it), which
is what keeps seq gapless across processes: two appends can never read the same counter. The
idea is Centrifugo's (its Redis engine's ``broker_history_add_stream.lua``: ``HINCRBY`` the
offset, ``XADD`` with that offset as the entry id, publish, set the expiry, in one script).

Keys of one connection (``{id}`` is a Redis Cluster hash tag, so both live in one slot):

* ``td:{id}`` a hash: ``t`` transport, ``c`` created (Unix seconds), ``s`` newest seq, ``a``
  acknowledged, ``r`` released (handed to a socket), ``d`` delivered, ``rc`` received, ``hb``
  heartbeats, ``ls`` last seen (ms), ``x`` detached at (ms), ``o`` the process a poll or stream is
  attached on, ``k`` that waiter's token (``""`` when none is attached).
* ``td:{id}:log`` a stream whose entry ids are ``<seq>-0`` and whose field ``d`` is the encoded
  event: exactly the bytes of the first delivery.
* ``td:index`` a sorted set: every connection id, scored by when its keys expire (ms).

Every script takes ``KEYS = (hash, log, index)`` and ``ARGV[1] = id``. Expiry is Redis's own
(``PEXPIRE``): a connection nobody polls or resumes disappears by itself, on every process at once.
Negative answers: -1 unknown (or another transport's), -2 queue full, -3 the client has seen a
seq this store never had (history lost), -4 the waiter was superseded, -5 too many connections.
"""

from __future__ import annotations

__all__ = ["APPEND", "ATTACH", "BEAT", "CREATE", "DETACH", "POLL", "TAKE"]

_PRELUDE = """
local h, log, index, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function keep(ms)
  ms = math.max(1, math.floor(ms))
  redis.call('PEXPIRE', h, ms)
  redis.call('PEXPIRE', log, ms)
  redis.call('ZADD', index, now + ms, id)
  -- Counted against its client address (classroom limits): the address's set lives as long as
  -- its longest-lived connection; a member whose score is past is a connection that expired.
  local ad = redis.call('HGET', h, 'ad')
  if ad then
    local ak = 'td:a:' .. ad
    redis.call('ZADD', ak, now + ms, id)
    if redis.call('PTTL', ak) < ms then redis.call('PEXPIRE', ak, ms) end
    redis.call('ZADD', 'td:addrs', 'GT', now + ms, ad)  -- addresses holding any (for /stats)
  end
end
local function trim(a, r, s, window)
  -- free seq <= acked; past the window also what was released (as Connection._trim)
  local minid = a + 1
  local keep_from = math.min(r + 1, s - window + 1)
  if keep_from > minid then minid = keep_from end
  redis.call('XTRIM', log, 'MINID', minid .. '-0')
end
local function num(field)
  return tonumber(redis.call('HGET', h, field) or '0')
end
local function range(after, count, budget)
  -- At most count entries and budget bytes of data (never fewer than one entry).
  local out = {}
  local size = 0
  local entries = redis.call('XRANGE', log, (after + 1) .. '-0', '+', 'COUNT', count)
  for i, e in ipairs(entries) do
    size = size + #e[2][2]
    if size > budget and i > 1 then break end
    out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))
    out[#out + 1] = e[2][2]
  end
  return out
end
"""

CREATE = (
    _PRELUDE
    + """
-- ARGV: id, transport, created, ttl_ms, max_connections, owner, token,
--       address ('' when not counted), max_connections_per_address
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
if redis.call('ZCARD', index) >= tonumber(ARGV[5]) then return {-5} end
if ARGV[8] ~= '' then
  local ak = 'td:a:' .. ARGV[8]
  redis.call('ZREMRANGEBYSCORE', ak, '-inf', now)
  local held = redis.call('ZCARD', ak)
  if held >= tonumber(ARGV[9]) then return {-6, held} end
end
redis.call('HSET', h, 't', ARGV[2], 'c', ARGV[3], 's', 0, 'a', 0, 'r', 0, 'd', 0, 'rc', 0,
           'hb', 0, 'ls', now, 'x', '', 'o', ARGV[6], 'k', ARGV[7])
if ARGV[8] ~= '' then redis.call('HSET', h, 'ad', ARGV[8]) end
keep(tonumber(ARGV[4]))
return {1}
"""
)

APPEND = (
    _PRELUDE
    + """
-- ARGV: id, transport ('' any), event prefix, event suffix, max_queue, window, is_receive,
--       wake ('0': the caller takes over the connection next, so nobody is woken)
if redis.call('EXISTS', h) == 0 then return {-1} end
if ARGV[2] ~= '' and redis.call('HGET', h, 't') ~= ARGV[2] then return {-1} end
local s, r, a = num('s'), num('r'), num('a')
if s - r >= tonumber(ARGV[5]) then return {-2, s - r} end
s = redis.call('HINCRBY', h, 's', 1)
redis.call('XADD', log, s .. '-0', 'd', ARGV[3] .. s .. ARGV[4])
if ARGV[7] == '1' then
  redis.call('HINCRBY', h, 'rc', 1)
  redis.call('HSET', h, 'ls', now)
end
trim(a, r, s, tonumber(ARGV[6]))
local ttl = redis.call('PTTL', h)
if ttl > 0 then redis.call('PEXPIRE', log, ttl) end
local owner = redis.call('HGET', h, 'o')
if owner and owner ~= '' and ARGV[8] ~= '0' then
  redis.call('PUBLISH', 'td:w:' .. owner, 'w:' .. id)
end
return {s}
"""
)

ATTACH = (
    _PRELUDE
    + """
-- A stream attaches and resumes. ARGV: id, transport, owner, token, last_seq ('' none), ttl_ms
if redis.call('EXISTS', h) == 0 or redis.call('HGET', h, 't') ~= ARGV[2] then return {-1} end
local s, a = num('s'), num('a')
if ARGV[5] ~= '' then
  local point = tonumber(ARGV[5])
  if point > s then return {-3} end
  if point > a then a = point end
end
local prev_owner = redis.call('HGET', h, 'o')
local prev_token = redis.call('HGET', h, 'k')
redis.call('HSET', h, 'a', a, 'r', a, 'o', ARGV[3], 'k', ARGV[4], 'x', '', 'ls', now)
trim(a, a, s, 1e15)
keep(tonumber(ARGV[6]))
return {1, a, prev_owner, prev_token}
"""
)

POLL = (
    _PRELUDE
    + """
-- A long poll. ARGV: id, last_seq ('' none), owner, token, mode ('begin' | 'again' | 'final'),
-- hold ('1': may be held), held_ttl_ms, idle_ttl_ms, max_batch, window, max_batch_bytes,
-- transport (the poll's: a connection of another transport is not this poll's)
if redis.call('EXISTS', h) == 0 or redis.call('HGET', h, 't') ~= ARGV[12] then
  return {-1}
end
local mode = ARGV[5]
local prev_owner = redis.call('HGET', h, 'o')
local prev_token = redis.call('HGET', h, 'k')
if mode ~= 'begin' and prev_token ~= ARGV[4] then return {-4} end
local s, a = num('s'), num('a')
if ARGV[2] ~= '' then
  local point = tonumber(ARGV[2])
  if point > s then return {-3} end
  if point > a then a = point end
end
local batch = range(a, tonumber(ARGV[9]), tonumber(ARGV[11]))
local n = #batch / 2
if n > 0 then
  if ARGV[2] == '' then a = batch[#batch - 1] end
  redis.call('HINCRBY', h, 'd', n)
end
redis.call('HSET', h, 'a', a, 'r', a, 'ls', now)
trim(a, a, s, tonumber(ARGV[10]))
if n > 0 or mode == 'final' or ARGV[6] ~= '1' then
  if mode == 'begin' or prev_token == ARGV[4] then redis.call('HSET', h, 'o', '', 'k', '') end
  keep(tonumber(ARGV[8]))
else
  redis.call('HSET', h, 'o', ARGV[3], 'k', ARGV[4])
  keep(tonumber(ARGV[7]))
end
local out = {n, prev_owner, prev_token}
for i, v in ipairs(batch) do out[#out + 1] = v end
return out
"""
)

TAKE = (
    _PRELUDE
    + """
-- A stream takes what it has not written yet. ARGV: id, token, max_batch, window, max_bytes
if redis.call('EXISTS', h) == 0 then return {-1} end
if redis.call('HGET', h, 'k') ~= ARGV[2] then return {-4} end
local s, a, r = num('s'), num('a'), num('r')
local batch = range(r, tonumber(ARGV[3]), tonumber(ARGV[5]))
local n = #batch / 2
if n > 0 then
  r = batch[#batch - 1]
  redis.call('HSET', h, 'r', r)
  redis.call('HINCRBY', h, 'd', n)
  trim(a, r, s, tonumber(ARGV[4]))
end
local out = {n}
for i, v in ipairs(batch) do out[#out + 1] = v end
return out
"""
)

BEAT = (
    _PRELUDE
    + """
-- A stream's heartbeat: count it and keep the keys alive. ARGV: id, token, ttl_ms
if redis.call('EXISTS', h) == 0 then return {-1} end
if redis.call('HGET', h, 'k') ~= ARGV[2] then return {-4} end
keep(tonumber(ARGV[3]))
return {redis.call('HINCRBY', h, 'hb', 1)}
"""
)

DETACH = (
    _PRELUDE
    + """
-- A poll or stream is gone. ARGV: id, token, ttl_ms (what is left: the grace or the poll expiry)
if redis.call('EXISTS', h) == 0 then return {-1} end
if redis.call('HGET', h, 'k') ~= ARGV[2] then return {0} end
redis.call('HSET', h, 'o', '', 'k', '', 'x', now, 'ls', now)
keep(tonumber(ARGV[3]))
return {1}
"""
)
