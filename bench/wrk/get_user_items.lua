-- GET /users/{BENCH_USER}/items, the same user every time. BENCH_RATE (requests/s over all
-- BENCH_CONNECTIONS connections) paces each connection; 0 means as fast as possible.
local user = os.getenv("BENCH_USER")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "1")

request = function()
  return wrk.format("GET", "/users/" .. user .. "/items")
end

if rate > 0 then
  delay = function() return 1000 * connections / rate end
end

done = dofile(os.getenv("BENCH_WRK_DONE"))
