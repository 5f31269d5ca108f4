-- Write tasks' STARTED states, then end leases and write final states, in one step: what a
-- worker finished during one event-loop turn costs one round trip.
-- ARGV: base, n_started, then 4 per state: id, status, data, ttl_ms,
--       then 5 per ack: id, queue, status, data, ttl_ms
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  write_state(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  i = i + 4
end
while i <= #ARGV do
  local id, queue = ARGV[i], ARGV[i + 1]
  if end_lease(id, queue) then redis.call('DEL', mkey(id)) end
  write_state(id, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
  i = i + 5
end
return 0
