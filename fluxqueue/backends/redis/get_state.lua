-- A task's state. ARGV: base, id.
-- Returns {status, data, ttl_ms, message}: the state hash when there is one (message is
-- set for a task aborted while it waited, see abort.lua), else {false, false, ttl_ms,
-- message} for a stored message, whose PENDING or SCHEDULED state the client builds from
-- it; nil when neither exists. One script, so a worker's ack (which deletes the message
-- and writes the state) is never seen half done.
local id = ARGV[2]
local state = redis.call('HMGET', skey(id), 'st', 'd', 't', 'm')
if state[1] then return state end
local message = redis.call('HMGET', mkey(id), 'd', 't')
if not message[1] then return false end
return {false, false, message[2], message[1]}
