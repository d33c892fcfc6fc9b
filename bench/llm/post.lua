-- wrk script for bench/llm: every request the same POST to the URL's path, the JSON body read
-- once from the file WRK_BODY, with Content-Type: application/json and, when WRK_SIZE is set,
-- X-Origin-Completion-Size: WRK_SIZE (the fake upstream's completion size; only a miss reaches
-- the upstream, and the measured runs are hits, so it is there for the peers' warm-up alike).
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
if os.getenv("WRK_SIZE") then
    wrk.headers["X-Origin-Completion-Size"] = os.getenv("WRK_SIZE")
end
