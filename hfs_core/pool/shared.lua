-- The Redis side of RedisPoolState (hfs_core/pool/shared.py): one script, one call per operation.
--
-- KEYS[1]  the pool's prefix, "{<namespace>:<provider>}:". Every key the script touches starts with
--          it, so all of a pool's keys share one hash slot and the script runs on Redis Cluster.
-- ARGV[1]  the operation; ARGV[2] the fleet time it happened at (seconds, Redis's clock as the
--          process knows it); the rest depend on the operation.
--
-- Keys of one API key, named by its keyed hash (kid; never the key) and the model's bucket (b: the
-- model ID, or "*" for a provider whose limits hold across models):
--   k:<kid>          HASH  dead (when retired), cool (until), proven (a call succeeded),
--                          probe / probe_until (the lease trying a key not yet proven),
--                          cap:<b> / capat:<b> (a per-minute request cap learned from a 429)
--   r:<kid>:<b>      ZSET  requests of the last day: lease ID -> when it was sent (calls in flight too)
--   f:<kid>:<b>      ZSET  leases in flight: "<lease ID>|<reserved tokens>" -> when the lease expires
--   tm/th/td:<kid>:<b> HASH tokens used, in slots of 1 s / 60 s / 900 s for the minute / hour / day
--   procs            ZSET  processes sharing the pool -> when their heartbeat expires
--   seeded           STRING when the usage database's history was replayed into the pool

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])

local WINDOWS = {60, 3600, 86400}
local SLOTS = {1, 60, 900}
local TOKEN_KEYS = {'tm:', 'th:', 'td:'}
local KEEP = 90000 -- seconds a key outlives its last write: the longest window and a bit

local function flags_key(kid) return P .. 'k:' .. kid end
local function requests_key(kid, b) return P .. 'r:' .. kid .. ':' .. b end
local function flight_key(kid, b) return P .. 'f:' .. kid .. ':' .. b end
local function tokens_key(kid, b, w) return P .. TOKEN_KEYS[w] .. kid .. ':' .. b end
local function after(seconds) return '(' .. string.format('%.6f', seconds) end

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

-- Tokens reserved by the key's leases in flight (expired leases, of a process that died, are dropped).
local function reserved(kid, b)
  local key = flight_key(kid, b)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    total = total + tonumber(string.match(member, '|(%d+)$'))
  end
  return total
end

-- The live slots of token window `w` as {slot, tokens} pairs, oldest first, and their sum; slots
-- that have left the window are deleted.
local function window_tokens(kid, b, w)
  local key = tokens_key(kid, b, w)
  local size, cutoff = SLOTS[w], now - WINDOWS[w]
  local fields = redis.call('HGETALL', key)
  local live, stale, total = {}, {}, 0
  for i = 1, #fields, 2 do
    local slot = tonumber(fields[i])
    if (slot + 1) * size <= cutoff then
      stale[#stale + 1] = fields[i]
    else
      local used = tonumber(fields[i + 1])
      live[#live + 1] = {slot, used}
      total = total + used
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  return total, live
end

local function add_tokens(kid, b, tokens, at)
  for w = 1, 3 do
    local key = tokens_key(kid, b, w)
    redis.call('HINCRBY', key, tostring(math.floor(at / SLOTS[w])), tokens)
    redis.call('EXPIRE', key, KEEP)
  end
end

local function count(kid, b, w)
  return redis.call('ZCOUNT', requests_key(kid, b), after(now - WINDOWS[w]), '+inf')
end

-- One call's wants, from ARGV[first]: bucket, tokens, then requests a minute, hour and day and tokens
-- a minute, hour and day (0: no limit); eight values in all.
local function call_of(first)
  local c = {b = ARGV[first], tokens = tonumber(ARGV[first + 1]), requests = {}, token_limits = {}}
  for w = 1, 3 do
    c.requests[w] = tonumber(ARGV[first + 1 + w])
    c.token_limits[w] = tonumber(ARGV[first + 4 + w])
  end
  c.any_tokens = c.token_limits[1] + c.token_limits[2] + c.token_limits[3] > 0
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
    if limits[w] > 0 and count(kid, c.b, w) >= limits[w] then return false end
  end
  if c.any_tokens then
    local wanted = reserved(kid, c.b) + c.tokens
    for w = 1, 3 do
      if c.token_limits[w] > 0 and window_tokens(kid, c.b, w) + wanted > c.token_limits[w] then return false end
    end
  end
  return true
end

-- When key `kid` could take the call `c` by its windows alone: a time, 'flight' (once a call in
-- flight ends, here or in another process) or nil (never: the call is more than a window holds).
local function free_at(kid, c, f)
  if probing(f) then return 'flight' end
  local at = f[2] and tonumber(f[2]) or 0
  local flying = redis.call('ZCOUNT', flight_key(kid, c.b), after(now), '+inf')
  local limits = request_limits(kid, c, f)
  for w = 1, 3 do
    local seen = count(kid, c.b, w)
    local excess = seen - limits[w] + 1
    if excess > 0 then
      if seen - flying < limits[w] then return 'flight' end
      local entry = redis.call('ZRANGEBYSCORE', requests_key(kid, c.b), after(now - WINDOWS[w]), '+inf',
        'WITHSCORES', 'LIMIT', excess - 1, 1)
      at = math.max(at, tonumber(entry[2]) + WINDOWS[w])
    end
  end
  if c.any_tokens then
    local held = reserved(kid, c.b)
    for w = 1, 3 do
      local limit = c.token_limits[w]
      if limit > 0 then
        local total, live = window_tokens(kid, c.b, w)
        local need = total + held + c.tokens - limit
        if need > 0 then
          if need <= held then return 'flight' end
          local dropped, freed = 0, nil
          for _, slot in ipairs(live) do
            dropped = dropped + slot[2]
            if dropped >= need then
              freed = (slot[1] + 1) * SLOTS[w] + WINDOWS[w]
              break
            end
          end
          if not freed then return nil end
          at = math.max(at, freed)
        end
      end
    end
  end
  return at
end

local function load(kid, b) return count(kid, b, 1) end

if op == 'acquire' then
  -- ARGV: 3 lease ID, 4 lease seconds, 5 two random numbers "r1:r2", 6..13 the call (call_of),
  -- 14 how many keys to avoid, then their positions (1-based), then the pool's kids in order.
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
    chosen = load(kids[a], c.b) <= load(kids[z], c.b) and a or z
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
    local requests = requests_key(kid, c.b)
    redis.call('ZADD', requests, now, lease)
    redis.call('ZREMRANGEBYSCORE', requests, '-inf', now - WINDOWS[3])
    redis.call('EXPIRE', requests, KEEP)
    local flight = flight_key(kid, c.b)
    redis.call('ZADD', flight, now + ttl, lease .. '|' .. c.tokens)
    redis.call('EXPIRE', flight, KEEP)
    if not redis.call('HGET', flags_key(kid), 'proven') then
      redis.call('HSET', flags_key(kid), 'probe', lease, 'probe_until', now + ttl)
    end
    return {1, chosen - 1}
  end
  -- No key: how long until one frees, and every key's state for the process's own view.
  local soonest, flight = nil, false
  local dead, cooling, flying = 0, 0, 0
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
    flying = flying + redis.call('ZCOUNT', flight_key(kid, c.b), after(now), '+inf')
  end
  local wait = '-2'
  if flight then wait = '-1' elseif soonest then wait = string.format('%.3f', math.max(0, soonest - now)) end
  local reply = {0, wait, dead, cooling, flying}
  for i = 1, n do reply[#reply + 1] = states[i] end
  return reply
elseif op == 'settle' then
  -- ARGV: 3 kid, 4 bucket, 5 lease ID, 6 reserved tokens, 7 tokens used (-1: released unused)
  local kid, b, lease, tokens = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[7])
  local k = flags_key(kid)
  redis.call('ZREM', flight_key(kid, b), lease .. '|' .. ARGV[6])
  if redis.call('HGET', k, 'probe') == lease then redis.call('HDEL', k, 'probe', 'probe_until') end
  if tokens < 0 then
    redis.call('ZREM', requests_key(kid, b), lease)
  else
    add_tokens(kid, b, tokens, now)
    redis.call('HSET', k, 'proven', '1')
    redis.call('EXPIRE', k, KEEP)
  end
  return 1
elseif op == 'record' then
  -- A call served while Redis was away, settled on its return. ARGV: 3 kid, 4 bucket, 5 ID, 6 tokens
  local kid, b = ARGV[3], ARGV[4]
  local requests = requests_key(kid, b)
  redis.call('ZADD', requests, now, ARGV[5])
  redis.call('EXPIRE', requests, KEEP)
  add_tokens(kid, b, tonumber(ARGV[6]), now)
  return 1
elseif op == 'seed' then
  -- The usage database's last day, replayed into a pool Redis knows nothing of yet (a new or an
  -- emptied Redis); once only, whichever process comes first. ARGV: 3.. kid, bucket, time, tokens.
  if not redis.call('SET', P .. 'seeded', ARGV[2], 'NX') then return 0 end
  local seeded = 0
  for i = 3, #ARGV, 4 do
    local kid, b, at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    if at > now - WINDOWS[3] then
      local requests = requests_key(kid, b)
      redis.call('ZADD', requests, at, 'seed.' .. i)
      redis.call('EXPIRE', requests, KEEP)
      add_tokens(kid, b, tonumber(ARGV[i + 3]), at)
      seeded = seeded + 1
    end
  end
  return seeded
elseif op == 'renew' then
  -- ARGV: 3 kid, 4 bucket, 5 lease ID, 6 reserved tokens, 7 new expiry
  local kid, b, lease = ARGV[3], ARGV[4], ARGV[5]
  redis.call('ZADD', flight_key(kid, b), 'XX', ARGV[7], lease .. '|' .. ARGV[6])
  if redis.call('HGET', flags_key(kid), 'probe') == lease then
    redis.call('HSET', flags_key(kid), 'probe_until', ARGV[7])
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
  local seen = count(kid, b, 1)
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
elseif op == 'status' then
  -- ARGV: 3 bucket, then the kids. Returns dead, cooling, calls in flight.
  local dead, cooling, flying = 0, 0, 0
  for i = 4, #ARGV do
    local f = flags(ARGV[i], ARGV[3])
    if f[1] then dead = dead + 1 elseif f[2] and tonumber(f[2]) > now then cooling = cooling + 1 end
    flying = flying + redis.call('ZCOUNT', flight_key(ARGV[i], ARGV[3]), after(now), '+inf')
  end
  return {dead, cooling, flying}
end
return redis.error_reply('unknown operation ' .. tostring(op))
