-- Delete dead letters. ARGV: base, queue, 'all' | 'some', id...
local queue = ARGV[2]
local dead, data, info = qkey(queue, 'dead'), qkey(queue, 'dead:data'), qkey(queue, 'dead:info')
if ARGV[3] == 'all' then
  local n = redis.call('ZCARD', dead)
  redis.call('DEL', dead, data, info)
  return n
end
local n = 0
for i = 4, #ARGV do
  if redis.call('ZREM', dead, ARGV[i]) == 1 then
    n = n + 1
    redis.call('HDEL', data, ARGV[i])
    redis.call('HDEL', info, ARGV[i])
  end
end
return n
