-- End a lease, delete the message and write the final state, in one step.
-- ARGV: base, id, queue, status, state data, ttl_ms
local id, queue = ARGV[2], ARGV[3]
if end_lease(id, queue) then redis.call('DEL', mkey(id)) end
write_state(id, ARGV[4], ARGV[5], ARGV[6])
return 0
