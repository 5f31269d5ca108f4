-- Make every scheduled message ready now, in eta order. ARGV: base, queue ('' = all)
local queues = {ARGV[2]}
if ARGV[2] == '' then queues = redis.call('SMEMBERS', BASE .. 'queues') end
local n = 0
for _, queue in ipairs(queues) do
  local k = qkey(queue, 'scheduled')
  local ids = redis.call('ZRANGE', k, 0, -1)
  for _, id in ipairs(ids) do
    redis.call('ZREM', k, id)
    make_ready(id, queue, redis.call('HGET', mkey(id), 'p'))
    n = n + 1
  end
  if #ids > 0 then wake(queue) end
end
return n
