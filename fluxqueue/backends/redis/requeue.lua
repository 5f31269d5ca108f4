-- End a lease and store the message again (a retry or a hand-back) with its state.
-- ARGV: base, leased id, leased queue, then id, queue, priority, eta_ms, data,
--       status, state data, ttl_ms
end_lease(ARGV[2], ARGV[3])
local id, queue = ARGV[4], ARGV[5]
store(id, queue, ARGV[6], ARGV[7], ARGV[8], now_ms())
write_state(id, ARGV[9], ARGV[10], ARGV[11])
wake(queue)
return 0
