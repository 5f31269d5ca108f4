-- Counts per queue and the live workers. ARGV: base, queue... (none: every known queue)
-- Returns {{name, {priority, count, ...}, scheduled, running, dead}, ...}, {worker json...}
local now = now_ms()
local queues = {}
for i = 2, #ARGV do queues[#queues + 1] = ARGV[i] end
if #queues == 0 then
  queues = redis.call('SMEMBERS', BASE .. 'queues')
  table.sort(queues)
end
local found = {}
for _, queue in ipairs(queues) do
  absorb(queue)
  local ready = qkey(queue, 'ready')
  local per = {}
  local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  if first[1] then
    local last = redis.call('ZRANGE', ready, -1, -1, 'WITHSCORES')
    local lo = math.floor(tonumber(first[2]) / PRIORITY_SPAN)
    local hi = math.floor(tonumber(last[2]) / PRIORITY_SPAN)
    for p = lo, hi do
      local c = redis.call('ZCOUNT', ready, num(p * PRIORITY_SPAN), '(' .. num((p + 1) * PRIORITY_SPAN))
      if c > 0 then
        per[#per + 1] = p
        per[#per + 1] = c
      end
    end
  end
  found[#found + 1] = {
    queue, per,
    redis.call('ZCARD', qkey(queue, 'scheduled')),
    redis.call('ZCARD', qkey(queue, 'leased')),
    redis.call('ZCARD', qkey(queue, 'dead')),
  }
end
return {found, live_workers(now)}
