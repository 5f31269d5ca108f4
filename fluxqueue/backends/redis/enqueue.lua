-- Store messages and their initial states; wake blocked consumers of their queues.
-- ARGV: base, then 8 per message: id, queue, priority, eta_ms ('' = now), data,
--       status, state data, state ttl_ms
local now = now_ms()
local woken = {}
local n = 0
for i = 2, #ARGV, 8 do
  local id, queue = ARGV[i], ARGV[i + 1]
  store(id, queue, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], now)
  write_state(id, ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
  woken[queue] = (woken[queue] or 0) + 1
  n = n + 1
end
for queue, count in pairs(woken) do
  -- One token per message (up to 64) so that as many idle consumers wake as can get one.
  local k = qkey(queue, 'wake')
  for _ = 1, math.min(count, 64) do redis.call('LPUSH', k, '1') end
  redis.call('LTRIM', k, 0, 63)
end
return n
