-- Abort a task. ARGV: base, id. Returns 'aborted', 'requested' or 'missing'.
local id = ARGV[2]
local k = mkey(id)
local queue = redis.call('HGET', k, 'q')
if not queue then return 'missing' end
if redis.call('ZSCORE', qkey(queue, 'leased'), id) then
  redis.call('SADD', BASE .. 'aborts', id)
  return 'requested'
end
unplace(id, queue)
redis.call('DEL', k)
local s = skey(id)
if redis.call('EXISTS', s) == 1 then
  redis.call('HSET', s, 'st', 'ABORTED')  -- keeps the data blob and the expiry
else
  write_state(id, 'ABORTED', '', 0)
end
return 'aborted'
