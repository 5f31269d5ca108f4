-- ARGV: base, id, status, data, ttl_ms
write_state(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 0
