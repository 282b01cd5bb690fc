-- GET /users/{id}/items for a random one of BENCH_USERS users (bench-0 .. bench-N-1).
local users = tonumber(os.getenv("BENCH_USERS") or "10000")

request = function()
  return wrk.format("GET", "/users/bench-" .. math.random(0, users - 1) .. "/items")
end

done = dofile(os.getenv("BENCH_WRK_DONE"))
