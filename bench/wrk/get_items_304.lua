-- GET /users/{id}/items with the If-None-Match its answer had, for a random one of the users
-- listed in BENCH_ETAGS (one "<user> <etag>" a line): every answer should be a 304.
local users, tags = {}, {}
for line in io.lines(os.getenv("BENCH_ETAGS")) do
  local user, tag = line:match("^(%S+) (.+)$")
  users[#users + 1] = user
  tags[#tags + 1] = tag
end

request = function()
  local n = math.random(1, #users)
  return wrk.format("GET", "/users/" .. users[n] .. "/items", { ["If-None-Match"] = tags[n] })
end

done = dofile(os.getenv("BENCH_WRK_DONE"))
