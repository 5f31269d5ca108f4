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
local s = skey(id)
if redis.call('EXISTS', s) == 1 then
  redis.call('HSET', s, 'st', 'ABORTED')  -- keeps the data blob and the expiry
else
  -- The waiting task's state was derived from its message (see get_state.lua): the
  -- message moves into the ABORTED state (m), which reads with the same record, and
  -- expires after the state ttl it was enqueued with.
  local stored = redis.call('HMGET', k, 'd', 't')
  write_state(id, 'ABORTED', '', stored[2] or 0)
  redis.call('HSET', s, 'm', stored[1])
end
redis.call('DEL', k)
return 'aborted'
