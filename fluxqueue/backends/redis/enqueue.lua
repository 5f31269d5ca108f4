-- Store messages; wake blocked consumers of their queues.
-- ARGV: base, state ttl_ms, total number of messages, then groups of messages that share
--   their routing: queue, priority, eta_ms ('' = now), count,
--   then `count` times: id, data
--
-- A message stored under an id that is already taken replaces the older one (wherever it
-- waits or is leased), and the task starts over: an older state (a result, a failure, an
-- abort) gives way to the PENDING one derived from this message. Streamed outputs
-- (o:<id>) are left alone.
--
-- No state is written: while a message waits, its PENDING or SCHEDULED state is built from
-- the message when asked (get_state.lua). The state ttl is kept with the message (t), for
-- the ABORTED state of a task aborted while it waits (abort.lua).
--
-- A script pays for each Redis call and each argument, so what can be is done once per
-- call or per group: one TIME (only for an eta), one INCRBY for the FIFO sequence numbers
-- of the whole call, one ZADD per sorted set, one SADD of the queue names, wake tokens in
-- one LPUSH per queue. Per message: HGET (an older one?), DEL (its state), HSET.
local ttl_ms, total = ARGV[2], tonumber(ARGV[3])
do
  -- Entries that fluxqueue's earlier single enqueues left in these queues' incoming lists
  -- arrived first: absorb() numbers them before this call takes its own sequence numbers.
  local g = 4
  while g <= #ARGV do
    absorb(ARGV[g])
    g = g + 4 + 2 * tonumber(ARGV[g + 3])
  end
end
local seq = redis.call('INCRBY', BASE .. 'seq', total) - total

local now = nil
local pending = {}  -- zset key -> {score, id, score, id, ...}: not yet added
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

local i = 4
while i <= #ARGV do
  local queue, priority, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
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
  local members = pending[key]
  if not members then
    members = {}
    pending[key] = members
  end
  local first = i + 4
  i = first + 2 * count
  for j = first, i - 1, 2 do
    local id = ARGV[j]
    local k = mprefix .. id
    local old = redis.call('HGET', k, 'q')
    if old then
      -- Replacing a message: whatever this call placed before must be in its set first,
      -- so that unplace() finds it.
      flush()
      members = {}
      pending[key] = members
      unplace(id, old)
    end
    redis.call('DEL', sprefix .. id)
    redis.call('HSET', k, 'd', ARGV[j + 1], 'q', queue, 'p', priority, 't', ttl_ms)
    seq = seq + 1
    local score = eta
    if band then score = band + seq end
    members[#members + 1] = score
    members[#members + 1] = id
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
