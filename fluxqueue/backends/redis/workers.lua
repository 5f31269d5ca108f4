-- The live workers' JSON records (registered_workers). ARGV: base
return live_workers(now_ms())
