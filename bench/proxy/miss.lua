-- wrk script for bench/proxy's miss rows: every request a URL never asked before, so every one is
-- a cache miss that goes to the origin. The path is WRK_PREFIX (default "/miss/"), a token read
-- once per wrk run from the kernel's random UUID (the warm-up and the measured run, and every
-- round, ask different URLs), and a counter. wrk runs one thread here (-t1): one counter.
local prefix, n = "/miss/", 0

function init(args)
    local f = io.open("/proc/sys/kernel/random/uuid", "r")
    local token = f and f:read("*l") or tostring(os.time())
    if f then f:close() end
    prefix = (os.getenv("WRK_PREFIX") or "/miss/") .. token .. "/"
end

function request()
    n = n + 1
    return wrk.format("GET", prefix .. n)
end
