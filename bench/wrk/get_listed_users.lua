-- GET /users/{id}/items for a random one of the users listed in BENCH_USERS_FILE, one a line.
-- BENCH_RATE (requests/s over all BENCH_CONNECTIONS connections) paces each connection; 0 means
-- as fast as possible.
local users = {}
for line in io.lines(os.getenv("BENCH_USERS_FILE")) do
  if line ~= "" then users[#users + 1] = line end
end
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "1")

request = function()
  return wrk.format("GET", "/users/" .. users[math.random(#users)] .. "/items")
end

if rate > 0 then
  delay = function() return 1000 * connections / rate end
end

done = dofile(os.getenv("BENCH_WRK_DONE"))
