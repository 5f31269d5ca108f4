-- Delete a queue's ready and scheduled messages (not leased ones). ARGV: base, queue
local queue = ARGV[2]
local n = 0
absorb(queue)
for _, kind in ipairs({'ready', 'scheduled'}) do
  local k = qkey(queue, kind)
  for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    redis.call('DEL', mkey(id))
    n = n + 1
  end
  redis.call('DEL', k)
end
redis.call('DEL', qkey(queue, 'wake'))
return n
