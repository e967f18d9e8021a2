-- The Redis side of RedisPoolState (hfs_core/pool/shared.py): one script, one call per operation.
--
-- KEYS[1]  the pool's prefix, "{<namespace>:<provider>}:". Every key the script touches starts with
--          it, so all of a pool's keys share one hash slot and the script runs on Redis Cluster.
-- ARGV[1]  the operation; ARGV[2] the fleet time it happened at (seconds, Redis's clock as the
--          process knows it), kept as sent where it names a lease; the rest depend on the operation.
--
-- Keys of one API key, named by its keyed hash (kid; never the key) and the model's bucket (b: the
-- model ID, or "*" for a provider whose limits hold across models):
--   k:<kid>           HASH dead (when retired), cool (until), proven (a call succeeded),
--                          probe / probe_until (the lease trying a key not yet proven),
--                          cap:<b> / capat:<b> (a per-minute request cap learned from a 429)
--   r:<kid>:<b>       ZSET requests of the last minute, exactly: lease ID -> when it was sent
--   rh:, rd:<kid>:<b> HASH requests of the last hour / day, in slots (below)
--   tm:, th:, td:     HASH tokens of the last minute / hour / day, in slots
--   f:<kid>:<b>       ZSET leases in flight: "<lease ID>|<reserved tokens>|<sent at>" -> expiry
--   procs             ZSET processes sharing the pool -> when their heartbeat expires
--   seeded            STRING when the usage database's history was replayed into the pool
--   rec:<ID>          STRING a call served while Redis was away, once it is counted (for an hour)
--
-- A slot window holds, per slot of SLOTS[w] seconds, what was used in it, with "s" the sum of its
-- live slots and "f" its oldest slot that may still be live; a slot counts until its end has left
-- the window (a little longer than exactly, never shorter). Keeping "s" costs O(1) amortised.
-- Calls in flight count against the request windows from the moment they are reserved; a call
-- released unused (it failed) is taken out again.

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])

local WINDOWS = {60, 3600, 86400}
local SLOTS = {1, 60, 900}
local NSLOTS = {60, 60, 96}
local KEEP = 90000 -- seconds a key outlives its last write: the longest window and a bit
local GRACE = 3600 -- seconds an expired lease is remembered, so a late settle of it is still counted once

local function flags_key(kid) return P .. 'k:' .. kid end
local function minute_key(kid, b) return P .. 'r:' .. kid .. ':' .. b end
local function flight_key(kid, b) return P .. 'f:' .. kid .. ':' .. b end
local REQUEST_KEYS = {nil, 'rh:', 'rd:'}
local TOKEN_KEYS = {'tm:', 'th:', 'td:'}
local function requests_key(kid, b, w) return P .. REQUEST_KEYS[w] .. kid .. ':' .. b end
local function tokens_key(kid, b, w) return P .. TOKEN_KEYS[w] .. kid .. ':' .. b end
local function after(seconds) return '(' .. string.format('%.6f', seconds) end

-- ---------------------------------------------------------------- slot windows

local function first_live(w) return math.floor((now - WINDOWS[w]) / SLOTS[w]) end

-- What window `w` at `key` holds now, after dropping the slots that have left it.
local function slot_sum(key, w)
  local v = redis.call('HMGET', key, 's', 'f')
  if not v[1] then return 0 end
  local sum, first, live = tonumber(v[1]), tonumber(v[2]), first_live(w)
  if first >= live then return sum end
  if live - first > NSLOTS[w] + 1 then -- idle for longer than the window: count what is there
    local fields, stale = redis.call('HGETALL', key), {}
    sum = 0
    for i = 1, #fields, 2 do
      local name = fields[i]
      if name ~= 's' and name ~= 'f' then
        if tonumber(name) < live then stale[#stale + 1] = name else sum = sum + tonumber(fields[i + 1]) end
      end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  else
    for slot = first, live - 1 do
      local used = redis.call('HGET', key, slot)
      if used then
        sum = sum - tonumber(used)
        redis.call('HDEL', key, slot)
      end
    end
  end
  redis.call('HSET', key, 's', sum, 'f', live)
  return sum
end

-- Add `amount` (negative: take it back) to window `w` at `key`, in the slot of time `at`.
local function slot_add(key, w, at, amount)
  local slot = math.floor(at / SLOTS[w])
  if slot < first_live(w) then return end -- already out of the window (and out of its sum)
  redis.call('HINCRBY', key, slot, amount)
  redis.call('HINCRBY', key, 's', amount)
  local first = redis.call('HGET', key, 'f')
  if not first or tonumber(first) > slot then redis.call('HSET', key, 'f', slot) end
  redis.call('EXPIRE', key, KEEP)
end

-- When `need` of what window `w` at `key` holds will have left it (nil: it holds less than that).
local function slot_free_at(key, w, need)
  local fields, live, first = redis.call('HGETALL', key), {}, first_live(w)
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name ~= 's' and name ~= 'f' and tonumber(name) >= first then
      live[#live + 1] = {tonumber(name), tonumber(fields[i + 1])}
    end
  end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  local dropped = 0
  for _, slot in ipairs(live) do
    dropped = dropped + slot[2]
    if dropped >= need then return (slot[1] + 1) * SLOTS[w] + WINDOWS[w] end
  end
  return nil
end

-- ---------------------------------------------------------------- one key

local function flags(kid, b)
  return redis.call('HMGET', flags_key(kid), 'dead', 'cool', 'proven', 'probe_until', 'cap:' .. b, 'capat:' .. b)
end

-- The key's requests a minute: the table's `rpm`, or a cap learned below it, one more each minute since.
local function per_minute(kid, b, rpm, cap, since)
  if not cap then return rpm end
  local grown = tonumber(cap) + math.floor((now - tonumber(since)) / 60)
  if grown >= rpm then
    redis.call('HDEL', flags_key(kid), 'cap:' .. b, 'capat:' .. b)
    return rpm
  end
  return grown
end

local function minute_requests(kid, b)
  return redis.call('ZCOUNT', minute_key(kid, b), after(now - WINDOWS[1]), '+inf')
end

-- Requests in window `w` (calls in flight included).
local function requests(kid, b, w)
  if w == 1 then return minute_requests(kid, b) end
  return slot_sum(requests_key(kid, b, w), w)
end

-- Tokens reserved by the key's leases in flight (a lease whose process stopped renewing it counts
-- no longer once it expires).
local function reserved(kid, b)
  local key = flight_key(kid, b)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - GRACE)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, after(now), '+inf')) do
    total = total + tonumber(string.match(member, '|(%d+)|'))
  end
  return total
end

local function flying(kid, b) return redis.call('ZCOUNT', flight_key(kid, b), after(now), '+inf') end

-- One call's wants, from ARGV[first]: bucket, tokens, then requests a minute, hour and day and tokens
-- a minute, hour and day (0: no limit); eight values in all.
local function call_of(first)
  local c = {b = ARGV[first], tokens = tonumber(ARGV[first + 1]), requests = {}, token_limits = {}}
  for w = 1, 3 do
    c.requests[w] = tonumber(ARGV[first + 1 + w])
    c.token_limits[w] = tonumber(ARGV[first + 4 + w])
  end
  return c
end

local function request_limits(kid, c, f)
  return {per_minute(kid, c.b, c.requests[1], f[5], f[6]), c.requests[2], c.requests[3]}
end

local function probing(f) return not f[3] and f[4] and tonumber(f[4]) > now end

-- Whether key `kid` can take the call `c` now.
local function fits(kid, c)
  local f = flags(kid, c.b)
  if f[1] or (f[2] and tonumber(f[2]) > now) or probing(f) then return false end
  local limits = request_limits(kid, c, f)
  for w = 1, 3 do
    if limits[w] > 0 and requests(kid, c.b, w) >= limits[w] then return false end
  end
  local wanted = nil
  for w = 1, 3 do
    local limit = c.token_limits[w]
    if limit > 0 then
      wanted = wanted or reserved(kid, c.b) + c.tokens
      if slot_sum(tokens_key(kid, c.b, w), w) + wanted > limit then return false end
    end
  end
  return true
end

-- When key `kid` could take the call `c` by its windows alone: a time, 'flight' (once a call in
-- flight ends, here or in another process) or nil (never: the call is more than a window holds).
local function free_at(kid, c, f)
  if probing(f) then return 'flight' end
  local at = f[2] and tonumber(f[2]) or 0
  local in_flight = flying(kid, c.b)
  local limits = request_limits(kid, c, f)
  for w = 1, 3 do
    local limit = limits[w]
    local seen = limit > 0 and requests(kid, c.b, w) or 0
    if limit > 0 and seen >= limit then
      if seen - in_flight < limit then return 'flight' end
      local freed
      if w == 1 then
        local entry = redis.call('ZRANGEBYSCORE', minute_key(kid, c.b), after(now - WINDOWS[1]), '+inf',
          'WITHSCORES', 'LIMIT', seen - limit, 1)
        freed = tonumber(entry[2]) + WINDOWS[1]
      else
        freed = slot_free_at(requests_key(kid, c.b, w), w, seen - limit + 1)
      end
      if not freed then return nil end
      at = math.max(at, freed)
    end
  end
  local held = nil
  for w = 1, 3 do
    local limit = c.token_limits[w]
    if limit > 0 then
      held = held or reserved(kid, c.b)
      local key = tokens_key(kid, c.b, w)
      local need = slot_sum(key, w) + held + c.tokens - limit
      if need > 0 then
        if need <= held then return 'flight' end
        local freed = slot_free_at(key, w, need)
        if not freed then return nil end
        at = math.max(at, freed)
      end
    end
  end
  return at
end

-- Count a request sent at `at` (a lease, a call served while Redis was away, a row of history).
local function count_request(kid, b, id, at)
  local minute = minute_key(kid, b)
  if at > now - WINDOWS[1] then
    redis.call('ZADD', minute, at, id)
    redis.call('EXPIRE', minute, 2 * WINDOWS[1])
  end
  for w = 2, 3 do slot_add(requests_key(kid, b, w), w, at, 1) end
end

local function uncount_request(kid, b, id, at)
  redis.call('ZREM', minute_key(kid, b), id)
  for w = 2, 3 do slot_add(requests_key(kid, b, w), w, at, -1) end
end

local function count_tokens(kid, b, tokens, at)
  if tokens > 0 then
    for w = 1, 3 do slot_add(tokens_key(kid, b, w), w, at, tokens) end
  end
end

local function clear_probe(kid, lease)
  local k = flags_key(kid)
  if redis.call('HGET', k, 'probe') == lease then redis.call('HDEL', k, 'probe', 'probe_until') end
end

-- ---------------------------------------------------------------- operations

if op == 'acquire' then
  -- ARGV: 3 lease ID, 4 lease seconds, 5 two random numbers "r1:r2", 6..13 the call (call_of),
  -- 14 how many keys to avoid, then their positions (1-based), then the pool's kids in order.
  -- Returns {1, position (0-based)} or {0, seconds until a key frees ("-1": when a call in
  -- flight ends; "-2": never), dead, cooling, in flight, then each key's state: "-1" dead, its
  -- cooldown's end, or "0"}.
  local lease, ttl = ARGV[3], tonumber(ARGV[4])
  local r1, r2 = string.match(ARGV[5], '(%d+):(%d+)')
  local c = call_of(6)
  local navoid = tonumber(ARGV[14])
  local avoid = {}
  for i = 1, navoid do avoid[tonumber(ARGV[14 + i])] = true end
  local kids = {}
  for i = 15 + navoid, #ARGV do kids[#kids + 1] = ARGV[i] end
  local n = #kids
  local a, z = tonumber(r1) % n + 1, tonumber(r2) % n + 1
  -- Two random choices: the less loaded of two usable keys; else a scan from a random start,
  -- keys this call has not failed on first.
  local chosen
  local picks = {}
  for _, i in ipairs(a == z and {a} or {a, z}) do
    if not avoid[i] and fits(kids[i], c) then picks[#picks + 1] = i end
  end
  if #picks == 2 then
    chosen = minute_requests(kids[a], c.b) <= minute_requests(kids[z], c.b) and a or z
  else
    chosen = picks[1]
  end
  for pass = 1, 2 do
    if chosen then break end
    for offset = 0, n - 1 do
      local i = (a - 1 + offset) % n + 1
      if (pass == 1) ~= (avoid[i] == true) and fits(kids[i], c) then
        chosen = i
        break
      end
    end
  end
  if chosen then
    local kid = kids[chosen]
    redis.call('ZREMRANGEBYSCORE', minute_key(kid, c.b), '-inf', now - WINDOWS[1])
    count_request(kid, c.b, lease, now)
    local flight = flight_key(kid, c.b)
    redis.call('ZADD', flight, now + ttl, lease .. '|' .. c.tokens .. '|' .. ARGV[2])
    redis.call('EXPIRE', flight, KEEP)
    if not redis.call('HGET', flags_key(kid), 'proven') then
      redis.call('HSET', flags_key(kid), 'probe', lease, 'probe_until', now + ttl)
    end
    return {1, chosen - 1}
  end
  local soonest, flight = nil, false
  local dead, cooling, in_flight = 0, 0, 0
  local states = {}
  for i, kid in ipairs(kids) do
    local f = flags(kid, c.b)
    if f[1] then
      dead = dead + 1
      states[i] = '-1'
    else
      local cool = f[2] and tonumber(f[2]) or 0
      if cool > now then cooling = cooling + 1 end
      states[i] = cool > now and string.format('%.3f', cool) or '0'
      local at = free_at(kid, c, f)
      if at == 'flight' then
        flight = true
      elseif at and (not soonest or at < soonest) then
        soonest = at
      end
    end
    in_flight = in_flight + flying(kid, c.b)
  end
  local wait = '-2'
  if flight then wait = '-1' elseif soonest then wait = string.format('%.3f', math.max(0, soonest - now)) end
  local reply = {0, wait, dead, cooling, in_flight}
  for i = 1, n do reply[#reply + 1] = states[i] end
  return reply
elseif op == 'settle' then
  -- End a lease, once (a settle sent twice, or after its lease was abandoned, does nothing).
  -- ARGV: 3 kid, 4 bucket, 5 lease ID, 6 reserved tokens, 7 when it was sent (as acquired),
  -- 8 tokens used (-1: released unused).
  local kid, b, lease, tokens = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[8])
  if redis.call('ZREM', flight_key(kid, b), lease .. '|' .. ARGV[6] .. '|' .. ARGV[7]) == 0 then return 0 end
  clear_probe(kid, lease)
  if tokens < 0 then
    uncount_request(kid, b, lease, tonumber(ARGV[7]))
  else
    count_tokens(kid, b, tokens, now)
    redis.call('HSET', flags_key(kid), 'proven', '1')
    redis.call('EXPIRE', flags_key(kid), KEEP)
  end
  return 1
elseif op == 'abandon' then
  -- A reservation whose answer never reached its process (Redis was too slow): undo it, whichever
  -- key it took. ARGV: 3 lease ID, 4 bucket, 5 reserved tokens, 6 when it was made, then the kids.
  local lease, b = ARGV[3], ARGV[4]
  for i = 7, #ARGV do
    local kid = ARGV[i]
    if redis.call('ZREM', flight_key(kid, b), lease .. '|' .. ARGV[5] .. '|' .. ARGV[6]) == 1 then
      uncount_request(kid, b, lease, tonumber(ARGV[6]))
      clear_probe(kid, lease)
      return 1
    end
  end
  return 0
elseif op == 'record' then
  -- A call served while Redis was away, counted at its time once it answers (once only).
  -- ARGV: 3 kid, 4 bucket, 5 ID, 6 tokens
  if not redis.call('SET', P .. 'rec:' .. ARGV[5], '1', 'NX', 'EX', GRACE) then return 0 end
  count_request(ARGV[3], ARGV[4], ARGV[5], now)
  count_tokens(ARGV[3], ARGV[4], tonumber(ARGV[6]), now)
  return 1
elseif op == 'seed' then
  -- The usage database's last day, replayed into a pool Redis knows nothing of yet (a new or an
  -- emptied Redis); once only, whichever process comes first. ARGV: 3.. kid, bucket, time, tokens.
  if not redis.call('SET', P .. 'seeded', ARGV[2], 'NX') then return 0 end
  local seeded = 0
  for i = 3, #ARGV, 4 do
    local kid, b, at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    if at > now - WINDOWS[3] then
      count_request(kid, b, 'seed.' .. i, at)
      count_tokens(kid, b, tonumber(ARGV[i + 3]), at)
      seeded = seeded + 1
    end
  end
  return seeded
elseif op == 'renew' then
  -- ARGV: 3 kid, 4 bucket, 5 lease ID, 6 reserved tokens, 7 when it was sent, 8 new expiry
  local kid, b, lease = ARGV[3], ARGV[4], ARGV[5]
  redis.call('ZADD', flight_key(kid, b), 'XX', ARGV[8], lease .. '|' .. ARGV[6] .. '|' .. ARGV[7])
  if redis.call('HGET', flags_key(kid), 'probe') == lease then
    redis.call('HSET', flags_key(kid), 'probe_until', ARGV[8])
  end
  return 1
elseif op == 'cool' then
  -- ARGV: 3 kid, 4 until
  local k, til = flags_key(ARGV[3]), tonumber(ARGV[4])
  local cool = redis.call('HGET', k, 'cool')
  if not cool or tonumber(cool) < til then redis.call('HSET', k, 'cool', ARGV[4]) end
  -- When the cooldown ends, one call probes the key before the waiting callers pile on it.
  redis.call('HDEL', k, 'proven')
  redis.call('EXPIRE', k, math.max(KEEP, math.ceil(til - now) + 60))
  return 1
elseif op == 'dead' then
  -- ARGV: 3 kid
  redis.call('HSET', flags_key(ARGV[3]), 'dead', string.format('%.3f', now))
  redis.call('EXPIRE', flags_key(ARGV[3]), KEEP)
  return 1
elseif op == 'learn' then
  -- A per-minute refusal below the table's limit: cap the key at what its window holds (at least 1).
  -- ARGV: 3 kid, 4 bucket, 5 the table's requests a minute. Returns the cap, or 0 for none.
  local kid, b = ARGV[3], ARGV[4]
  local f = flags(kid, b)
  local seen = minute_requests(kid, b)
  if seen >= per_minute(kid, b, tonumber(ARGV[5]), f[5], f[6]) then return 0 end
  local cap = math.max(1, seen)
  redis.call('HSET', flags_key(kid), 'cap:' .. b, cap, 'capat:' .. b, string.format('%.3f', now))
  redis.call('EXPIRE', flags_key(kid), KEEP)
  return cap
elseif op == 'beat' then
  -- A process's heartbeat. ARGV: 3 process ID, 4 when it expires. Returns the processes alive.
  local procs = P .. 'procs'
  redis.call('ZADD', procs, ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', procs, '-inf', now)
  redis.call('EXPIRE', procs, KEEP)
  return redis.call('ZCARD', procs)
elseif op == 'leave' then
  redis.call('ZREM', P .. 'procs', ARGV[3])
  return 1
end
return redis.error_reply('unknown operation ' .. tostring(op))
