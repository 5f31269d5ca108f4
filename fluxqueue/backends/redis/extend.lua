-- Renew leases that still exist. ARGV: base, visibility_ms, then pairs queue, id.
local deadline = num(now_ms() + tonumber(ARGV[2]))
for i = 3, #ARGV, 2 do
  redis.call('ZADD', qkey(ARGV[i], 'leased'), 'XX', deadline, ARGV[i + 1])
end
return 0
