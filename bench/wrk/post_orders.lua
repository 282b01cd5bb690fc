-- POST /orders with a different user (cmd-N, apart from the queried bench-N) and item each
-- time. BENCH_RATE (orders/s over all BENCH_CONNECTIONS connections) paces each connection;
-- 0 means as fast as possible.
local counter = 0
local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "1")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local body = string.format(
    '{"user_id":"cmd-%d","items":[{"sku":"SKU-%d","name":"Item %d","unit_price":"%d.%02d","quantity":%d}]}',
    counter % users, counter % 500, counter % 97, counter % 120 + 1, counter % 100, counter % 5 + 1)
  return wrk.format(nil, "/orders", nil, body)
end

if rate > 0 then
  delay = function() return 1000 * connections / rate end
end

done = dofile(os.getenv("BENCH_WRK_DONE"))
