-- Shared helpers, prepended to every fluxqueue script (see scripts.py).
-- ARGV[1] is always the namespace base "{prefix}:"; KEYS[1] is "{prefix}:seq", which only
-- routes the call to the namespace's cluster slot. Other keys are built here from the base:
-- they carry the same hash tag, so they live in the same slot on a cluster.
if redis.replicate_commands then redis.replicate_commands() end

local BASE = ARGV[1]
local PRIORITY_SPAN = 1000000000000  -- 1e12: FIFO sequence numbers per priority band

local function num(x)
  -- Lua prints large numbers as 1.7e+12; Redis wants plain digits.
  return string.format('%.0f', x)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function qkey(queue, kind) return BASE .. 'q:' .. queue .. ':' .. kind end
local function mkey(id) return BASE .. 'm:' .. id end
local function skey(id) return BASE .. 's:' .. id end

local function wake(queue)
  local k = qkey(queue, 'wake')
  redis.call('LPUSH', k, '1')
  redis.call('LTRIM', k, 0, 63)
end

-- Put a stored message into its queue's ready set, behind everything of its priority.
local function make_ready(id, queue, priority)
  local p = tonumber(priority) or 2
  if p < 0 then p = 0 elseif p > 99 then p = 99 end
  local seq = redis.call('INCR', BASE .. 'seq')
  redis.call('ZADD', qkey(queue, 'ready'), num(p * PRIORITY_SPAN + seq), id)
end

-- Move what single enqueues of fluxqueue before round 8 (docs/benchmarks.md) appended to
-- a queue's incoming list ("<priority> <id>" entries, written by a MULTI block instead of
-- enqueue.lua) into its ready set, in the order they arrived, with the FIFO sequence
-- numbers they would have got then. Today's producers write no such entries; this stays
-- so that messages left there by older producers (a rolling upgrade) are not stranded.
local function absorb(queue)
  local k = qkey(queue, 'incoming')
  while true do
    local entries = redis.call('LPOP', k, 1000)
    if not entries then return end
    local seq = redis.call('INCRBY', BASE .. 'seq', #entries) - #entries
    local members = {}
    for i, entry in ipairs(entries) do
      local space = string.find(entry, ' ', 1, true)
      local p = tonumber(string.sub(entry, 1, space - 1)) or 2
      if p < 0 then p = 0 elseif p > 99 then p = 99 end
      members[#members + 1] = num(p * PRIORITY_SPAN + seq + i)
      members[#members + 1] = string.sub(entry, space + 1)
    end
    redis.call('ZADD', qkey(queue, 'ready'), unpack(members))
    if #entries < 1000 then return end
  end
end

-- Remove a message from wherever it waits or is leased (it stays in the hash).
local function unplace(id, queue)
  absorb(queue)
  redis.call('ZREM', qkey(queue, 'ready'), id)
  redis.call('ZREM', qkey(queue, 'scheduled'), id)
  redis.call('ZREM', qkey(queue, 'leased'), id)
end

-- Store (or replace) a message: ready now, or scheduled when eta_ms lies in the future.
local function store(id, queue, priority, eta_ms, data, now)
  local k = mkey(id)
  local old = redis.call('HGET', k, 'q')
  if old then unplace(id, old) end
  redis.call('HSET', k, 'd', data, 'q', queue, 'p', priority)
  redis.call('SADD', BASE .. 'queues', queue)
  local eta = tonumber(eta_ms)
  if eta and eta > now then
    redis.call('ZADD', qkey(queue, 'scheduled'), num(eta), id)
  else
    make_ready(id, queue, priority)
  end
end

-- Write a task's state; ttl_ms <= 0 keeps it until it is overwritten.
local function write_state(id, status, data, ttl_ms)
  local k = skey(id)
  redis.call('HSET', k, 'st', status, 'd', data, 't', ttl_ms)
  local ttl = tonumber(ttl_ms) or 0
  if ttl > 0 then
    redis.call('PEXPIRE', k, num(ttl))
  else
    redis.call('PERSIST', k)
  end
end

-- End a lease: true when the message was leased (it is then removed from the leased set).
local function end_lease(id, queue)
  redis.call('SREM', BASE .. 'aborts', id)
  return redis.call('ZREM', qkey(queue, 'leased'), id) == 1
end

-- Move due scheduled messages and expired leases of a queue to ready (at most `limit` each).
local function housekeep(queue, now, limit)
  absorb(queue)
  local sched = qkey(queue, 'scheduled')
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', num(now), 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', sched, id)
    make_ready(id, queue, redis.call('HGET', mkey(id), 'p'))
  end
  local leased = qkey(queue, 'leased')
  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', num(now), 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    redis.call('ZREM', leased, id)
    if redis.call('EXISTS', mkey(id)) == 1 then
      make_ready(id, queue, redis.call('HGET', mkey(id), 'p'))
    end
  end
end

-- The JSON records of the live workers, after forgetting those whose heartbeat expired.
local function live_workers(now)
  local seen, workers = BASE .. 'workers:seen', BASE .. 'workers'
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', num(now))) do
    redis.call('HDEL', workers, id)
  end
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', num(now))
  local live = {}
  for _, id in ipairs(redis.call('ZRANGE', seen, 0, -1)) do
    local info = redis.call('HGET', workers, id)
    if info then live[#live + 1] = info end
  end
  return live
end
