-- Lease up to `count` ready messages from the given queues, strict priority then FIFO.
-- ARGV: base, count, visibility_ms, queue...
-- Returns {next_ms, id, queue, data, receipt, ...}; next_ms (only meaningful when fewer
-- than `count` were leased: the queues are empty) is how long until the next eta or lease
-- deadline, -1 if none.
local now = now_ms()
local count = tonumber(ARGV[2])
local deadline = num(now + tonumber(ARGV[3]))
local queues = {}
for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
for _, queue in ipairs(queues) do housekeep(queue, now, 1000) end

local out = {-1}
local taken = 0

local function lease(id, queue)
  local k = mkey(id)
  local data = redis.call('HGET', k, 'd')
  if not data then return end  -- an orphan id (its message vanished): just drop it
  redis.call('ZADD', qkey(queue, 'leased'), deadline, id)
  local receipt = redis.call('HINCRBY', k, 'n', 1)
  out[#out + 1] = id
  out[#out + 1] = queue
  out[#out + 1] = data
  out[#out + 1] = tostring(receipt)
  taken = taken + 1
end

if #queues == 1 then
  local queue = queues[1]
  local ready = qkey(queue, 'ready')
  while taken < count do
    local popped = redis.call('ZPOPMIN', ready, count - taken)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do lease(popped[j], queue) end
  end
else
  while taken < count do
    local best, best_score, best_queue = nil, nil, nil
    for _, queue in ipairs(queues) do
      local head = redis.call('ZRANGE', qkey(queue, 'ready'), 0, 0, 'WITHSCORES')
      if head[1] and (best == nil or tonumber(head[2]) < best_score) then
        best, best_score, best_queue = head[1], tonumber(head[2]), queue
      end
    end
    if best == nil then break end
    redis.call('ZREM', qkey(best_queue, 'ready'), best)
    lease(best, best_queue)
  end
end

if taken < count then
  local next_at = nil
  for _, queue in ipairs(queues) do
    for _, kind in ipairs({'scheduled', 'leased'}) do
      local head = redis.call('ZRANGE', qkey(queue, kind), 0, 0, 'WITHSCORES')
      if head[1] and (next_at == nil or tonumber(head[2]) < next_at) then
        next_at = tonumber(head[2])
      end
    end
    -- Nothing is left ready here, so any wake token left is stale: an enqueue after
    -- this script pushes a fresh one, so the caller's BLPOP cannot miss it.
    redis.call('DEL', qkey(queue, 'wake'))
  end
  if next_at then out[1] = math.max(0, next_at - now) end
end
return out
