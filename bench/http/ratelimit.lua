-- wrk script: POST /v1/ratelimit/<key> with a JSON limit, the key drawn uniformly among WRK_KEYS
-- distinct keys (rl00000 ...), the body WRK_BODY (default: a limit so high that nothing is ever
-- denied, so every check is one EVALSHA in Redis and none is answered from the remembered
-- denials). Requests are formatted once in init.
local reqs, n = {}, 0

function init(args)
    n = tonumber(os.getenv("WRK_KEYS") or "10000")
    local body = os.getenv("WRK_BODY") or '{"limit":1000000,"period":1}'
    local headers = { ["Content-Type"] = "application/json" }
    for i = 0, n - 1 do
        reqs[i + 1] = wrk.format("POST", string.format("/v1/ratelimit/rl%05d", i), headers, body)
    end
    math.randomseed(tonumber(os.getenv("WRK_SEED") or "42"))
end

function request()
    return reqs[math.random(n)]
end
