-- End a lease, move the message to its queue's dead letters and write the state.
-- ARGV: base, id, queue, data, reason, status, state data, ttl_ms
local id, queue = ARGV[2], ARGV[3]
if end_lease(id, queue) then redis.call('DEL', mkey(id)) end
local seq = redis.call('INCR', BASE .. 'seq')
redis.call('ZADD', qkey(queue, 'dead'), num(seq), id)
redis.call('HSET', qkey(queue, 'dead:data'), id, ARGV[4])
redis.call('HSET', qkey(queue, 'dead:info'), id, num(now_ms()) .. ':' .. ARGV[5])
redis.call('SADD', BASE .. 'queues', queue)
write_state(id, ARGV[6], ARGV[7], ARGV[8])
return 0
