-- ARGV: base, worker id, worker JSON, ttl_ms ('' = forget the worker)
local seen, workers = BASE .. 'workers:seen', BASE .. 'workers'
if ARGV[4] == '' then
  redis.call('ZREM', seen, ARGV[2])
  redis.call('HDEL', workers, ARGV[2])
else
  redis.call('HSET', workers, ARGV[2], ARGV[3])
  redis.call('ZADD', seen, num(now_ms() + tonumber(ARGV[4])), ARGV[2])
end
return 0
