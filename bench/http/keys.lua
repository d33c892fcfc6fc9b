-- wrk script: GET a key drawn uniformly among WRK_KEYS keys, path WRK_PREFIX .. "k%05d" ..
-- WRK_SUFFIX (e.g. "/v1/cache/bench/" and "", or "/GET/bench:" and ".txt" for webdis). The
-- requests are formatted once in init, so a request costs wrk one table lookup and one random draw.
local reqs, n = {}, 0

function init(args)
    n = tonumber(os.getenv("WRK_KEYS") or "10000")
    local prefix = os.getenv("WRK_PREFIX") or "/v1/cache/bench/"
    local suffix = os.getenv("WRK_SUFFIX") or ""
    for i = 0, n - 1 do
        reqs[i + 1] = wrk.format("GET", prefix .. string.format("k%05d", i) .. suffix)
    end
    math.randomseed(tonumber(os.getenv("WRK_SEED") or "42"))
end

function request()
    return reqs[math.random(n)]
end
