-- Store messages and their initial states; wake blocked consumers of their queues.
-- ARGV: base, total number of messages, then groups of messages that share their routing:
--   queue, priority, eta_ms ('' = now), status, state ttl_ms, fresh, count,
--   then `count` times: id, data, state data
-- fresh = '1' says the producer minted each id of the group for that very message and
-- sends it once in this call, so nothing can be stored under it yet: no older message to
-- look up and replace, no older state to un-expire. Any other value takes the general path.
--
-- A script pays for each Redis call and each argument, so what can be is done once per
-- call or per group: one TIME (only for an eta), one INCRBY for the FIFO sequence numbers
-- of the whole call, one ZADD per sorted set for fresh messages, one SADD of the queue
-- names, wake tokens in one LPUSH per queue. Per message: two HSETs and a PEXPIRE.
local total = tonumber(ARGV[2])
local seq = redis.call('INCRBY', BASE .. 'seq', total) - total
local now = nil
local pending = {}  -- zset key -> {score, id, score, id, ...}: fresh messages, not yet added
local woken = {}    -- queue -> messages enqueued
local names = {}    -- queue names, first seen first
local mprefix, sprefix = BASE .. 'm:', BASE .. 's:'

local function flush()
  for key, members in pairs(pending) do
    -- unpack() is bounded by the Lua C stack (8,000 slots): add in slices.
    for s = 1, #members, 2000 do
      redis.call('ZADD', key, unpack(members, s, math.min(s + 1999, #members)))
    end
  end
  pending = {}
end

local i = 3
while i <= #ARGV do
  local queue, priority, status = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local ttl_ms, fresh, count = ARGV[i + 4], ARGV[i + 5] == '1', tonumber(ARGV[i + 6])
  local ttl = tonumber(ttl_ms) or 0
  if ttl > 0 then ttl_ms = num(ttl) end
  local key, band
  local eta = tonumber(ARGV[i + 2])
  if eta then now = now or now_ms() end
  if eta and eta > now then
    key = qkey(queue, 'scheduled')
  else
    local p = tonumber(priority) or 2
    if p < 0 then p = 0 elseif p > 99 then p = 99 end
    key, band = qkey(queue, 'ready'), p * PRIORITY_SPAN
  end
  local members = nil
  if fresh then
    members = pending[key]
    if not members then
      members = {}
      pending[key] = members
    end
  end
  local first = i + 7
  i = first + 3 * count
  for j = first, i - 1, 3 do
    local id = ARGV[j]
    local k = mprefix .. id
    if not fresh then
      -- Replacing a message stored under this id: whatever this call placed before must
      -- be in its set first, so that unplace() finds it.
      flush()
      local old = redis.call('HGET', k, 'q')
      if old then unplace(id, old) end
    end
    redis.call('HSET', k, 'd', ARGV[j + 1], 'q', queue, 'p', priority)
    local sk = sprefix .. id
    redis.call('HSET', sk, 'st', status, 'd', ARGV[j + 2], 't', ttl_ms)
    if ttl > 0 then
      redis.call('PEXPIRE', sk, ttl_ms)
    elseif not fresh then
      redis.call('PERSIST', sk)
    end
    seq = seq + 1
    local score = eta
    if band then score = band + seq end
    if members then
      members[#members + 1] = score
      members[#members + 1] = id
    else
      redis.call('ZADD', key, score, id)
    end
  end
  if not woken[queue] then
    woken[queue] = 0
    names[#names + 1] = queue
  end
  woken[queue] = woken[queue] + count
end
flush()

-- A call carries at most a few thousand messages (the client's chunk), so few names.
redis.call('SADD', BASE .. 'queues', unpack(names))
for _, queue in ipairs(names) do
  -- One token per message, up to 64 in the list, so that as many idle consumers wake as
  -- can get a message; a full list is only read.
  local k = qkey(queue, 'wake')
  local room = math.min(woken[queue], 64 - redis.call('LLEN', k))
  if room > 0 then
    local tokens = {}
    for t = 1, room do tokens[t] = '1' end
    redis.call('LPUSH', k, unpack(tokens))
  end
end
return total
