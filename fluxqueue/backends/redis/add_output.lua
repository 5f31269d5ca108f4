-- Append a streamed item. ARGV: base, id, item, ttl_ms (<= 0: no expiry)
local k = BASE .. 'o:' .. ARGV[2]
redis.call('RPUSH', k, ARGV[3])
local ttl = tonumber(ARGV[4]) or 0
if ttl > 0 then redis.call('PEXPIRE', k, num(ttl)) end
return 0
