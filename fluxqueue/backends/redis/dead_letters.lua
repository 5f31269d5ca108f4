-- List a queue's dead letters, oldest first. ARGV: base, queue, limit
-- Returns {id, data, info, ...}.
local queue, limit = ARGV[2], tonumber(ARGV[3])
local out = {}
if limit <= 0 then return out end
local ids = redis.call('ZRANGE', qkey(queue, 'dead'), 0, limit - 1)
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', qkey(queue, 'dead:data'), id) or ''
  out[#out + 1] = redis.call('HGET', qkey(queue, 'dead:info'), id) or '0:'
end
return out
