#!lua name=hfs_pool_3
-- The Redis side of RedisPoolState (hfs_core/pool/shared.py): a library of one function, hfs_pool_3,
-- called once per operation (FCALL hfs_pool_3 1 <prefix> <operation> <time> ...). Loaded with
-- FUNCTION LOAD, its helpers are built once, not on every call as a script's would be. A change
-- to what the function takes or stores gets a new name (hfs_pool_3), so processes of two versions
-- never share a pool by mistake.
--
-- keys[1]  the pool's prefix, "{<namespace>:<provider>}:". Every key the function touches starts
--          with it, so all of a pool's keys share one hash slot and it runs on Redis Cluster.
-- args[1]  the operation; args[2] the fleet time it happened at (seconds, Redis's clock as the
--          process knows it), kept as sent where it names a lease; the rest depend on the operation.
--
-- Keys of one API key, named by its keyed hash (kid; never the key) and the model's bucket (b: the
-- model ID, or "*" for a provider whose limits hold across models). A key of a key group is named
-- "<kid>/<bkid>" in the arguments, bkid being the kid of the group's first key (its budget): the
-- group's keys count in that key's windows (r:, w:), calls in flight (f:) and learned caps, each
-- keeping its own flags (dead, cool, proven, probe). A key in no group is named "<kid>" and is
-- its own budget.
--   k:<kid>        HASH dead (when retired), cool (until), proven (a call succeeded),
--                       probe / probe_until (the lease trying a key not yet proven),
--                       cap:<b> / capat:<b> (a per-minute request cap learned from a 429, of the
--                       budget this key is the first of)
--   r:<kid>:<b>    ZSET requests of the last minute, exactly: lease ID -> when it was sent
--   w:<kid>:<b>    HASH the slot windows (below): requests of the hour and day (rh, rd), tokens of
--                       the minute, hour and day (tm, th, td)
--   f:<kid>:<b>    ZSET leases in flight: "<lease ID>|<reserved tokens>|<sent at>" -> expiry
--   ids:<digest>   LIST the kids of a pool as one process has them, in its order (so a call
--                       names its keys by one digest, not by every kid)
--   procs          ZSET processes sharing the pool -> when their heartbeat expires
--   seeded         STRING when the usage database's history was replayed into the pool
--   rec:<ID>       STRING a call served while Redis was away, once it is counted (for an hour)
--
-- A slot window <n> holds, in fields "<n><slot>", what was used in each slot of `size` seconds,
-- with "<n>s" the sum of its live slots and "<n>f" its oldest slot that may still be live; a slot
-- counts until its end has left the window (a little longer than exactly, never shorter), and
-- keeping the sum costs O(1) amortised. Only the windows whose limit can refuse a call are kept
-- (the caller says which, `mask`); every process of a fleet must hold the same limits.
-- Calls in flight count against the request windows from the moment they are reserved; a call
-- released unused (it failed) is taken out again.

local P, A, now -- the pool's prefix, the call's arguments and its time: set by each call
local minute_ago, just_now -- '(' bounds for ZCOUNT and ZRANGEBYSCORE: now - 60 s and now, excluded

local MINUTE, DAY = 60, 86400
local KEEP = 90000 -- seconds a key outlives its last write: the longest window and a bit (so a
                   -- retired key's dead flag lasts 25 h, unless `revive` clears it; docs/reliability.md)
local GRACE = 3600 -- seconds an expired lease is remembered, so a late settle of it is still counted once
local SENT = 2 -- seconds after its reservation by which a request has surely reached the provider
-- The slot windows, in the order of the callers' masks; `limit` is the place of their limit in a
-- call's limits (rpm, rph, rpd, tpm, tph, tpd).
local WINDOWS = {
  {name = 'rh', seconds = 3600, size = 60, count = 60, limit = 2, tokens = false},
  {name = 'rd', seconds = 86400, size = 900, count = 96, limit = 3, tokens = false},
  {name = 'tm', seconds = 60, size = 1, count = 60, limit = 4, tokens = true},
  {name = 'th', seconds = 3600, size = 60, count = 60, limit = 5, tokens = true},
  {name = 'td', seconds = 86400, size = 900, count = 96, limit = 6, tokens = true},
}

local function flags_key(kid) return P .. 'k:' .. kid end
local function minute_key(kid, b) return P .. 'r:' .. kid .. ':' .. b end
local function windows_key(kid, b) return P .. 'w:' .. kid .. ':' .. b end
local function flight_key(kid, b) return P .. 'f:' .. kid .. ':' .. b end
local function after(seconds) return '(' .. string.format('%.6f', seconds) end

-- A key as the caller names it ("<kid>" or "<kid>/<bkid>"): its kid and the kid of its budget.
local function names(x)
  local at = string.find(x, '/', 1, true)
  if not at then return x, x end
  return string.sub(x, 1, at - 1), string.sub(x, at + 1)
end

-- The windows a mask ("01101", one digit per entry of WINDOWS) names, of requests or of tokens
-- (built once per mask and kind).
local MASKS = {}
local function windows_of(mask, tokens)
  local name = (tokens and 't' or 'r') .. mask
  local found = MASKS[name]
  if not found then
    found = {}
    for i, win in ipairs(WINDOWS) do
      if string.sub(mask, i, i) == '1' and win.tokens == tokens then found[#found + 1] = win end
    end
    MASKS[name] = found
  end
  return found
end

-- ---------------------------------------------------------------- slot windows

local function first_live(win) return math.floor((now - win.seconds) / win.size) end

-- The fields of the sums and first slots of windows `wins`, for HMGET.
local function sum_fields(wins)
  local names = {}
  for i, win in ipairs(wins) do
    names[2 * i - 1] = win.name .. 's'
    names[2 * i] = win.name .. 'f'
  end
  return names
end

-- What each window of `wins` in hash `key` holds now, dropping the slots that have left them:
-- one HMGET of `names` (`sum_fields(wins)`), and three more when some slot has to go.
local function sums(key, wins, names)
  if #wins == 0 then return {} end
  local v = redis.call('HMGET', key, unpack(names))
  local out, stale, owner, fresh = {}, nil, nil, nil
  for i, win in ipairs(wins) do
    local sum, first, live = tonumber(v[2 * i - 1]), tonumber(v[2 * i]), first_live(win)
    out[i] = sum or 0
    if sum and first and first < live then
      stale, owner, fresh = stale or {}, owner or {}, fresh or {}
      if live - first > win.count + 1 then -- idle longer than the window: recount what is left
        local fields = redis.call('HGETALL', key)
        local prefix, total = win.name, 0
        for j = 1, #fields, 2 do
          local slot = string.match(fields[j], '^' .. prefix .. '(%d+)$')
          if slot then
            if tonumber(slot) < live then
              stale[#stale + 1] = fields[j]
            else
              total = total + tonumber(fields[j + 1])
            end
          end
        end
        out[i] = total
      else
        for slot = first, live - 1 do
          stale[#stale + 1] = win.name .. slot
          owner[#stale] = i
        end
      end
      fresh[#fresh + 1] = win.name .. 's'
      fresh[#fresh + 1] = i
      fresh[#fresh + 1] = win.name .. 'f'
      fresh[#fresh + 1] = live
    end
  end
  if not fresh then return out end
  if #stale > 0 then
    local gone = redis.call('HMGET', key, unpack(stale))
    for j, used in ipairs(gone) do
      if used and owner[j] then out[owner[j]] = out[owner[j]] - tonumber(used) end
    end
    redis.call('HDEL', key, unpack(stale))
  end
  for j = 2, #fresh, 4 do fresh[j] = out[fresh[j]] end
  redis.call('HSET', key, unpack(fresh))
  return out
end

-- Add `amount` (negative: take it back) to window `win` of hash `key`, in the slot of time `at`.
-- Returns whether the slot is new.
local function slot_add(key, win, at, amount)
  local slot = math.floor(at / win.size)
  if slot < first_live(win) then return false end -- already out of the window (and of its sum)
  redis.call('HINCRBY', key, win.name .. 's', amount)
  if redis.call('HINCRBY', key, win.name .. slot, amount) ~= amount then return false end
  if at < now then -- an earlier time (a release, a record, a seed): the first slot may be later
    local first = redis.call('HGET', key, win.name .. 'f')
    if not first or tonumber(first) > slot then redis.call('HSET', key, win.name .. 'f', slot) end
  else
    redis.call('HSETNX', key, win.name .. 'f', slot)
  end
  redis.call('EXPIRE', key, KEEP)
  return true
end

-- The live slots of window `win` in the fields of an HGETALL, as {slot, amount}, oldest first.
local function slots_of(fields, win)
  local live, first = {}, first_live(win)
  for j = 1, #fields, 2 do
    local slot = string.match(fields[j], '^' .. win.name .. '(%d+)$')
    if slot and tonumber(slot) >= first then live[#live + 1] = {tonumber(slot), tonumber(fields[j + 1])} end
  end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  return live
end

-- When `need` of what `live` slots of `win` hold will have left the window (nil: they hold less).
local function freed_at(live, win, need)
  local dropped = 0
  for _, slot in ipairs(live) do
    dropped = dropped + slot[2]
    if dropped >= need then return (slot[1] + 1) * win.size + win.seconds end
  end
  return nil
end

-- ---------------------------------------------------------------- one key

-- The key's flags (dead, cool, proven, probe_until) and its budget's learned cap (cap, capat).
local function flags(kid, bkid, b)
  if kid == bkid then
    return redis.call('HMGET', flags_key(kid), 'dead', 'cool', 'proven', 'probe_until', 'cap:' .. b, 'capat:' .. b)
  end
  local f = redis.call('HMGET', flags_key(kid), 'dead', 'cool', 'proven', 'probe_until')
  local cap = redis.call('HMGET', flags_key(bkid), 'cap:' .. b, 'capat:' .. b)
  f[5], f[6] = cap[1], cap[2]
  return f
end

-- The budget's requests a minute: the table's `rpm`, or a cap learned below it, one more each minute since.
local function per_minute(bkid, b, rpm, cap, since)
  if not cap then return rpm end
  local grown = tonumber(cap) + math.floor((now - tonumber(since)) / MINUTE)
  if grown >= rpm then
    redis.call('HDEL', flags_key(bkid), 'cap:' .. b, 'capat:' .. b)
    return rpm
  end
  return grown
end

local function minute_requests(kid, b)
  return redis.call('ZCOUNT', minute_key(kid, b), minute_ago, '+inf')
end

-- Tokens reserved by the key's leases in flight (a lease whose process stopped renewing it counts
-- no longer once it expires).
local function reserved(kid, b)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', flight_key(kid, b), just_now, '+inf')) do
    total = total + tonumber(string.match(member, '|(%d+)|'))
  end
  return total
end

local function flying(kid, b) return redis.call('ZCOUNT', flight_key(kid, b), just_now, '+inf') end

local function probing(f) return not f[3] and f[4] and tonumber(f[4]) > now end

-- What calls of one bucket and limits share, built once per library load (a handful of models).
local SHAPES = {}

-- One call's wants, from A[first]: bucket, tokens, then requests a minute, hour and day and tokens
-- a minute, hour and day (0: no limit, or none that can refuse first); eight values in all.
local function call_of(first)
  local name = table.concat(A, ' ', first + 2, first + 7) .. ' ' .. A[first]
  local c = SHAPES[name]
  if not c then
    c = {b = A[first], limits = {}, wins = {}, mask = ''}
    for i = 1, 6 do c.limits[i] = tonumber(A[first + 1 + i]) end
    if c.limits[1] <= 0 then c.limits[1] = math.huge end
    for _, win in ipairs(WINDOWS) do
      local limited = c.limits[win.limit] > 0
      if limited then c.wins[#c.wins + 1] = win end
      c.mask = c.mask .. (limited and '1' or '0')
    end
    c.requests = windows_of(c.mask, false)
    c.any_tokens = #windows_of(c.mask, true) > 0
    c.names = sum_fields(c.wins)
    SHAPES[name] = c
  end
  c.tokens = tonumber(A[first + 1])
  return c
end

-- Whether key `x` ("<kid>" or "<kid>/<bkid>") can take the call `c` now (`seen`: the requests of
-- its budget's last minute, if known), and its flags.
local function fits(x, c, seen)
  local kid, bkid = names(x)
  local f = flags(kid, bkid, c.b)
  if f[1] or (f[2] and tonumber(f[2]) > now) or probing(f) then return false end
  if (seen or minute_requests(bkid, c.b)) >= per_minute(bkid, c.b, c.limits[1], f[5], f[6]) then return false end
  local held = sums(windows_key(bkid, c.b), c.wins, c.names)
  local wanted = c.any_tokens and reserved(bkid, c.b) + c.tokens or 0
  for i, win in ipairs(c.wins) do
    local limit = c.limits[win.limit]
    if win.tokens and held[i] + wanted > limit or not win.tokens and held[i] >= limit then return false end
  end
  return true, f
end

-- When key `x` could take the call `c` by its budget's windows alone: a time, 'flight' (once a call
-- in flight ends, here or in another process) or nil (never: the call is more than a window holds).
local function free_at(x, c, f)
  if probing(f) then return 'flight' end
  local _, bkid = names(x)
  local at = f[2] and tonumber(f[2]) or 0
  local in_flight = flying(bkid, c.b)
  local limit = per_minute(bkid, c.b, c.limits[1], f[5], f[6])
  local seen = minute_requests(bkid, c.b)
  if seen >= limit then
    if seen - in_flight < limit then return 'flight' end
    local entry = redis.call('ZRANGEBYSCORE', minute_key(bkid, c.b), minute_ago, '+inf',
      'WITHSCORES', 'LIMIT', seen - limit, 1)
    at = math.max(at, tonumber(entry[2]) + MINUTE)
  end
  if #c.wins == 0 then return at end
  local fields = redis.call('HGETALL', windows_key(bkid, c.b))
  local held = c.any_tokens and reserved(bkid, c.b) or 0
  for _, win in ipairs(c.wins) do
    local live = slots_of(fields, win)
    local total = 0
    for _, slot in ipairs(live) do total = total + slot[2] end
    limit = c.limits[win.limit]
    local need = win.tokens and total + held + c.tokens - limit or total - limit + 1
    if need > 0 then
      if win.tokens and need <= held or not win.tokens and total - in_flight < limit then return 'flight' end
      local freed = freed_at(live, win, need)
      if not freed then return nil end
      at = math.max(at, freed)
    end
  end
  return at
end

-- Count a request sent at `at` in the minute and in the request windows of `mask`; returns
-- whether a slot window got a new slot.
local function count_request(kid, b, id, at, mask)
  if at > now - MINUTE then redis.call('ZADD', minute_key(kid, b), at, id) end
  local new = false
  for _, win in ipairs(windows_of(mask, false)) do new = slot_add(windows_key(kid, b), win, at, 1) or new end
  return new
end

local function uncount_request(kid, b, id, at, mask)
  redis.call('ZREM', minute_key(kid, b), id)
  for _, win in ipairs(windows_of(mask, false)) do slot_add(windows_key(kid, b), win, at, -1) end
end

local function count_tokens(kid, b, tokens, at, mask)
  if tokens > 0 then
    for _, win in ipairs(windows_of(mask, true)) do slot_add(windows_key(kid, b), win, at, tokens) end
  end
end

-- The lease is over: if it was probing its key, the key is free for others; `proven` if it succeeded.
local function end_lease(kid, lease, proven)
  local k = flags_key(kid)
  local f = redis.call('HMGET', k, 'probe', 'proven')
  if f[1] == lease then redis.call('HDEL', k, 'probe', 'probe_until') end
  if proven and not f[2] then
    redis.call('HSET', k, 'proven', '1')
    redis.call('EXPIRE', k, KEEP)
  end
end

-- ---------------------------------------------------------------- operations

local OPS = {}

OPS.acquire = function()
  -- A: 3 lease ID, 4 lease seconds, 5 the positions (1-based) of two keys the caller drew at random,
  -- "i:j", 6..13 the call (call_of), 14 how many keys to avoid, then their positions, then the
  -- digest of the pool's kids, then the kids at positions i and j.
  -- Returns {1, position (0-based)} or {0, seconds until a key frees ("-1": when a call in
  -- flight ends; "-2": never), dead, cooling, in flight, then each key's state: "-1" dead, its
  -- cooldown's end, or "0"}, or {-1} when Redis does not know the digest (send 'ids' first).
  local lease, ttl = A[3], tonumber(A[4])
  local i, j = string.match(A[5], '(%d+):(%d+)')
  local a, z = tonumber(i), tonumber(j)
  local c = call_of(6)
  local navoid = tonumber(A[14])
  local avoid = {}
  for k = 1, navoid do avoid[tonumber(A[14 + k])] = true end
  local digest, picked = A[15 + navoid], {[a] = A[16 + navoid], [z] = A[17 + navoid]}
  -- Two random choices: of the two keys drawn, the less loaded (by its last minute) that can take
  -- the call; else a scan from a random start, keys this call has not failed on first.
  local order, seen = {}, {}
  for _, k in ipairs(a == z and {a} or {a, z}) do
    if not avoid[k] then
      seen[k] = minute_requests(select(2, names(picked[k])), c.b)
      order[#order + 1] = k
    end
  end
  if #order == 2 and seen[order[2]] < seen[order[1]] then order = {order[2], order[1]} end
  local chosen, kid, f
  for _, k in ipairs(order) do
    local ok, found = fits(picked[k], c, seen[k])
    if ok then
      chosen, kid, f = k, picked[k], found
      break
    end
  end
  local kids
  if not chosen then
    kids = redis.call('LRANGE', P .. 'ids:' .. digest, 0, -1)
    if #kids == 0 then return {-1} end
    local n = #kids
    for pass = 1, 2 do
      for offset = 0, n - 1 do
        local k = (a - 1 + offset) % n + 1
        if (pass == 1 and not avoid[k] and k ~= a and k ~= z) or (pass == 2 and avoid[k]) then
          local ok, found = fits(kids[k], c)
          if ok then
            chosen, kid, f = k, kids[k], found
            break
          end
        end
      end
      if chosen then break end
    end
  end
  if chosen then
    local bkid
    kid, bkid = names(kid)
    local minute, flight = minute_key(bkid, c.b), flight_key(bkid, c.b)
    if (a * 31 + z) % 8 == 0 then -- now and then, drop what has left the windows for good
      redis.call('ZREMRANGEBYSCORE', minute, '-inf', now - MINUTE)
      redis.call('ZREMRANGEBYSCORE', flight, '-inf', now - GRACE)
    end
    local new = count_request(bkid, c.b, lease, now, c.mask)
    redis.call('ZADD', flight, now + ttl, lease .. '|' .. c.tokens .. '|' .. A[2])
    if new or #c.requests == 0 then
      redis.call('EXPIRE', minute, KEEP)
      redis.call('EXPIRE', flight, KEEP)
    end
    if not f[3] then redis.call('HSET', flags_key(kid), 'probe', lease, 'probe_until', now + ttl) end
    return {1, chosen - 1}
  end
  local n = #kids
  local soonest, flight = nil, false
  local dead, cooling, in_flight = 0, 0, 0
  local states, counted = {}, {}
  for i, x in ipairs(kids) do
    local kid, bkid = names(x)
    local f = flags(kid, bkid, c.b)
    if f[1] then
      dead = dead + 1
      states[i] = '-1'
    else
      local cool = f[2] and tonumber(f[2]) or 0
      if cool > now then cooling = cooling + 1 end
      states[i] = cool > now and string.format('%.3f', cool) or '0'
      local at = free_at(x, c, f)
      if at == 'flight' then
        flight = true
      elseif at and (not soonest or at < soonest) then
        soonest = at
      end
    end
    if not counted[bkid] then
      counted[bkid] = true
      in_flight = in_flight + flying(bkid, c.b)
    end
  end
  local wait = '-2'
  if flight then wait = '-1' elseif soonest then wait = string.format('%.3f', math.max(0, soonest - now)) end
  local reply = {0, wait, dead, cooling, in_flight}
  for i = 1, n do reply[#reply + 1] = states[i] end
  return reply
end

OPS.settle = function()
  -- End a lease, once (a settle sent twice, or after its lease was abandoned, does nothing).
  -- A: 3 the key ("<kid>" or "<kid>/<bkid>"), 4 bucket, 5 lease ID, 6 reserved tokens, 7 when it
  -- was sent (as acquired), 8 tokens used (-1: released unused), 9 the windows' mask.
  local kid, bkid = names(A[3])
  local b, lease, tokens = A[4], A[5], tonumber(A[8])
  if redis.call('ZREM', flight_key(bkid, b), lease .. '|' .. A[6] .. '|' .. A[7]) == 0 then return 0 end
  end_lease(kid, lease, tokens >= 0)
  if tokens < 0 then
    uncount_request(bkid, b, lease, tonumber(A[7]), A[9])
  else
    -- The provider counted the request when it arrived, somewhere between its reservation and
    -- now: keep it in the minute until a minute after the later of the two (at most SENT after
    -- the reservation, so a long call does not hold its key longer than that).
    redis.call('ZADD', minute_key(bkid, b), 'XX', math.min(now, tonumber(A[7]) + SENT), lease)
    count_tokens(bkid, b, tokens, now, A[9])
  end
  return 1
end

OPS.abandon = function()
  -- A reservation whose answer never reached its process (Redis was too slow): undo it, whichever
  -- key it took. A: 3 lease ID, 4 bucket, 5 reserved tokens, 6 when it was made, 7 the mask,
  -- 8 the digest of the pool's kids.
  local lease, b = A[3], A[4]
  local ids = redis.call('LRANGE', P .. 'ids:' .. A[8], 0, -1)
  for _, x in ipairs(ids) do
    local _, bkid = names(x)
    if redis.call('ZREM', flight_key(bkid, b), lease .. '|' .. A[5] .. '|' .. A[6]) == 1 then
      uncount_request(bkid, b, lease, tonumber(A[6]), A[7])
      for _, y in ipairs(ids) do -- the lease was one of the budget's keys': whichever it probes is free
        local kid, other = names(y)
        if other == bkid then end_lease(kid, lease, false) end
      end
      return 1
    end
  end
  return 0
end

OPS.record = function()
  -- A call served while Redis was away, counted at its time once it answers (once only).
  -- A: 3 the key, 4 bucket, 5 ID, 6 tokens, 7 the mask
  if not redis.call('SET', P .. 'rec:' .. A[5], '1', 'NX', 'EX', GRACE) then return 0 end
  local _, bkid = names(A[3])
  count_request(bkid, A[4], A[5], now, A[7])
  count_tokens(bkid, A[4], tonumber(A[6]), now, A[7])
  return 1
end

OPS.seed = function()
  -- The usage database's last day, replayed into a pool Redis knows nothing of yet (a new or an
  -- emptied Redis); once only, whichever process comes first.
  -- A: 3.. key, bucket, time, tokens, mask (five per row).
  if not redis.call('SET', P .. 'seeded', A[2], 'NX') then return 0 end
  local seeded = 0
  for i = 3, #A, 5 do
    local _, bkid = names(A[i])
    local b, at = A[i + 1], tonumber(A[i + 2])
    if at > now - DAY then
      count_request(bkid, b, 'seed.' .. i, at, A[i + 4])
      count_tokens(bkid, b, tonumber(A[i + 3]), at, A[i + 4])
      seeded = seeded + 1
    end
  end
  return seeded
end

OPS.renew = function()
  -- A: 3 the key, 4 bucket, 5 lease ID, 6 reserved tokens, 7 when it was sent, 8 new expiry
  local kid, bkid = names(A[3])
  local b, lease = A[4], A[5]
  redis.call('ZADD', flight_key(bkid, b), 'XX', A[8], lease .. '|' .. A[6] .. '|' .. A[7])
  if redis.call('HGET', flags_key(kid), 'probe') == lease then
    redis.call('HSET', flags_key(kid), 'probe_until', A[8])
  end
  return 1
end

OPS.cool = function()
  -- A: 3 kid, 4 until, 5 what it waits for ("cooling", or "quota": a daily quota's reset) and
  -- 6 why (short text), both for `snapshot` and both optional
  local k, til = flags_key(A[3]), tonumber(A[4])
  local cool = redis.call('HGET', k, 'cool')
  if not cool or tonumber(cool) < til then
    redis.call('HSET', k, 'cool', A[4], 'cool_as', A[5] or 'cooling', 'cool_why', A[6] or '')
  end
  -- When the cooldown ends, one call probes the key before the waiting callers pile on it.
  redis.call('HDEL', k, 'proven')
  redis.call('EXPIRE', k, math.max(KEEP, math.ceil(til - now) + 60))
  return 1
end

OPS.dead = function()
  -- A: 3 kid, 4 why (short text, for `snapshot`; optional)
  redis.call('HSET', flags_key(A[3]), 'dead', string.format('%.3f', now), 'dead_why', A[4] or '')
  redis.call('EXPIRE', flags_key(A[3]), KEEP)
  return 1
end

OPS.revive = function()
  -- Put a retired key back in service (`hfs keys revive`). A: 3 kid. Its cooldown, if any, runs on;
  -- not proven, its next call tries it alone first. Returns 1 if it was retired, else 0.
  local k = flags_key(A[3])
  if redis.call('HEXISTS', k, 'dead') == 0 then return 0 end
  redis.call('HDEL', k, 'dead', 'dead_why', 'proven')
  return 1
end

OPS.learn = function()
  -- A per-minute refusal below the table's limit: cap the key's budget (its group, or the key) at what
  -- its window holds (at least 1). A: 3 the key, 4 bucket, 5 the table's requests a minute. Returns
  -- the cap, or 0 for none.
  local kid, bkid = names(A[3])
  local b = A[4]
  local f = flags(kid, bkid, b)
  local seen = minute_requests(bkid, b)
  if seen >= per_minute(bkid, b, tonumber(A[5]), f[5], f[6]) then return 0 end
  local cap = math.max(1, seen)
  redis.call('HSET', flags_key(bkid), 'cap:' .. b, cap, 'capat:' .. b, string.format('%.3f', now))
  redis.call('EXPIRE', flags_key(bkid), KEEP)
  return cap
end

OPS.snapshot = function()
  -- Read only (for `hfs status`): each key's flags and its budget's windows of some buckets.
  -- A: 3 how many buckets, then each bucket and its mask, then the keys ("<kid>" or "<kid>/<bkid>").
  -- Returns, for each key: dead, cool, cool_as, cool_why, dead_why, then for each bucket the
  -- requests of the last minute, the calls in flight (the budget's, on its first key; 0 on the
  -- others), rh, rd, tm, th, td ('' for a window the mask leaves out) and the learned cap and
  -- when it was learned ('' for none).
  local nb = tonumber(A[3])
  local out = {}
  for i = 4 + 2 * nb, #A do
    local kid, bkid = names(A[i])
    local f = redis.call('HMGET', flags_key(kid), 'dead', 'cool', 'cool_as', 'cool_why', 'dead_why')
    for j = 1, 5 do out[#out + 1] = f[j] or '' end
    for j = 0, nb - 1 do
      local b, mask = A[4 + 2 * j], A[5 + 2 * j]
      out[#out + 1] = minute_requests(bkid, b)
      out[#out + 1] = kid == bkid and flying(bkid, b) or 0
      local fields = redis.call('HGETALL', windows_key(bkid, b))
      for k, win in ipairs(WINDOWS) do
        if string.sub(mask, k, k) == '1' then
          local total = 0
          for _, slot in ipairs(slots_of(fields, win)) do total = total + slot[2] end
          out[#out + 1] = total
        else
          out[#out + 1] = ''
        end
      end
      local cap = redis.call('HMGET', flags_key(bkid), 'cap:' .. b, 'capat:' .. b)
      out[#out + 1] = cap[1] or ''
      out[#out + 1] = cap[2] or ''
    end
  end
  return out
end

OPS.ids = function()
  -- A: 3 the digest, then the kids in order.
  local key = P .. 'ids:' .. A[3]
  redis.call('DEL', key)
  redis.call('RPUSH', key, unpack(A, 4))
  redis.call('EXPIRE', key, KEEP)
  return 1
end

OPS.beat = function()
  -- A process's heartbeat. A: 3 process ID, 4 when it expires, 5 the digest of its kids (kept
  -- while the process lives). Returns the processes alive.
  local procs = P .. 'procs'
  redis.call('EXPIRE', P .. 'ids:' .. A[5], KEEP)
  redis.call('ZADD', procs, A[4], A[3])
  redis.call('ZREMRANGEBYSCORE', procs, '-inf', now)
  redis.call('EXPIRE', procs, KEEP)
  return redis.call('ZCARD', procs)
end

OPS.leave = function()
  redis.call('ZREM', P .. 'procs', A[3])
  return 1
end

redis.register_function('hfs_pool_3', function(keys, args)
  P, A, now = keys[1], args, tonumber(args[2])
  minute_ago, just_now = after(now - MINUTE), after(now)
  local run = OPS[args[1]]
  if not run then return redis.error_reply('unknown operation ' .. tostring(args[1])) end
  return run()
end)
